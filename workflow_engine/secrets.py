"""The keys that seal secret values (``WFE_ENCRYPTION_KEYS``: Fernet keys, comma-separated; the
first seals, every one opens, so a new key goes first and an old one stays until
`wfe keys rotate` has sealed everything again with the new)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from workflow_engine.core import secrets as core
from workflow_engine.errors import ConfigurationError, FatalError

NO_KEY = "no encryption key: set WFE_ENCRYPTION_KEYS (make one with `wfe keys new`)"


class KeyMissing(FatalError):
    """A sealed value none of the configured keys opens (or no key is configured)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, code="key_missing")


def new_key() -> str:
    return Fernet.generate_key().decode()


class Keyring:
    def __init__(self, keys: str | None) -> None:
        texts = [key.strip() for key in (keys or "").split(",") if key.strip()]
        try:
            fernets = [Fernet(text) for text in texts]
        except ValueError:
            raise ConfigurationError(
                "WFE_ENCRYPTION_KEYS: each key must be 32 url-safe base64-encoded bytes"
                " (make one with `wfe keys new`)"
            ) from None
        self._fernet = MultiFernet(fernets) if fernets else None
        self._first = fernets[0] if fernets else None

    def __bool__(self) -> bool:
        return self._fernet is not None

    def seal(self, value: Any) -> str:
        if self._fernet is None:
            raise ConfigurationError(
                "no encryption key: set WFE_ENCRYPTION_KEYS (make one with `wfe keys new`)"
            )
        return self._fernet.encrypt(json.dumps(value, separators=(",", ":")).encode()).decode()

    def open(self, token: str) -> Any:
        if self._fernet is None:
            raise KeyMissing("a secret is sealed and no key is configured: set WFE_ENCRYPTION_KEYS")
        try:
            return json.loads(self._fernet.decrypt(token.encode()))
        except InvalidToken:
            raise KeyMissing("a secret was sealed with a key that is not in WFE_ENCRYPTION_KEYS") from None

    def rotate(self, token: str) -> str | None:
        """``token`` sealed again with the first key (opened with any); None when the first key
        sealed it already (so a rotation stopped halfway goes on where it was)."""
        if self._fernet is None or self._first is None:
            raise ConfigurationError(NO_KEY)
        try:
            self._first.decrypt(token.encode())
            return None
        except InvalidToken:
            pass
        try:
            return self._fernet.rotate(token.encode()).decode()
        except InvalidToken:
            raise KeyMissing("a secret was sealed with a key that is not in WFE_ENCRYPTION_KEYS") from None

    def sealed(
        self, value: Any, paths: Iterable[tuple[str, ...]] = (), known: Mapping[str, Any] | None = None
    ) -> Any:
        """``value`` with what lies at ``paths`` sealed, and every string equal to a ``known``
        secret text (one an agent was given) sealed too."""
        value = core.seal_paths(value, paths, self.seal)
        return core.seal_known(value, known, self.seal) if known else value

    def rotated(self, value: Any) -> tuple[Any, bool]:
        """``value`` with its secrets sealed with the first key, and whether any changed."""
        return core.retokened(value, self.rotate)

    def opened(self, value: Any, texts: dict[str, Any]) -> Any:
        """``value`` with its sealed values opened (their texts added to ``texts``)."""
        return core.open_all(value, self.open, texts) if core.has_sealed(value) else value
