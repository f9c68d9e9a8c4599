"""Users: creation with a real password hasher (argon2), checking credentials, what an
administrator changes (disable, enable, role, password, revoke every token, delete), and who a
token stands for.

Checking a password is braked: after ``login_failures_per_user`` failures for a username, or
``login_failures_per_address`` from one client address, or ``login_successes_per_user``
successful logins of a username, within ``login_window`` seconds, logins are refused with
:class:`TooManyAttempts` (before any password is checked) until the oldest of them leaves the
window. Each attempt is noted before its password is checked (see
:mod:`workflow_engine.store.logins`), so parallel guesses count each other.

A user who may not start workflows any more (disabled, or made a viewer) has their schedules
paused in the same transaction, each pause recorded with why; the scheduler also asks
:func:`may_start` before it starts anything for a schedule's owner. A user who owns anything
(executions, workflows, schedules, test runs) is not deleted: disable them instead.
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from workflow_engine.errors import (
    AuthenticationFailed,
    Conflict,
    InputError,
    PermissionDenied,
    Problem,
    TooManyAttempts,
    UserNotFound,
)
from workflow_engine.settings import Settings
from workflow_engine.store import accounts
from workflow_engine.store.logins import Attempt, LoginFailures
from workflow_engine.store.records import UserRecord
from workflow_engine.store.repository import ROLES, SYSTEM_USER, Store

MIN_PASSWORD = 8
USERNAME = re.compile(r"[A-Za-z0-9_.@-]{1,150}")  # (matched whole: no trailing newline slips by)
STARTERS = ("admin", "operator")  # the roles that may start workflows
_hasher = PasswordHasher()  # argon2id with the library's recommended cost


@functools.cache
def _dummy_hash() -> str:
    """A hash checked when the user does not exist, so both cases take the same time (made on
    first use: hashing takes ~50 ms, and every `wfe` command imports this module)."""
    return _hasher.hash("not-a-real-password")


@dataclass(frozen=True)
class UserInfo:
    """A user as administrators see them; ``paused_schedules``: those a change just paused."""

    username: str
    role: str
    disabled: bool
    created_at: datetime
    paused_schedules: tuple[str, ...] = ()

    @classmethod
    def of(cls, user: UserRecord, paused: list[str] | None = None) -> UserInfo:
        return cls(user.username, user.role, not user.active, user.created_at, tuple(paused or ()))

    def as_dict(self) -> dict[str, Any]:
        return {
            "username": self.username,
            "role": self.role,
            "disabled": self.disabled,
            "created_at": self.created_at.isoformat(),
            "paused_schedules": list(self.paused_schedules),
        }


def _password_problems(password: str) -> list[Problem]:
    if len(password) < MIN_PASSWORD:
        return [Problem("password", f"at least {MIN_PASSWORD} characters")]
    return []


def create_user(store: Store, username: str, password: str, role: str) -> UserRecord:
    problems = []
    if not USERNAME.fullmatch(username):
        problems.append(Problem("username", "1 to 150 letters, digits and . _ - @"))
    if username == SYSTEM_USER:
        problems.append(Problem("username", f"{SYSTEM_USER!r} is reserved"))
    problems += _password_problems(password)
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
    hashed = user.password_hash if user is not None and user.password_hash else _dummy_hash()
    try:
        _hasher.verify(hashed, password)
    except (VerificationError, InvalidHashError):
        raise AuthenticationFailed("wrong username or password") from None
    if user is None or not user.active or user.password_hash is None:
        raise AuthenticationFailed("wrong username or password")
    return user


# who a token stands for


def token_user(store: Store, claims: dict[str, Any]) -> UserRecord:
    """The user a verified token names, if the token still holds: the user exists and is
    active, the token's generation is theirs (no "revoke all" since) and its login's family was
    not revoked. :class:`AuthenticationFailed` otherwise."""
    family = claims.get("fam") if isinstance(claims.get("fam"), str) else None
    with store.reading() as db:
        found = accounts.holder(db, int(claims["sub"]), family)
    if found is None:
        raise AuthenticationFailed("unknown user")
    if not found.user.active:
        raise AuthenticationFailed("user disabled")
    if claims.get("gen", 0) != found.generation or found.family_revoked:
        raise AuthenticationFailed("token revoked")
    return found.user


def generation(store: Store, user_id: int) -> int:
    """The token generation new tokens of the user are issued in."""
    with store.reading() as db:
        found = accounts.holder(db, user_id, None)
    if found is None:
        raise AuthenticationFailed("unknown user")
    return found.generation


def revoke_family(store: Store, family: str, user_id: int, expires_at: datetime) -> None:
    """Every token descended from one login is refused from now on."""
    with store.transaction() as tx:
        accounts.revoke_family(tx, family, user_id, expires_at, store.clock.now())


def may_start(store: Store, user_id: int) -> None:
    """:class:`PermissionDenied` unless the user exists, is active and has a role that starts
    workflows (the scheduler asks before it starts anything for a schedule's owner)."""
    try:
        user = store.get_user_by_id(user_id)
    except UserNotFound:
        raise PermissionDenied(f"the owner (user {user_id}) no longer exists") from None
    if not user.active:
        raise PermissionDenied(f"the owner {user.username!r} is disabled")
    if user.role not in STARTERS:
        raise PermissionDenied(f"the owner {user.username!r} is a {user.role} and may not start workflows")


# administration: the command line and the REST API call these


def list_users(store: Store) -> list[UserInfo]:
    with store.reading() as db:
        return [UserInfo.of(user) for user in accounts.everyone(db, SYSTEM_USER)]


def _changed(
    store: Store, username: str, actor: str, change: Any, revoke: bool = False, admin_needed: bool = False
) -> UserInfo:
    """Apply ``change(user) -> values`` to the user's row in one transaction; pause their
    schedules when they may no longer start workflows; refuse leaving no active admin."""
    with store.transaction() as tx:
        user = accounts.locked(tx, username) if username != SYSTEM_USER else None
        if user is None:
            raise UserNotFound(username)
        values = change(user)
        after = {"active": user.active, "role": user.role, **values}
        stops_admin = user.role == "admin" and (not after["active"] or after["role"] != "admin")
        if admin_needed and stops_admin and not accounts.active_admins(tx, besides=user.username):
            raise Conflict(f"{username!r} is the last active admin; make another admin first")
        accounts.update(tx, user.id, values, revoke=revoke)
        paused: list[str] = []
        if not after["active"] or after["role"] not in STARTERS:
            why = "disabled" if not after["active"] else f"made a {after['role']}"
            reason = f"its owner {username!r} was {why} and may not start workflows"
            paused = accounts.pause_schedules(tx, user.id, actor, reason)
        user = accounts.locked(tx, username) or user
    return UserInfo.of(user, paused)


def set_disabled(store: Store, username: str, disabled: bool, actor: str) -> UserInfo:
    """Disable (or enable) a user: a disabled user cannot log in, every token of theirs is
    refused at once (and stays so when enabled again), their schedules are paused."""
    return _changed(
        store, username, actor, lambda user: {"active": not disabled}, revoke=disabled, admin_needed=True
    )


def set_role(store: Store, username: str, role: str, actor: str) -> UserInfo:
    """A new role, which every token of theirs carries from the next request on (a viewer's
    schedules are paused)."""
    if role not in ROLES:
        raise InputError("user", [Problem("role", f"one of {', '.join(ROLES)}")])
    return _changed(store, username, actor, lambda user: {"role": role}, admin_needed=True)


def set_password(store: Store, username: str, password: str, actor: str) -> UserInfo:
    """A new password; every token issued before is refused from now on."""
    problems = _password_problems(password)
    if problems:
        raise InputError("password", problems)
    hashed = _hasher.hash(password)
    return _changed(store, username, actor, lambda user: {"password_hash": hashed}, revoke=True)


def revoke_tokens(store: Store, username: str, actor: str) -> UserInfo:
    """Log the user out everywhere: every access and refresh token issued so far is refused."""
    return _changed(store, username, actor, lambda user: {}, revoke=True)


def delete_user(store: Store, username: str, actor: str) -> None:
    """Delete a user who owns nothing; one who does is refused (:class:`Conflict`), with what
    they own: disable them instead, which keeps their history whole."""
    with store.transaction() as tx:
        user = accounts.locked(tx, username) if username != SYSTEM_USER else None
        if user is None:
            raise UserNotFound(username)
        owned = accounts.owned(tx, user.id)
        if owned:
            what = ", ".join(f"{count} {kind}" for kind, count in owned.items())
            raise Conflict(f"{username!r} owns {what}: disable the user instead (`wfe users disable`)")
        if user.role == "admin" and user.active and not accounts.active_admins(tx, besides=user.username):
            raise Conflict(f"{username!r} is the last active admin; make another admin first")
        accounts.delete(tx, user)


# the login brake


class LoginBrake:
    """Logins braked by recent failures, and by recent successes of the same user."""

    def __init__(self, store: Store, settings: Settings) -> None:
        self.store = store
        self.failures = LoginFailures(store)
        self.per_user = settings.login_failures_per_user
        self.per_address = settings.login_failures_per_address
        self.successes = settings.login_successes_per_user
        self.window = timedelta(seconds=settings.login_window)

    def admit(self, username: str, address: str) -> Attempt:
        """Note an attempt, or refuse it with :class:`TooManyAttempts` (noting nothing) when this
        user or address has failed too often lately, or this user logged in too often."""
        noted = self.failures.note(username, address, since=self.store.clock.now() - self.window)
        for earlier, limit, why in (
            (noted.by_user, self.per_user, "too many failed logins for this user"),
            (noted.by_address, self.per_address, "too many failed logins for this address"),
            (noted.succeeded, self.successes, "too many logins for this user"),
        ):
            if len(earlier) >= limit:
                self.failures.forget(noted.attempt)
                wait = earlier[-limit] + self.window - noted.attempt.at
                raise TooManyAttempts(f"{why}; try again later", max(1, math.ceil(wait.total_seconds())))
        return noted.attempt

    def withdraw(self, attempt: Attempt) -> None:
        """An admitted attempt that checked no password (no hashing slot came free): forgotten."""
        self.failures.forget(attempt)

    def verify(self, attempt: Attempt, username: str, password: str) -> UserRecord:
        """The admitted attempt's answer: a failure stays noted, a success is noted as one and
        clears the user's failures."""
        user = authenticate(self.store, username, password)
        self.failures.succeed(attempt, username)
        return user
