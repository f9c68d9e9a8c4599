"""Users: creation with a real password hasher (argon2), and checking credentials.

Checking a password is braked: after ``login_failures_per_user`` failures for a username, or
``login_failures_per_address`` from one client address, within ``login_window`` seconds, logins
are refused with :class:`TooManyAttempts` (before any password is checked) until the oldest
failure leaves the window; the failures are kept in the database, so every API process counts
the same ones. At most ``login_hashing_slots`` hashes are checked at once per process (each takes
a core for about 50 ms); a login that finds no free slot soon is refused the same way.
"""

from __future__ import annotations

import math
import re
import threading
from datetime import timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from workflow_engine.errors import AuthenticationFailed, InputError, Problem, TooManyAttempts, UserNotFound
from workflow_engine.settings import Settings
from workflow_engine.store.records import UserRecord
from workflow_engine.store.repository import ROLES, SYSTEM_USER, Store

MIN_PASSWORD = 8
USERNAME = re.compile(r"^[A-Za-z0-9_.@-]{1,150}$")
_hasher = PasswordHasher()  # argon2id with the library's recommended cost
# verified against when the user does not exist, so both cases take the same time
_DUMMY_HASH = _hasher.hash("not-a-real-password")
SLOT_WAIT = 2.0  # seconds a login waits for a hashing slot before it is refused


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


class LoginBrake:
    """Logins of one API process: braked by recent failures, hashed a few at a time."""

    def __init__(self, store: Store, settings: Settings) -> None:
        self.store = store
        self.per_user = settings.login_failures_per_user
        self.per_address = settings.login_failures_per_address
        self.window = timedelta(seconds=settings.login_window)
        self.slots = threading.BoundedSemaphore(settings.login_hashing_slots)

    def login(self, username: str, password: str, address: str) -> UserRecord:
        """:func:`authenticate`, unless this user or address has failed too often lately."""
        now = self.store.clock.now()
        by_user, by_address = self.store.login_failures(username, address, now - self.window)
        for failures, limit, whom in (
            (by_user, self.per_user, "this user"),
            (by_address, self.per_address, "this address"),
        ):
            if len(failures) >= limit:
                wait = failures[-limit] + self.window - now
                raise TooManyAttempts(
                    f"too many failed logins for {whom}; try again later",
                    max(1, math.ceil(wait.total_seconds())),
                )
        if not self.slots.acquire(timeout=SLOT_WAIT):
            raise TooManyAttempts("too many logins at once; try again", 1)
        try:
            user = authenticate(self.store, username, password)
        except AuthenticationFailed:
            self.store.record_login_failure(username, address, now - self.window)
            raise
        finally:
            self.slots.release()
        if by_user:
            self.store.clear_login_failures(username)
        return user
