"""Users: creation with a real password hasher (argon2), and checking credentials.

Checking a password is braked: after ``login_failures_per_user`` failures for a username, or
``login_failures_per_address`` from one client address, within ``login_window`` seconds, logins
are refused with :class:`TooManyAttempts` (before any password is checked) until the oldest
failure leaves the window. Each attempt is noted before its password is checked (see
:mod:`workflow_engine.store.logins`), so parallel guesses count each other.
"""

from __future__ import annotations

import math
import re
from datetime import timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from workflow_engine.errors import AuthenticationFailed, InputError, Problem, TooManyAttempts, UserNotFound
from workflow_engine.settings import Settings
from workflow_engine.store.logins import Attempt, LoginFailures
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


class LoginBrake:
    """Logins braked by recent failures."""

    def __init__(self, store: Store, settings: Settings) -> None:
        self.store = store
        self.failures = LoginFailures(store)
        self.per_user = settings.login_failures_per_user
        self.per_address = settings.login_failures_per_address
        self.window = timedelta(seconds=settings.login_window)

    def admit(self, username: str, address: str) -> Attempt:
        """Note an attempt, or refuse it with :class:`TooManyAttempts` (noting nothing) when this
        user or address has failed too often lately."""
        noted = self.failures.note(username, address, since=self.store.clock.now() - self.window)
        for failures, limit, whom in (
            (noted.by_user, self.per_user, "this user"),
            (noted.by_address, self.per_address, "this address"),
        ):
            if len(failures) >= limit:
                self.failures.forget(noted.attempt)
                wait = failures[-limit] + self.window - noted.attempt.at
                raise TooManyAttempts(
                    f"too many failed logins for {whom}; try again later",
                    max(1, math.ceil(wait.total_seconds())),
                )
        return noted.attempt

    def withdraw(self, attempt: Attempt) -> None:
        """An admitted attempt that checked no password (no hashing slot came free): forgotten."""
        self.failures.forget(attempt)

    def verify(self, attempt: Attempt, username: str, password: str) -> UserRecord:
        """The admitted attempt's answer: a failure stays noted, a success clears the user's."""
        user = authenticate(self.store, username, password)
        self.failures.clear(username)
        return user
