"""A registered version's cases run within limits: their own throwaway database (made one
migration at a time, removed whatever happens), a time limit, a size limit, runs at once."""

from __future__ import annotations

import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from workflow_engine.agents import AgentRegistry
from workflow_engine.definitions import load
from workflow_engine.errors import TooManyAttempts
from workflow_engine.settings import Settings
from workflow_engine.store import migrate
from workflow_engine.store.opening import store_for
from workflow_engine.store.repository import Store
from workflow_engine.testing import harness as harness_module
from workflow_engine.testing.registered import _slots, run_registered


@pytest.fixture
def store(new_database_url: Callable[[str], str]) -> Iterator[Store]:
    store = store_for(new_database_url("sqlite"))
    try:
        yield store
    finally:
        store.dispose()


@pytest.fixture
def folders(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The folders the harness makes for its databases, as it makes them."""
    made: list[str] = []
    original = tempfile.mkdtemp

    def mkdtemp(*args: Any, **kwargs: Any) -> str:
        folder = str(original(*args, **kwargs))
        if Path(folder).name.startswith("wfe-harness-"):
            made.append(folder)
        return folder

    monkeypatch.setattr(tempfile, "mkdtemp", mkdtemp)
    return made


def register(store: Store, items: int, cases: int = 1) -> None:
    case = {
        "input": {"items": list(range(items))},
        "mocks": {"work": {"done": True}},
        "expect": {"status": "completed"},
    }
    document = {
        "name": "tested",
        "version": "1.0.0",
        "steps": [{"name": "each", "type": "map", "items": "input.items", "agent": "work"}],
        "tests": [{**case, "name": f"case {n}"} for n in range(cases)],
    }
    store.register_workflow(load(document))


def run(store: Store, **settings: Any) -> Any:
    owner = store.system_user_id()
    return run_registered(store, "tested", None, owner, agents=AgentRegistry(), settings=Settings(**settings))


def test_a_run_past_its_time_limit_fails_each_case_left_and_removes_its_database(
    store: Store, folders: list[str]
) -> None:
    register(store, items=50, cases=3)
    done = run(store, test_run_timeout=1e-9)
    assert (done.passed, done.failed) == (0, 3)
    for case in done.cases:
        assert any("took longer than" in d and "WFE_TEST_RUN_TIMEOUT" in d for d in case["differences"])
    assert folders and not any(Path(folder).exists() for folder in folders)


def test_a_map_longer_than_a_test_runs_items_fails_its_step(store: Store) -> None:
    register(store, items=11)
    assert run(store, test_run_max_items=10).failed == 1
    assert run(store, test_run_max_items=11).passed == 1


def test_a_run_beyond_the_runs_at_once_is_refused(store: Store) -> None:
    register(store, items=1)
    slots = _slots(1)
    assert slots.acquire(blocking=False)
    try:
        with pytest.raises(TooManyAttempts, match="WFE_TEST_RUN_SLOTS"):
            run(store, test_run_slots=1)
    finally:
        slots.release()
    assert run(store, test_run_slots=1).passed == 1


def test_runs_at_once_migrate_their_databases_one_at_a_time(store: Store, folders: list[str]) -> None:
    register(store, items=3)
    results: list[Any] = []

    def one() -> None:
        try:
            results.append(run(store, test_run_slots=4).passed)
        except Exception as exc:  # (reported below)
            results.append(exc)

    threads = [threading.Thread(target=one) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [1, 1, 1, 1]
    assert len(folders) == 4 and not any(Path(folder).exists() for folder in folders)


def test_a_database_whose_migration_fails_is_removed(
    folders: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(url: str) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(migrate, "upgrade", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        harness_module.Harness()
    assert len(folders) == 1 and not Path(folders[0]).exists()
