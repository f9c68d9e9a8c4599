"""Checking data against the JSON Schemas of definitions (execution input, human task data)."""

from __future__ import annotations

from typing import Any

import jsonschema

from workflow_engine.errors import InputError, Problem

MAX_PROBLEMS = 20


def check_data(schema: dict[str, Any] | None, data: Any, what: str) -> None:
    """Raise :class:`InputError` listing where ``data`` breaks ``schema``; it must be an object."""
    if not isinstance(data, dict):
        raise InputError(what, [Problem("", "must be a JSON object")])
    if schema is None:
        return
    validator = jsonschema.validators.validator_for(schema)(schema)
    errors = sorted(validator.iter_errors(data), key=lambda e: (list(e.absolute_path), e.message))
    if errors:
        problems = [
            Problem("/".join(str(p) for p in error.absolute_path) or "(root)", error.message)
            for error in errors[:MAX_PROBLEMS]
        ]
        raise InputError(what, problems)
