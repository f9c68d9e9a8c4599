"""Agents: the functions that do a step's work, and the context they receive.

    from workflow_engine import agent, TransientError

    @agent("regdata")
    def enrich(ctx):
        ...
        return {"records": 12}

Workers import the modules named in ``WFE_AGENT_MODULES`` (or ``wfe worker --agents``); the
decorator registers each agent in :data:`REGISTRY` as the module is imported.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import sys
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property
from pathlib import Path
from typing import Any, Protocol, TypeVar

from workflow_engine.clock import Clock
from workflow_engine.errors import ConfigurationError, StepError

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class AgentSpec:
    name: str
    function: Callable[..., Any]
    is_async: bool = False  # a coroutine function: run to completion on the worker's event loop


class AgentRegistry:
    """Agents by name; one name, one function."""

    def __init__(self) -> None:
        self._agents: dict[str, AgentSpec] = {}
        self._lock = threading.Lock()

    def register(self, name: str, function: Callable[..., Any], replace: bool = False) -> AgentSpec:
        """Add an agent; registering another function under a taken name is an error."""
        with self._lock:
            existing = self._agents.get(name)
            if existing is not None and existing.function is not function and not replace:
                where = f"{existing.function.__module__}.{existing.function.__qualname__}"
                raise ConfigurationError(f"agent {name!r} is registered twice (first by {where})")
            spec = AgentSpec(name, function, inspect.iscoroutinefunction(function))
            self._agents[name] = spec
            return spec

    def get(self, name: str) -> AgentSpec | None:
        return self._agents.get(name)

    def names(self) -> frozenset[str]:
        return frozenset(self._agents)

    def __contains__(self, name: object) -> bool:
        return name in self._agents


REGISTRY = AgentRegistry()


def agent(name: str | None = None, registry: AgentRegistry | None = None) -> Callable[[F], F]:
    """Register the decorated function as the agent ``name`` (default: the function's name)."""

    def register(function: F) -> F:
        (registry or REGISTRY).register(name or function.__name__, function)
        return function

    return register


def load_modules(modules: Iterable[str], what: str = "agent") -> list[str]:
    """Import ``what`` modules (of agents, of Celery tasks); a module that cannot be imported is
    a clear configuration error.

    Each is a module name, imported as Python imports it (the directory a `wfe` command runs in
    comes first on its path), or the path of a ``.py`` file, imported by its name from its folder.
    """
    loaded = []
    for module in modules:
        if module.endswith(".py"):
            module = _importable_file(module, what)
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise ConfigurationError(f"cannot import {what} module {module!r}: {exc}") from exc
        except Exception as exc:
            raise ConfigurationError(f"{what} module {module!r} failed while importing: {exc!r}") from exc
        loaded.append(module)
    return loaded


def _importable_file(path: str, what: str) -> str:
    """The module name of the ``.py`` file at ``path``, its folder put first on the path."""
    file = Path(path).resolve()
    if not file.is_file():
        raise ConfigurationError(f"cannot import {what} module {path!r}: no such file")
    folder = str(file.parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    return file.stem


class StepServices(Protocol):
    """What a context asks of the engine while its step runs."""

    def save_checkpoint(self, run_id: int, data: Any) -> None: ...

    def is_cancelled(self, run_id: int) -> bool: ...

    def outputs(self, execution_id: str) -> dict[str, Any]: ...


class StepCancelled(StepError):
    """Raised by :meth:`AgentContext.raise_if_cancelled` when the step should stop."""

    error_type = "cancelled"


class _Outputs(Mapping[str, Any]):
    """Outputs of the execution's succeeded steps, read from the store on first use."""

    def __init__(self, load: Callable[[], dict[str, Any]]) -> None:
        self._load = load
        self._data: dict[str, Any] | None = None

    def _items(self) -> dict[str, Any]:
        if self._data is None:
            self._data = self._load()
        return self._data

    def __getitem__(self, key: str) -> Any:
        return self._items()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items())

    def __len__(self) -> int:
        return len(self._items())


def idempotency_key(execution_id: str, step: str, index: int | None, retries: int) -> str:
    """The idempotency key of a step's attempts (of a map item's): the same for every attempt;
    a retry from an upstream step (the execution's ``retries``-th) starts a new one."""
    key = f"{execution_id}:{step}" if index is None else f"{execution_id}:{step}[{index}]"
    return f"{key}:r{retries}" if retries else key


class AgentContext:
    """Everything an agent knows about the step it runs.

    ``input`` is the execution's input, ``metadata`` its metadata, ``steps[name]`` the output of
    a step that has succeeded, ``config`` the step's static configuration, ``checkpoint`` what a
    previous attempt saved, ``attempt`` counts from 1, and ``idempotency_key`` is the same for
    every attempt of this step, so side effects keyed on it happen once. In a map step,
    ``item`` and ``index`` are the item and its position, and ``input`` the step's per-item
    input (the execution's input when the step maps none).
    """

    def __init__(
        self,
        *,
        run_id: int,
        execution_id: str,
        workflow: str,
        version: str,
        step_name: str,
        attempt: int,
        idempotency_key: str,
        input: dict[str, Any],
        metadata: dict[str, Any],
        config: dict[str, Any],
        checkpoint: Any,
        services: StepServices,
        item: Any = None,
        index: int | None = None,
    ) -> None:
        self.run_id = run_id
        self.execution_id = execution_id
        self.workflow = workflow
        self.version = version
        self.step_name = step_name
        self.attempt = attempt
        self.idempotency_key = idempotency_key
        self.input = input
        self.metadata = metadata
        self.config = config
        self.checkpoint = checkpoint
        self.item = item  # a map step's item (None otherwise)
        self.index = index  # and its position in the list
        self._services = services
        self.log = logging.LoggerAdapter(
            logging.getLogger(f"workflow_engine.agent.{step_name}"),
            {"execution_id": execution_id, "step": step_name, "attempt": attempt},
        )

    @cached_property
    def steps(self) -> Mapping[str, Any]:
        """The outputs of the execution's succeeded steps, by name (read on first use)."""
        return _Outputs(lambda: self._services.outputs(self.execution_id))

    def save_checkpoint(self, data: Any) -> None:
        """Persist progress now; a later attempt of this step (a retry, a resume) receives it."""
        self._services.save_checkpoint(self.run_id, data)
        self.checkpoint = data

    @property
    def cancelled(self) -> bool:
        """True once the step should stop (execution cancelled, attempt timed out or reset)."""
        return self._services.is_cancelled(self.run_id)

    def raise_if_cancelled(self) -> None:
        if self.cancelled:
            raise StepCancelled("step cancelled")


# how long a worker counts as serving its agents after it was last seen, and how long the
# catalogue trusts what it read
CATALOGUE_WINDOW = timedelta(hours=1)
CATALOGUE_TTL = 30.0


class WorkersSeen(Protocol):
    """What the catalogue reads of the store."""

    @property
    def clock(self) -> Clock: ...

    def known_agents(self, seen_since: datetime) -> set[str]: ...


class AgentCatalogue:
    """The agents known to exist: loaded in this process, or served by a worker seen lately.

    None when nothing is known (no agent loaded here, no worker ever seen): then a start is not
    refused for agents no one has declared yet; a worker reports an unknown agent as a fatal
    step error instead.
    """

    def __init__(self, store: WorkersSeen, registry: AgentRegistry) -> None:
        self.store = store
        self.registry = registry
        self._cached: tuple[float, set[str]] | None = None

    def __call__(self) -> Collection[str] | None:
        now = time.monotonic()
        if self._cached is None or now - self._cached[0] > CATALOGUE_TTL:
            seen = self.store.known_agents(self.store.clock.now() - CATALOGUE_WINDOW)
            self._cached = (now, seen)
        known = set(self.registry.names()) | self._cached[1]
        return known or None
