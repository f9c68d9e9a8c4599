"""The keys that seal secret values (``WFE_ENCRYPTION_KEYS``: Fernet keys, comma-separated; the
first seals, every one opens, so a new key goes first and an old one stays until
`wfe keys rotate` has sealed everything again with the new), and what each sealed value is
bound to.

A sealed value belongs to one owner and one execution (or one schedule): its :class:`Binding`.
Fernet has no associated data, so the binding is sealed inside the token, ahead of the value,
where Fernet's HMAC authenticates it with the value, and every open checks it against the
binding the engine expects there: a token copied into another execution, another schedule or
another user's data does not open. A child execution's values are bound to the execution its
tree started from (the top-level one, whose owner is every child's): a parent hands its values
to its children and a child's output is its parent's step output, as they are, so a retried
parent still knows a child by its input, and nothing leaves the tree.

Why not AES-GCM with associated data: it would give the same guarantee (an open fails unless
the binding matches) at the cost of a second cipher and a second key format. Sealing the binding
inside the Fernet token keeps the keys Fernet keys, the key ring and its rotation (MultiFernet)
unchanged, and rotation keeps each value's binding as it is, since it only seals the same
plaintext again.

The plaintext of a bound token is ``NUL binding NUL json``; one sealed before values were bound
is the JSON alone (JSON never starts with NUL). Such an old token opens nowhere in a running
engine, whatever asks for it (where it came from cannot be told): `wfe keys rotate` seals each
one again bound to the execution or schedule whose row holds it, and after that it opens there.

Values the engine moves on legitimately are bound again by the engine itself: a schedule's
input for each execution it starts (:meth:`Keyring.rebound`). A retry, a map's item, a
checkpoint and a child's input and output stay in their tree and keep its binding.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from workflow_engine.core import secrets as core
from workflow_engine.errors import ConfigurationError, FatalError

NO_KEY = "no encryption key: set WFE_ENCRYPTION_KEYS (make one with `wfe keys new`)"
NOT_HERE = "a sealed value was given where it does not belong (it is bound to another execution or schedule)"
UNBOUND = (
    "a secret was sealed before sealed values were bound to their execution: run `wfe keys rotate`"
    " to seal it again where it is"
)
TREES_KEPT = 4096  # executions whose owner and tree a process remembers (neither ever changes)


class KeyMissing(FatalError):
    """A sealed value none of the configured keys opens (or no key is configured), or one that
    is not bound to where it was found."""

    def __init__(self, message: str) -> None:
        super().__init__(message, code="key_missing")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.message,))


def new_key() -> str:
    return Fernet.generate_key().decode()


@dataclass(frozen=True, slots=True)
class Binding:
    """What a sealed value belongs to: its owner's id, and an execution or a schedule (an
    execution with a ``parent``: the top-level execution of its tree, looked up)."""

    owner: int
    kind: str  # "execution" or "schedule"
    name: str  # the execution's id, or the schedule's name
    parent: str | None = None  # a child execution's parent

    @classmethod
    def execution(cls, owner: int, execution_id: str, parent: str | None = None) -> Binding:
        return cls(int(owner), "execution", execution_id, parent)

    @classmethod
    def schedule(cls, owner: int, name: str) -> Binding:
        return cls(int(owner), "schedule", name)


def handed_on(owner: int, parent_id: str, grandparent_id: str | None) -> tuple[Binding, Binding]:
    """What the values a parent hands its child are bound to there, and were bound to: the
    same, its tree's."""
    tree = Binding.execution(owner, parent_id, grandparent_id)
    return tree, tree


# an execution's owner and the top-level execution of its tree, by its id (None: no such execution)
TreeOf = Callable[[str], tuple[int, str] | None]


class Keyring:
    """The configured keys, and optionally the binding they seal and open for (see
    :meth:`bound`, :meth:`for_execution`)."""

    def __init__(
        self,
        keys: str | None,
        trees: TreeOf | None = None,
        *,
        _fernets: tuple[list[Fernet], MultiFernet | None] | None = None,
        _binding: Binding | Callable[[], Binding] | None = None,
    ) -> None:
        if _fernets is None:
            texts = [key.strip() for key in (keys or "").split(",") if key.strip()]
            try:
                fernets = [Fernet(text) for text in texts]
            except ValueError:
                raise ConfigurationError(
                    "WFE_ENCRYPTION_KEYS: each key must be 32 url-safe base64-encoded bytes"
                    " (make one with `wfe keys new`)"
                ) from None
            _fernets = (fernets, MultiFernet(fernets) if fernets else None)
        self._all = _fernets
        self._fernet = _fernets[1]
        self._first = _fernets[0][0] if _fernets[0] else None
        self._trees = trees
        self._binding = _binding
        self._known: OrderedDict[str, tuple[int, str]] = OrderedDict()
        self._lock = threading.Lock()

    def __bool__(self) -> bool:
        return self._fernet is not None

    # binding

    def bound(self, binding: Binding | Callable[[], Binding]) -> Keyring:
        """These keys, sealing and opening for ``binding`` only (a function: worked out the
        first time a value is sealed or opened)."""
        ring = Keyring(None, self._trees, _fernets=self._all, _binding=binding)
        ring._known, ring._lock = self._known, self._lock  # (one memory of trees for all)
        return ring

    def for_execution(self, execution_id: str) -> Keyring:
        """These keys, for the values of ``execution_id`` (its owner and tree looked up the
        first time one is sealed or opened)."""
        return self.bound(lambda: self._tree(execution_id))

    def for_attempt(
        self, execution_id: str, *values: Any
    ) -> tuple[Keyring | None, tuple[Any, ...], dict[str, Any]]:
        """What a step attempt of ``execution_id`` is given: these keys bound to its values (None
        when no key is configured), ``values`` with their sealed values opened, and the secret
        texts those held (to be hidden in all the attempt tells)."""
        texts: dict[str, Any] = {}
        if self._fernet is None and not any(map(core.has_sealed, values)):
            return None, values, texts
        keys = self.for_execution(execution_id)
        opened = tuple(keys.opened(value, texts) for value in values)
        return (keys if keys else None), opened, texts

    def _tree(self, execution_id: str) -> Binding:
        """The binding of ``execution_id``'s values: its owner and its tree's top execution."""
        with self._lock:
            known = self._known.get(execution_id)
        if known is None:
            known = self._trees(execution_id) if self._trees is not None else None
            if known is None:
                raise KeyMissing(NOT_HERE)
            with self._lock:
                self._known[execution_id] = known
                while len(self._known) > TREES_KEPT:
                    self._known.popitem(last=False)
        return Binding.execution(*known)

    def _text(self, binding: Binding | None) -> str:
        chosen = binding if binding is not None else self._binding
        if chosen is None:
            raise KeyMissing(NOT_HERE)  # (an engine's mistake: every seal and open says where)
        if not isinstance(chosen, Binding):
            chosen = self._binding = chosen()
        if chosen.parent is not None:  # a child's: its tree's
            root = self._tree(chosen.parent)
            if root.owner != chosen.owner:
                raise KeyMissing(NOT_HERE)
            chosen = root
        return f"{chosen.owner}/{chosen.kind}/{chosen.name}"

    # sealing and opening

    def seal(self, value: Any, binding: Binding | None = None) -> str:
        """``value`` sealed for ``binding`` (else this ring's own)."""
        if self._fernet is None:
            raise ConfigurationError(NO_KEY)
        body = json.dumps(value, separators=(",", ":")).encode()
        plain = b"\0" + self._text(binding).encode() + b"\0" + body
        return self._fernet.encrypt(plain).decode()

    def open(self, token: str, binding: Binding | None = None) -> Any:
        """The value sealed in ``token``, if it is bound to ``binding`` (else this ring's own)."""
        found, value = _unpacked(self._decrypt(token))
        if found is None:
            raise KeyMissing(UNBOUND)
        if found != self._text(binding):
            raise KeyMissing(NOT_HERE)
        return value

    def _decrypt(self, token: str) -> bytes:
        if self._fernet is None:
            raise KeyMissing("a secret is sealed and no key is configured: set WFE_ENCRYPTION_KEYS")
        try:
            return self._fernet.decrypt(token.encode())
        except InvalidToken:
            raise KeyMissing("a secret was sealed with a key that is not in WFE_ENCRYPTION_KEYS") from None

    def rotate(self, token: str, binding: Binding | None = None) -> str | None:
        """``token`` sealed again with the first key (opened with any); None when the first key
        sealed it already, bound (so a rotation stopped halfway goes on where it was). A token
        sealed before values were bound is bound to ``binding``, where it was found; one bound
        already keeps its binding."""
        if self._fernet is None or self._first is None:
            raise ConfigurationError(NO_KEY)
        try:
            plain = self._first.decrypt(token.encode())
            if _unpacked(plain)[0] is not None:
                return None
        except InvalidToken:
            plain = self._decrypt(token)
        found, value = _unpacked(plain)
        if found is None:  # sealed before bindings: bound where it is
            if binding is None:
                raise KeyMissing(UNBOUND)
            return self.seal(value, binding)
        return self._first.encrypt(plain).decode()

    def sealed(
        self, value: Any, paths: Iterable[tuple[str, ...]] = (), known: Mapping[str, Any] | None = None
    ) -> Any:
        """``value`` with what lies at ``paths`` sealed; with ``known`` (the secret texts an
        agent was given), every string or number equal to one of those, or to a text sealed at
        ``paths``, is sealed too and each shows nowhere else in it (see
        :func:`~workflow_engine.core.secrets.seal_known`)."""
        if known is None:
            return core.seal_paths(value, paths, self.seal)
        texts = dict(known)

        def seal(plain: Any) -> str:
            texts.update(dict.fromkeys(core.texts_of(plain), True))
            return self.seal(plain)

        value = core.seal_paths(value, paths, seal)
        return core.seal_known(value, texts, self.seal)

    def rotated(self, value: Any, binding: Binding | None = None) -> tuple[Any, bool]:
        """``value`` with its secrets sealed with the first key (those sealed before bindings
        bound to ``binding``), and whether any changed."""
        return core.retokened(value, lambda token: self.rotate(token, binding))

    def opened(self, value: Any, texts: dict[str, Any]) -> Any:
        """``value`` with its sealed values opened (their texts added to ``texts``)."""
        return core.open_all(value, self.open, texts) if core.has_sealed(value) else value

    def rebound(self, value: Any, source: Binding, target: Binding) -> Any:
        """``value`` with each sealed value bound to ``source`` sealed again for ``target`` (what
        the engine does with the values it moves on: a schedule's to its executions, a
        parent's to its child); one bound elsewhere fails as :class:`KeyMissing`."""
        if not core.has_sealed(value):
            return value
        again, _ = core.retokened(value, lambda token: self.seal(self.open(token, source), target))
        return again


def _unpacked(plain: bytes) -> tuple[str | None, Any]:
    """The binding's text (None: sealed before bindings) and the value of a token's plaintext."""
    if plain[:1] != b"\0":
        return None, json.loads(plain)
    binding, _, body = plain[1:].partition(b"\0")
    return binding.decode(), json.loads(body)
