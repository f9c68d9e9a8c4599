"""Secret values in payloads: where a definition says they are, how a sealed one is written, and
how one is hidden or opened. Pure: the sealing and opening themselves are functions given in
(the keys, and what a sealed value is bound to, live in :mod:`workflow_engine.secrets`).

A sealed value is a JSON object of one key, ``{"$sealed": "<token>"}``, in place of the value
itself: it travels through the store, the broker's messages and child executions as it is,
and every view shows it as ``"***"``. Only the engine makes one: data from outside holding the
key ``"$sealed"`` is refused (:func:`sealed_problem`).

What an agent or an expression makes out of a secret it was given is masked before anything
about it is stored or shown (:func:`masked_known`, :func:`hide`): a known secret text of
:data:`MIN_TEXT` characters or more wherever it appears in a string (a longer one, a mapping's
key, an error's type, code, message or traceback, a log line), and a number equal to a secret
number (or to a secret string's digits), whatever its size. Shorter texts are hidden only where
a value equals them: masking every ``"ab"`` inside other words would wreck the data and hide
nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from workflow_engine.errors import Problem

SEALED = "$sealed"
MASK = "***"
MIN_TEXT = 4  # a secret text this long or longer is hidden inside other text too
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
    """``value`` with every string or number equal to one of the ``plain`` secret texts sealed
    (a secret an agent was given and hands on stays sealed wherever it puts it), and every other
    place a secret shows in (inside a longer string, a key) masked (see :func:`masked_known`)."""
    if not plain:
        return value
    return _known(value, _Known(plain), seal)


def masked_known(value: Any, plain: Iterable[str]) -> Any:
    """``value`` with every one of the ``plain`` secret texts masked wherever it shows: a string
    or a number equal to one is ``"***"``, and one of :data:`MIN_TEXT` characters or more is
    ``***`` inside every string and every mapping's key (sealed values are left as they are)."""
    known = _Known(plain)
    return _known(value, known, None) if known else value


class _Known:
    """Secret texts, ready for a walk: all of them, and those long enough to hide inside text."""

    def __init__(self, plain: Iterable[str]) -> None:
        self.all = frozenset(plain)
        self.long = sorted((text for text in self.all if len(text) >= MIN_TEXT), key=len, reverse=True)

    def __bool__(self) -> bool:
        return bool(self.all)

    def equal(self, value: Any) -> bool:
        if isinstance(value, str):
            return value in self.all
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        if isinstance(value, float) and value.is_integer() and abs(value) < 2**63:
            return str(value) in self.all or str(int(value)) in self.all
        return str(value) in self.all

    def hide(self, text: str) -> str:
        return _hide(text, self.long)


def _known(value: Any, known: _Known, seal: Seal | None) -> Any:
    if known.equal(value):
        return {SEALED: seal(value)} if seal is not None else MASK
    if isinstance(value, str):
        return known.hide(value)
    if isinstance(value, dict):
        if is_sealed(value):
            return value
        out: dict[str, Any] = {}
        for key, item in value.items():
            shown = known.hide(key) if isinstance(key, str) else key
            while shown in out:  # (two keys hidden alike: both kept)
                shown = f"{shown}'"
            out[shown] = _known(item, known, seal)
        return out
    if isinstance(value, list):
        return [_known(item, known, seal) for item in value]
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


def texts_of(value: Any) -> Iterable[str]:
    """The secret texts of an opened value: its strings, and its numbers as text."""
    return _texts(value)


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
    if isinstance(value, dict):
        return is_sealed(value) or any(map(has_sealed, value.values()))
    if isinstance(value, list):
        return any(map(has_sealed, value))
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
    """``text`` with each of the ``plain`` secret texts of :data:`MIN_TEXT` characters or more in
    it replaced by ``"***"`` (the longest first, so one inside another leaves no part of it)."""
    return _hide(text, sorted((p for p in plain if len(p) >= MIN_TEXT), key=len, reverse=True))


def _hide(text: str, longest_first: list[str]) -> str:
    # again until none is left: a replacement can join two parts into another secret, but each
    # one shortens the text, so this ends
    while True:
        found = False
        for secret in longest_first:
            if secret in text:
                text = text.replace(secret, MASK)
                found = True
        if not found:
            return text


def hide_quoted(text: str, plain: Iterable[str]) -> str:
    """:func:`hide`, and a secret text of any length quoted in ``text`` (as ``repr`` quotes it)
    replaced by ``'***'``: for error messages, which quote the values they are about."""
    texts = list(plain)
    text = hide(text, texts)
    for secret in texts:
        if len(secret) < MIN_TEXT:
            text = text.replace(repr(secret), repr(MASK))
    return text


class Opened(dict[str, Any]):
    """A scope with its secrets opened, for conditions to read: ``texts`` are the secrets' texts,
    which no error made over it may show (see :mod:`workflow_engine.core.expressions`)."""

    def __init__(self, scope: Mapping[str, Any], texts: Iterable[str]) -> None:
        super().__init__(scope)
        self.texts = tuple(texts)


def sealed_problem(value: Any) -> Problem | None:
    """Where data from outside holds a ``"$sealed"`` key, or None: only the engine seals (a
    sealed value sent in would be opened for whoever sent it, whatever it was sealed for)."""
    stack: list[tuple[Any, str]] = [(value, "")]
    while stack:
        item, where = stack.pop()
        if isinstance(item, dict):
            if SEALED in item:
                return Problem(
                    where or "(root)",
                    f"{SEALED!r} is reserved for values the engine seals: send the plain value"
                    " (a workflow's secrets are sealed as they arrive)",
                )
            stack.extend((inner, f"{where}/{key}" if where else str(key)) for key, inner in item.items())
        elif isinstance(item, list):
            stack.extend((inner, f"{where}/{n}" if where else str(n)) for n, inner in enumerate(item))
    return None


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
