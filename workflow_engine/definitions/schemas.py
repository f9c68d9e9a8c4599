"""Checking data against the JSON Schemas of definitions (execution input, human task data).

A schema's ``pattern`` and ``patternProperties`` are matched with the ``regex`` module under a
time limit, and without holding the GIL: Python's ``re`` backtracks exponentially on patterns
such as ``^(a+)+$``, holding the interpreter (and so every request of the API) while it does.
A pattern that cannot be decided within :data:`PATTERN_SECONDS` counts as not matching, and one
check spends at most :data:`CHECK_SECONDS` on patterns in all.
"""

from __future__ import annotations

import contextvars
import functools
import time
from collections.abc import Iterator, Mapping
from typing import Any

import jsonschema
import referencing.exceptions
import regex
from jsonschema.exceptions import ValidationError as SchemaViolation

from workflow_engine.core.payloads import payload_problem
from workflow_engine.errors import InputError, Problem

MAX_PROBLEMS = 20
PATTERN_SECONDS = 0.1
CHECK_SECONDS = 1.0


class _Clock:
    """The time left to one check for its patterns."""

    def __init__(self) -> None:
        self.deadline = time.monotonic() + CHECK_SECONDS

    def search(self, pattern: str, text: str) -> bool | None:
        """Whether ``pattern`` matches within ``text``; None when it could not be decided in time."""
        left = self.deadline - time.monotonic()
        if left <= 0:
            return None
        try:
            return (
                regex.search(pattern, text, timeout=min(PATTERN_SECONDS, left), concurrent=True) is not None
            )
        except TimeoutError:
            return None
        except regex.error:
            return False  # registration refuses such a schema; an old one does not match


# the clock of the check under way (validators are copied as they descend: they cannot carry it)
_CLOCK: contextvars.ContextVar[_Clock] = contextvars.ContextVar("wfe_pattern_clock")


def _search(pattern: str, text: str) -> bool | None:
    clock = _CLOCK.get(None)
    return (clock or _Clock()).search(pattern, text)


def _pattern(validator: Any, pattern: str, instance: Any, _schema: Any) -> Iterator[SchemaViolation]:
    if not validator.is_type(instance, "string"):
        return
    found = _search(pattern, instance)
    if found is None:
        yield SchemaViolation(f"{instance[:40]!r} could not be checked against {pattern!r} in time")
    elif not found:
        yield SchemaViolation(f"{instance!r} does not match {pattern!r}")


def _pattern_properties(
    validator: Any, patterns: Mapping[str, Any], instance: Any, _schema: Any
) -> Iterator[SchemaViolation]:
    if not validator.is_type(instance, "object"):
        return
    for pattern, subschema in patterns.items():
        for key, value in instance.items():
            found = _search(pattern, key)
            if found is None:
                yield SchemaViolation(
                    f"property {key[:40]!r} could not be checked against {pattern!r} in time"
                )
            elif found:
                yield from validator.descend(value, subschema, path=key, schema_path=pattern)


@functools.cache
def _bounded(draft: type) -> type:
    """``draft``'s validator with patterns matched under a time limit."""
    bounded: type = jsonschema.validators.extend(
        draft, {"pattern": _pattern, "patternProperties": _pattern_properties}
    )
    return bounded


def check_payload(data: Any, what: str) -> None:
    """Raise :class:`InputError` if ``data`` could not be stored and read back (see
    :mod:`workflow_engine.core.payloads`)."""
    problem = payload_problem(data)
    if problem is not None:
        raise InputError(what, [problem])


def check_data(schema: dict[str, Any] | None, data: Any, what: str) -> None:
    """Raise :class:`InputError` listing where ``data`` breaks ``schema``; it must be an object."""
    if not isinstance(data, dict):
        raise InputError(what, [Problem("", "must be a JSON object")])
    check_payload(data, what)
    if schema is None:
        return
    validator = _bounded(jsonschema.validators.validator_for(schema))(schema)
    token = _CLOCK.set(_Clock())
    try:
        errors = sorted(validator.iter_errors(data), key=lambda e: (list(e.absolute_path), e.message))
    except RecursionError:
        raise InputError(what, [Problem("(schema)", "the schema refers to itself without end")]) from None
    except referencing.exceptions.Unresolvable:
        raise InputError(
            what, [Problem("(schema)", "the schema refers to a schema it does not hold")]
        ) from None
    finally:
        _CLOCK.reset(token)
    if errors:
        problems = [
            Problem("/".join(str(p) for p in error.absolute_path) or "(root)", error.message)
            for error in errors[:MAX_PROBLEMS]
        ]
        raise InputError(what, problems)
