"""Tokens and who is calling: HS256 JWTs signed with the configured secret, checked in one place."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal

import jwt

from workflow_engine.clock import Clock, SystemClock
from workflow_engine.errors import AuthenticationFailed, PermissionDenied
from workflow_engine.settings import Settings
from workflow_engine.store.records import UserRecord

ALGORITHM = "HS256"
_USER_ID = re.compile(r"[0-9]{1,18}")
_FAMILY = re.compile(r"[0-9a-f]{32}")
TokenKind = Literal["access", "refresh"]


@dataclass(frozen=True)
class Principal:
    """The authenticated caller."""

    user_id: int
    username: str
    role: str

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @property
    def owner_filter(self) -> int | None:
        """Whose data this caller may see: everyone's for an admin, else only their own."""
        return None if self.is_admin else self.user_id

    def require(self, *roles: str) -> None:
        if self.role not in roles:
            raise PermissionDenied(f"role {self.role!r} may not do this (needs {' or '.join(roles)})")


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int
    token_type: str = "bearer"  # noqa: S105 - the OAuth2 token type, not a secret


class Tokens:
    def __init__(self, settings: Settings, clock: Clock | None = None) -> None:
        self.secret = settings.jwt_secret.get_secret_value()
        self.access_ttl = settings.access_token_ttl
        self.refresh_ttl = settings.refresh_token_ttl
        self.clock = clock or SystemClock()

    def _encode(self, user: UserRecord, kind: TokenKind, ttl: int, generation: int, family: str) -> str:
        now = self.clock.now()
        claims = {
            "sub": str(user.id),
            "name": user.username,
            "role": user.role,
            "type": kind,
            "iat": now,
            "exp": now + timedelta(seconds=ttl),
            "jti": uuid.uuid4().hex,
            "gen": generation,  # the user's token generation: raising it revokes the token
            "fam": family,  # the login it descends from: revoked whole when a spent token returns
        }
        return jwt.encode(claims, self.secret, algorithm=ALGORITHM)

    def issue(self, user: UserRecord, generation: int = 0, family: str | None = None) -> TokenPair:
        """A new pair, of a new login (``family`` None) or refreshed from one."""
        family = family or uuid.uuid4().hex
        return TokenPair(
            access_token=self._encode(user, "access", self.access_ttl, generation, family),
            refresh_token=self._encode(user, "refresh", self.refresh_ttl, generation, family),
            expires_in=self.access_ttl,
        )

    def verify(self, token: str, kind: TokenKind) -> dict[str, Any]:
        """The claims of a valid token of ``kind``; anything else is :class:`AuthenticationFailed`.

        Only HS256 with our secret is accepted: ``alg: none``, other algorithms, other keys,
        altered and expired tokens all fail here.
        """
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self.secret,
                algorithms=[ALGORITHM],
                options={"require": ["exp", "iat", "sub", "type"]},
            )
        except jwt.ExpiredSignatureError:
            raise AuthenticationFailed("token expired") from None
        except jwt.PyJWTError:
            raise AuthenticationFailed("invalid token") from None
        if claims.get("type") != kind:
            raise AuthenticationFailed(f"not an {kind} token" if kind == "access" else f"not a {kind} token")
        if not isinstance(claims.get("sub"), str) or not _USER_ID.fullmatch(claims["sub"]):
            raise AuthenticationFailed("invalid token")  # a user id we issued: ASCII digits, bounded
        family = claims.get("fam")
        if not isinstance(claims.get("gen", 0), int) or not _FAMILY.fullmatch(str(family or "0" * 32)):
            raise AuthenticationFailed("invalid token")
        return claims
