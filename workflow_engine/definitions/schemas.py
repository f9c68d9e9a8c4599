"""Checking data against the JSON Schemas of definitions (execution input, human task data).

One check has a bounded cost, whatever the schema and the data:

- ``pattern``, ``patternProperties`` and ``additionalProperties`` (which matches property names
  against ``patternProperties``) use the ``regex`` module under a time limit and without holding
  the GIL: Python's ``re`` backtracks exponentially on patterns such as ``^(a+)+$``, holding the
  interpreter (and so every request of the API) while it does. A pattern that cannot be decided
  within :data:`PATTERN_SECONDS` counts as not matching; one check spends at most
  :data:`PATTERNS_SECONDS` on patterns in all.
- ``uniqueItems`` compares canonical forms in a set, in linear time (jsonschema compares every
  pair of unhashable items).
- Every keyword applied counts against the check's deadline, :data:`CHECK_SECONDS`: a schema
  whose ``anyOf`` or ``$ref`` chains multiply the work is refused with a clear error instead of
  running for minutes. A legitimate check of the largest body the API takes needs a fraction of it.
- ``unevaluatedProperties`` and ``unevaluatedItems`` are refused (jsonschema follows ``$ref``,
  ``dependentSchemas`` and ``if``/``then`` for them without applying any keyword, out of reach
  of the deadline, and matches patterns with ``re``); see :func:`schema_problem`.
- A check stops at its first :data:`MAX_PROBLEMS` problems.
"""

from __future__ import annotations

import contextvars
import functools
import itertools
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import jsonschema
import referencing.exceptions
import regex
from jsonschema.exceptions import ValidationError as SchemaViolation

from workflow_engine.core.payloads import payload_problem
from workflow_engine.core.secrets import sealed_problem
from workflow_engine.errors import InputError, Problem

MAX_PROBLEMS = 20
PATTERN_SECONDS = 0.1
PATTERNS_SECONDS = 1.0
CHECK_SECONDS = 5.0

Keyword = Callable[[Any, Any, Any, Any], Iterator[SchemaViolation]]


class _TooCostly(Exception):
    pass


class _Check:
    """The time left to one check: for its patterns, and in all."""

    def __init__(self) -> None:
        began = time.monotonic()
        self.patterns_until = began + PATTERNS_SECONDS
        self.until = began + CHECK_SECONDS

    def tick(self) -> None:
        if time.monotonic() > self.until:
            raise _TooCostly

    def search(self, pattern: str, text: str) -> bool | None:
        """Whether ``pattern`` matches within ``text``; None when it could not be decided in time."""
        left = self.patterns_until - time.monotonic()
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


# the check under way (validators are copied as they descend: they cannot carry it)
_CHECK: contextvars.ContextVar[_Check] = contextvars.ContextVar("wfe_schema_check")


def _current() -> _Check:
    check = _CHECK.get(None)
    return check if check is not None else _Check()


def _pattern(validator: Any, pattern: str, instance: Any, _schema: Any) -> Iterator[SchemaViolation]:
    if not validator.is_type(instance, "string"):
        return
    found = _current().search(pattern, instance)
    if found is None:
        yield SchemaViolation(f"{instance[:40]!r} could not be checked against {pattern!r} in time")
    elif not found:
        yield SchemaViolation(f"{instance!r} does not match {pattern!r}")


def _properties_against_patterns(
    patterns: Mapping[str, Any], instance: Mapping[str, Any]
) -> Iterator[tuple[str, str | None]]:
    """Each property of ``instance`` with the first pattern of ``patterns`` it matches (None:
    none). Stops with :class:`_Undecided` when a match cannot be decided in time."""
    check = _current()
    for key in instance:
        check.tick()
        matched = None
        for pattern in patterns:
            found = check.search(pattern, key)
            if found is None:
                raise _Undecided(key, pattern)
            if found:
                matched = pattern
                break
        yield key, matched


class _Undecided(Exception):
    def __init__(self, key: str, pattern: str) -> None:
        self.violation = SchemaViolation(
            f"property {key[:40]!r} could not be checked against {pattern!r} in time"
        )


def _pattern_properties(
    validator: Any, patterns: Mapping[str, Any], instance: Any, _schema: Any
) -> Iterator[SchemaViolation]:
    if not validator.is_type(instance, "object"):
        return
    try:
        for key in instance:
            for pattern, subschema in patterns.items():  # every pattern a name matches applies
                _current().tick()
                found = _current().search(pattern, key)
                if found is None:
                    raise _Undecided(key, pattern)
                if found:
                    yield from validator.descend(instance[key], subschema, path=key, schema_path=pattern)
    except _Undecided as undecided:
        yield undecided.violation


def _additional_properties(
    validator: Any, additional: Any, instance: Any, schema: Mapping[str, Any]
) -> Iterator[SchemaViolation]:
    if not validator.is_type(instance, "object"):
        return
    named = schema.get("properties", {})
    patterns = schema.get("patternProperties", {})
    try:
        extras = [
            key
            for key, matched in _properties_against_patterns(patterns, instance)
            if matched is None and key not in named
        ]
    except _Undecided as undecided:
        yield undecided.violation
        return
    if validator.is_type(additional, "object"):
        for key in extras:
            yield from validator.descend(instance[key], additional, path=key)
    elif additional is False and extras:
        listed = ", ".join(repr(key) for key in sorted(extras)[:MAX_PROBLEMS])
        yield SchemaViolation(f"additional properties are not allowed ({listed} unexpected)")


def _canonical(value: Any) -> Any:
    """A hashable form equal for values JSON Schema calls equal (1 and 1.0; not 1 and true)."""
    if isinstance(value, bool) or value is None:
        return ("literal", value)
    if isinstance(value, (int, float)):
        return ("number", value)
    if isinstance(value, str):
        return ("string", value)
    if isinstance(value, Mapping):
        return ("object", frozenset((key, _canonical(item)) for key, item in value.items()))
    return ("array", tuple(_canonical(item) for item in value))


def _unique_items(validator: Any, unique: Any, instance: Any, _schema: Any) -> Iterator[SchemaViolation]:
    if not unique or not validator.is_type(instance, "array"):
        return
    seen: set[Any] = set()
    for index, item in enumerate(instance):
        form = _canonical(item)
        if form in seen:
            yield SchemaViolation(f"item {index} repeats an earlier item (the items must be unique)")
            return
        seen.add(form)


def _timed(keyword: Keyword) -> Keyword:
    def applied(validator: Any, value: Any, instance: Any, schema: Any) -> Iterator[SchemaViolation]:
        _current().tick()
        yield from keyword(validator, value, instance, schema)

    return applied


@functools.cache
def _bounded(draft: type) -> type:
    """``draft``'s validator with the bounds above."""
    keywords: dict[str, Keyword] = dict(draft.VALIDATORS)  # type: ignore[attr-defined]
    keywords |= {
        "pattern": _pattern,
        "patternProperties": _pattern_properties,
        "additionalProperties": _additional_properties,
        "uniqueItems": _unique_items,
    }
    bounded: type = jsonschema.validators.extend(
        draft, {name: _timed(keyword) for name, keyword in keywords.items()}
    )
    return bounded


# where a schema holds schemas: a map of them, a list of them (or one), or one
_SCHEMA_MAPS = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas", "dependencies")
_SCHEMA_LISTS = ("allOf", "anyOf", "oneOf", "prefixItems", "items")
_SCHEMA_ONE = (
    "not", "if", "then", "else", "additionalProperties", "additionalItems", "contains",
    "propertyNames", "unevaluatedProperties", "unevaluatedItems",
)  # fmt: skip
_UNBOUNDED = ("unevaluatedProperties", "unevaluatedItems")


def _subschemas(schema: Any) -> Iterator[Mapping[str, Any]]:
    """``schema`` and every schema within it, by keyword position (not ``enum`` values, say)."""
    stack = [schema]
    while stack:
        item = stack.pop()
        if not isinstance(item, Mapping):
            continue
        yield item
        for key in _SCHEMA_MAPS:
            if isinstance(item.get(key), Mapping):
                stack.extend(item[key].values())
        for key in (*_SCHEMA_LISTS, *_SCHEMA_ONE):
            value = item.get(key)
            stack.extend(value if isinstance(value, list) else [value])


def schema_problem(schema: Mapping[str, Any]) -> str | None:
    """Why a valid JSON Schema cannot be used by the engine, or None."""
    for sub in _subschemas(schema):
        used = [key for key in _UNBOUNDED if key in sub]
        if used:
            return (
                f"{used[0]} is not supported: jsonschema evaluates it without a bound on the work "
                "(use additionalProperties or items)"
            )
    return None


def check_payload(data: Any, what: str) -> None:
    """Raise :class:`InputError` if ``data`` could not be stored and read back (see
    :mod:`workflow_engine.core.payloads`)."""
    problem = payload_problem(data) or sealed_problem(data)  # (only the engine seals)
    if problem is not None:
        raise InputError(what, [problem])


def check_data(schema: dict[str, Any] | None, data: Any, what: str) -> None:
    """Raise :class:`InputError` listing where ``data`` breaks ``schema``; it must be an object."""
    if not isinstance(data, dict):
        raise InputError(what, [Problem("", "must be a JSON object")])
    check_payload(data, what)
    if schema is None:
        return
    unusable = schema_problem(schema)
    if unusable is not None:
        raise InputError(what, [Problem("(schema)", unusable)])
    validator = _bounded(jsonschema.validators.validator_for(schema))(schema)
    token = _CHECK.set(_Check())
    try:
        first = itertools.islice(validator.iter_errors(data), MAX_PROBLEMS)
        errors = sorted(first, key=lambda e: (list(e.absolute_path), e.message))
    except _TooCostly:
        raise InputError(
            what, [Problem("(schema)", f"could not be checked against the schema within {CHECK_SECONDS:g} s")]
        ) from None
    except RecursionError:
        raise InputError(what, [Problem("(schema)", "the schema refers to itself without end")]) from None
    except referencing.exceptions.Unresolvable:
        raise InputError(
            what, [Problem("(schema)", "the schema refers to a schema it does not hold")]
        ) from None
    finally:
        _CHECK.reset(token)
    if errors:
        problems = [
            Problem("/".join(str(p) for p in error.absolute_path) or "(root)", error.message)
            for error in errors[:MAX_PROBLEMS]
        ]
        raise InputError(what, problems)
