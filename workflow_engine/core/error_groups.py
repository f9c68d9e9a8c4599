"""Error groups, pure: a failed attempt's message with what varies from one occurrence to the
next masked (ids, numbers, quoted values), and the stable id of the group it belongs to
(workflow, step, error type, code and masked message)."""

from __future__ import annotations

import hashlib
import re

UUID = re.compile(r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b")
QUOTED = re.compile(r"'[^'\n]{0,200}'|\"[^\"\n]{0,200}\"")
HEX_ID = re.compile(r"\b(?=[0-9a-fA-F]*\d)(?=[0-9a-fA-F]*[a-fA-F])[0-9a-fA-F]{8,}\b")
TOKEN_ID = re.compile(r"\b[A-Za-z]+[-_]?\d[\w-]*\b")  # order-42, user_17, c-1
NUMBER = re.compile(r"(?<![\w.])[-+]?\d+(?:\.\d+)?(?:[a-zA-Z]{1,3})?(?![\w.])")  # 42, 3.5, 30s, 200ms
SPACE = re.compile(r"\s+")
MASKS = ((UUID, "<id>"), (QUOTED, "<id>"), (HEX_ID, "<id>"), (TOKEN_ID, "<id>"), (NUMBER, "<n>"))
MAX_MESSAGE = 500


def mask(message: str | None) -> str:
    """The message with its variable parts as ``<id>`` (ids, quoted values) and ``<n>``."""
    text = SPACE.sub(" ", (message or "").strip())[:MAX_MESSAGE]
    for pattern, token in MASKS:
        text = pattern.sub(token, text)
    return text


def group_id(workflow: str, step: str, error_type: str | None, code: str | None, masked: str) -> str:
    """A stable id for the group: the same parts always give the same id."""
    parts = "\x1f".join((workflow, step, error_type or "", code or "", masked))
    return hashlib.sha256(parts.encode()).hexdigest()[:16]
