"""Secret values in payloads: where a definition says they are, how a sealed one is written, and
how one is hidden or opened. Pure: the sealing and opening themselves are functions given in
(the keys live in :mod:`workflow_engine.secrets`).

A sealed value is a JSON object of one key, ``{"$sealed": "<token>"}``, in place of the value
itself: it travels through the store, the broker's messages and child executions as it is,
and every view shows it as ``"***"``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

SEALED = "$sealed"
MASK = "***"
Seal = Callable[[Any], str]
Open = Callable[[str], Any]


def is_sealed(value: Any) -> bool:
    return isinstance(value, dict) and len(value) == 1 and isinstance(value.get(SEALED), str)


def schema_secrets(schema: Mapping[str, Any] | None, prefix: str = "input") -> list[str]:
    """The paths of the ``writeOnly`` properties of a JSON Schema (nested objects included)."""
    found: list[str] = []
    properties = (schema or {}).get("properties")
    if not isinstance(properties, Mapping):
        return found
    for name, sub in properties.items():
        if not isinstance(sub, Mapping):
            continue
        path = f"{prefix}.{name}"
        if sub.get("writeOnly") is True:
            found.append(path)
        else:
            found.extend(schema_secrets(sub, path))
    return found


@dataclass(frozen=True)
class SecretPaths:
    """What a definition declares secret: paths into its input, and into each step's output."""

    input: tuple[tuple[str, ...], ...] = ()
    outputs: Mapping[str, tuple[tuple[str, ...], ...]] = field(default_factory=dict)

    @classmethod
    def of(cls, declared: Iterable[str]) -> SecretPaths:
        inputs: list[tuple[str, ...]] = []
        outputs: dict[str, list[tuple[str, ...]]] = {}
        for path in dict.fromkeys(declared):
            parts = tuple(path.split("."))
            if parts[0] == "input":
                inputs.append(parts[1:])
            elif parts[0] == "steps" and len(parts) >= 2:
                outputs.setdefault(parts[1], []).append(parts[2:])
        return cls(tuple(inputs), {step: tuple(paths) for step, paths in outputs.items()})

    def __bool__(self) -> bool:
        return bool(self.input or self.outputs)


def path_problem(path: str, steps: Iterable[str]) -> str | None:
    """Why ``path`` can never name a value of an execution, or None."""
    parts = path.split(".")
    if any(part == "" for part in parts):
        return f"{path!r} is not a dotted path (input.NAME or steps.STEP.NAME)"
    if parts[0] == "input":
        return None if len(parts) >= 2 else f"{path!r} names the whole input: name a field of it"
    if parts[0] == "steps":
        if len(parts) < 3:
            return f"{path!r} names a whole output: name a field of it (steps.STEP.NAME)"
        if parts[1] not in set(steps):
            return f"{path!r} names no step of this workflow"
        return None
    return f"{path!r} must start with input. or steps."


def seal_paths(value: Any, paths: Iterable[tuple[str, ...]], seal: Seal) -> Any:
    """``value`` with what lies at each of ``paths`` sealed (a path absent is left alone)."""
    for path in paths:
        value = _seal_at(value, path, seal)
    return value


def _seal_at(value: Any, path: tuple[str, ...], seal: Seal) -> Any:
    if not path:
        return value if is_sealed(value) else {SEALED: seal(value)}
    if not isinstance(value, dict) or path[0] not in value:
        return value
    return {**value, path[0]: _seal_at(value[path[0]], path[1:], seal)}


def seal_known(value: Any, plain: Mapping[str, Any], seal: Seal) -> Any:
    """``value`` with every string equal to one of the ``plain`` secret texts sealed: a secret an
    agent was given and hands on stays sealed wherever it puts it."""
    if not plain:
        return value
    if isinstance(value, str):
        return {SEALED: seal(value)} if value in plain else value
    if isinstance(value, dict):
        if is_sealed(value):
            return value
        return {key: seal_known(item, plain, seal) for key, item in value.items()}
    if isinstance(value, list):
        return [seal_known(item, plain, seal) for item in value]
    return value


def open_all(value: Any, open_: Open, opened: dict[str, Any] | None = None) -> Any:
    """``value`` with every sealed value opened; the texts of those opened (strings, and the
    strings inside any opened object) are added to ``opened``, to be hidden in what leaves."""
    if is_sealed(value):
        plain = open_(value[SEALED])
        if opened is not None:
            for text in _texts(plain):
                opened[text] = True
        return plain
    if isinstance(value, dict):
        return {key: open_all(item, open_, opened) for key, item in value.items()}
    if isinstance(value, list):
        return [open_all(item, open_, opened) for item in value]
    return value


def _texts(value: Any) -> Iterable[str]:
    if isinstance(value, str):
        if value:
            yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _texts(item)
    elif isinstance(value, list):
        for item in value:
            yield from _texts(item)
    elif value is not None and not isinstance(value, bool):
        yield str(value)


def has_sealed(value: Any) -> bool:
    if is_sealed(value):
        return True
    if isinstance(value, dict):
        return any(has_sealed(item) for item in value.values())
    if isinstance(value, list):
        return any(has_sealed(item) for item in value)
    return False


def masked(value: Any) -> Any:
    """``value`` as a view shows it: every sealed value as ``"***"``."""
    if not has_sealed(value):
        return value
    return _masked(value)


def _masked(value: Any) -> Any:
    if is_sealed(value):
        return MASK
    if isinstance(value, dict):
        return {key: _masked(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_masked(item) for item in value]
    return value


def hide(text: str, plain: Iterable[str]) -> str:
    """``text`` with each of the ``plain`` secret texts in it replaced by ``"***"`` (the longest
    first, so one inside another does not leave a part of it)."""
    for secret in sorted(plain, key=len, reverse=True):
        if len(secret) >= 3 and secret in text:
            text = text.replace(secret, MASK)
    return text


def retokened(value: Any, again: Callable[[str], str | None]) -> tuple[Any, bool]:
    """``value`` with each sealed value's token given by ``again`` (None: kept as it is), and
    whether any changed."""
    changed = False

    def walk(item: Any) -> Any:
        nonlocal changed
        if is_sealed(item):
            token = again(item[SEALED])
            if token is None:
                return item
            changed = True
            return {SEALED: token}
        if isinstance(item, dict):
            return {key: walk(inner) for key, inner in item.items()}
        if isinstance(item, list):
            return [walk(inner) for inner in item]
        return item

    result = walk(value)
    return result, changed
