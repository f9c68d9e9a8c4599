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

What a schema may hold is bounded too, at registration and again before any check (a version
stored before a rule was made is held to it): references only within the document (``#...``:
nothing is ever fetched, from a network or a file, and the validator's registry refuses to
retrieve anything whatever the schema says), at most :data:`MAX_SCHEMA_KEYWORDS` keywords and
values (a definition's schemas as many in all), :data:`MAX_SCHEMA_DEPTH` levels of nesting and
patterns of :data:`MAX_PATTERN_LENGTH` characters, and a ``$schema`` naming a draft jsonschema
knows; and data checked against a schema holds at most :data:`MAX_CHECKED_VALUES` values.
"""

from __future__ import annotations

import contextvars
import functools
import itertools
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any
from urllib.parse import unquote

import jsonschema
import referencing
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
# keywords and values of one schema, every one counted; a definition's schemas hold as many in
# all (registering checks each against the JSON Schema meta-schema: about 0.25 ms of CPU each)
MAX_SCHEMA_KEYWORDS = 5_000
MAX_SCHEMA_DEPTH = 32  # levels of objects and lists (each nested property takes two)
MAX_PATTERN_LENGTH = 1_000  # characters of a pattern (pattern, patternProperties)
MAX_CHECKED_VALUES = 50_000  # values of data checked against a schema (about 15 µs each, or more)

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


def _children(item: Mapping[str, Any]) -> Iterator[Any]:
    """The values of ``item``'s keywords that hold schemas (not ``enum`` values, say)."""
    for key in _SCHEMA_MAPS:
        if isinstance(item.get(key), Mapping):
            yield from item[key].values()
    for key in (*_SCHEMA_LISTS, *_SCHEMA_ONE):
        value = item.get(key)
        yield from value if isinstance(value, list) else [value]


def _subschemas(schema: Any) -> Iterator[Mapping[str, Any]]:
    """``schema`` and every schema within it, by keyword position."""
    stack = [schema]
    while stack:
        item = stack.pop()
        if isinstance(item, Mapping):
            yield item
            stack.extend(_children(item))


_REFERENCES = ("$ref", "$dynamicRef", "$recursiveRef")


def _pointed(bases: tuple[Mapping[str, Any], ...], reference: str) -> Iterator[Any]:
    """What a JSON pointer reference (``#/a/b``) names in each of ``bases``."""
    if not reference.startswith("#/"):
        return
    parts = [unquote(part).replace("~1", "/").replace("~0", "~") for part in reference[2:].split("/")]
    for base in bases:
        item: Any = base
        for part in parts:
            if isinstance(item, Mapping) and part in item:
                item = item[part]
            elif isinstance(item, list) and part.isdigit() and int(part) < len(item):
                item = item[int(part)]
            else:
                break
        else:
            yield item


def _applied(schema: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    """Every schema within ``schema`` that a check may apply, once each: by keyword position,
    and wherever a reference within the document points (even a place no keyword reads, an
    ``enum`` value say), from the nearest ``$id`` above it or from the document."""
    seen: set[int] = set()
    stack: list[tuple[Any, Mapping[str, Any]]] = [(schema, schema)]  # (a schema, its base)
    while stack:
        item, base = stack.pop()
        if not isinstance(item, Mapping) or id(item) in seen:
            continue
        seen.add(id(item))
        yield item
        if "$id" in item:
            base = item
        stack.extend((child, base) for child in _children(item))
        for key in _REFERENCES:
            reference = item.get(key)
            if isinstance(reference, str):
                stack.extend((target, base) for target in _pointed((base, schema), reference))


def _values(schema: Any) -> Iterator[Any]:
    """Every value of ``schema``, at any depth (the walk is iterative)."""
    stack = [schema]
    while stack:
        item = stack.pop()
        yield item
        if isinstance(item, Mapping):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def schema_size(schema: Mapping[str, Any]) -> int:
    """How many keywords and values ``schema`` holds, counted up to one more than the limit."""
    return sum(1 for _ in itertools.islice(_values(schema), 1, MAX_SCHEMA_KEYWORDS + 2))


def _size_problem(schema: Mapping[str, Any]) -> str | None:
    """Why ``schema`` is too large or too deep to check at a bounded cost, or None."""
    counted = 0
    stack: list[tuple[Any, int]] = [(schema, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_SCHEMA_DEPTH:
            return f"the schema is nested more than {MAX_SCHEMA_DEPTH} levels deep"
        children = item.values() if isinstance(item, Mapping) else item if isinstance(item, list) else ()
        for child in children:
            counted += 1
            if counted > MAX_SCHEMA_KEYWORDS:
                return f"the schema holds more than {MAX_SCHEMA_KEYWORDS} keywords and values"
            if isinstance(child, (Mapping, list)):
                stack.append((child, depth + 1))
    return None


def _reference_problem(schema: Mapping[str, Any]) -> str | None:
    """A reference that does not point within the document, if any. Every mapping is looked at,
    whatever its place: a reference within the document may point anywhere in it."""
    for item in _values(schema):
        if not isinstance(item, Mapping):
            continue
        for key in _REFERENCES:
            reference = item.get(key)
            if isinstance(reference, str) and not reference.startswith("#"):
                return (
                    f"{key} {reference[:100]!r} refers outside the schema: only references within "
                    "it (#/$defs/..., #) are allowed; nothing is fetched from a network or a file"
                )
    return None


def _pattern_problem(sub: Mapping[str, Any]) -> str | None:
    patterns = [sub.get("pattern")]
    if isinstance(sub.get("patternProperties"), Mapping):
        patterns.extend(sub["patternProperties"])
    for pattern in patterns:
        if isinstance(pattern, str) and len(pattern) > MAX_PATTERN_LENGTH:
            return f"a pattern longer than {MAX_PATTERN_LENGTH} characters ({pattern[:40]!r}...)"
    return None


def schema_problem(schema: Mapping[str, Any]) -> str | None:
    """Why a valid JSON Schema cannot be used by the engine, or None."""
    problem = _size_problem(schema) or _reference_problem(schema)
    if problem is not None:
        return problem
    for sub in _applied(schema):
        used = [key for key in _UNBOUNDED if key in sub]
        if used:
            return (
                f"{used[0]} is not supported: jsonschema evaluates it without a bound on the work "
                "(use additionalProperties or items)"
            )
        problem = _pattern_problem(sub) or _dialect_problem(sub)
        if problem is not None:
            return problem
    return None


def _dialect_problem(sub: Mapping[str, Any]) -> str | None:
    """A ``$schema`` that names no JSON Schema draft jsonschema knows (it would warn, or fail)."""
    if "$schema" not in sub:
        return None
    dialect = sub["$schema"]
    if isinstance(dialect, str) and jsonschema.validators.validator_for(sub, default=None) is not None:
        return None
    shown = repr(dialect[:100]) if isinstance(dialect, str) else f"a {type(dialect).__name__}"
    return (
        f"$schema {shown} is not a JSON Schema draft the engine knows "
        "(https://json-schema.org/draft/2020-12/schema, or draft-07 and earlier; or leave it out)"
    )


def _refuse_to_retrieve(uri: str) -> referencing.Resource[Any]:
    raise referencing.exceptions.NoSuchResource(ref=uri)  # type: ignore[call-arg]


# where a check looks up what a schema refers to: the schema itself (and the JSON Schema
# meta-schemas jsonschema adds), never a network or a file
_NOWHERE: referencing.Registry[Any] = referencing.Registry(retrieve=_refuse_to_retrieve)  # type: ignore[call-arg]


def _too_many_values(data: Any) -> bool:
    return next(itertools.islice(_values(data), MAX_CHECKED_VALUES, None), _END) is not _END


_END = object()


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
    if _too_many_values(data):
        problem = f"holds more than {MAX_CHECKED_VALUES} values: too many to check against the schema"
        raise InputError(what, [Problem("(root)", problem)])
    validator = _bounded(jsonschema.validators.validator_for(schema))(schema, registry=_NOWHERE)
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
