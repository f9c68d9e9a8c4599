"""Users: creation with a real password hasher (argon2), and checking credentials."""

from __future__ import annotations

import re

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from workflow_engine.errors import AuthenticationFailed, InputError, Problem, UserNotFound
from workflow_engine.store.records import UserRecord
from workflow_engine.store.repository import ROLES, SYSTEM_USER, Store

MIN_PASSWORD = 8
USERNAME = re.compile(r"^[A-Za-z0-9_.@-]{1,150}$")
_hasher = PasswordHasher()  # argon2id with the library's recommended cost
# verified against when the user does not exist, so both cases take the same time
_DUMMY_HASH = _hasher.hash("not-a-real-password")


def create_user(store: Store, username: str, password: str, role: str) -> UserRecord:
    problems = []
    if not USERNAME.match(username):
        problems.append(Problem("username", "1 to 150 letters, digits and . _ - @"))
    if username == SYSTEM_USER:
        problems.append(Problem("username", f"{SYSTEM_USER!r} is reserved"))
    if len(password) < MIN_PASSWORD:
        problems.append(Problem("password", f"at least {MIN_PASSWORD} characters"))
    if role not in ROLES:
        problems.append(Problem("role", f"one of {', '.join(ROLES)}"))
    if problems:
        raise InputError("user", problems)
    return store.create_user(username, _hasher.hash(password), role)


def authenticate(store: Store, username: str, password: str) -> UserRecord:
    """The user whose credentials these are; :class:`AuthenticationFailed` otherwise."""
    try:
        user = store.get_user(username)
    except UserNotFound:
        user = None
    hashed = user.password_hash if user is not None and user.password_hash else _DUMMY_HASH
    try:
        _hasher.verify(hashed, password)
    except (VerificationError, InvalidHashError):
        raise AuthenticationFailed("wrong username or password") from None
    if user is None or not user.active or user.password_hash is None:
        raise AuthenticationFailed("wrong username or password")
    return user
