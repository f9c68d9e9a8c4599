"""An execution named by a unique prefix of its id (8 characters or more), on every store:
resolved through the primary key's index, owner-scoped like every other read; an ambiguous or
too short prefix is one clear input error."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import pytest
import sqlalchemy as sa

from tests.support.harness import Harness
from workflow_engine.coordinator import service
from workflow_engine.definitions import WorkflowBuilder
from workflow_engine.errors import ExecutionNotFound, InputError
from workflow_engine.store import listing

TWIN_1 = "abcdef01-0000-4000-8000-000000000001"
TWIN_2 = "abcdef01-0000-4000-8000-000000000002"  # the same first 35 characters as TWIN_1
SINGLE = "abcdef02-0000-4000-8000-000000000003"
THEIRS = "12345678-9abc-4def-8000-000000000004"


def planned(monkeypatch: pytest.MonkeyPatch, ids: list[str]) -> None:
    """The next executions started get these ids, in order."""
    queue = iter(ids)
    monkeypatch.setattr(service, "uuid", SimpleNamespace(uuid4=lambda: uuid.UUID(next(queue))))


@pytest.fixture
def started(harness: Harness, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Harness, int]]:
    harness.register(WorkflowBuilder("named").agent("a"))
    someone = harness.store.create_user("someone", None, "operator").id
    planned(monkeypatch, [TWIN_1, TWIN_2, SINGLE, THEIRS])
    for _ in range(3):
        harness.start("named")
    harness.start("named", owner_id=someone)
    yield harness, someone


def refused(resolve: Callable[[], Any]) -> str:
    with pytest.raises(InputError) as error:
        resolve()
    return str(error.value)


def test_a_unique_prefix_names_its_execution(started: tuple[Harness, int]) -> None:
    harness, _ = started
    store = harness.store
    assert store.resolve_execution_id("abcdef02") == SINGLE
    assert store.resolve_execution_id("ABCDEF02-0000") == SINGLE
    assert store.resolve_execution_id(SINGLE) == SINGLE
    assert store.resolve_execution_id(TWIN_1[:35] + "2") == TWIN_2
    with pytest.raises(ExecutionNotFound):
        store.resolve_execution_id("abcdef03")
    with pytest.raises(ExecutionNotFound):
        store.resolve_execution_id("abcdef0%")  # (no LIKE wildcard gets through)


def test_an_ambiguous_or_too_short_prefix_is_refused(started: tuple[Harness, int]) -> None:
    store = started[0].store
    ambiguous = refused(lambda: store.resolve_execution_id("abcdef01"))
    assert ambiguous == (
        f"invalid execution id: 'abcdef01': ambiguous: it starts the ids of {TWIN_1}, {TWIN_2}; "
        "give more characters"
    )
    assert "too short" in refused(lambda: store.resolve_execution_id("abcdef0"))
    assert "ambiguous" in refused(lambda: store.resolve_execution_id("abcdef01-0000"))


def test_a_prefix_is_resolved_among_the_executions_its_caller_sees(started: tuple[Harness, int]) -> None:
    harness, someone = started
    store = harness.store
    assert store.resolve_execution_id("12345678", owner_id=someone) == THEIRS
    system = store.system_user_id()
    with pytest.raises(ExecutionNotFound):
        store.resolve_execution_id("12345678", owner_id=system)
    assert store.resolve_execution_id("12345678") == THEIRS  # (no owner: every execution)


def test_the_shortest_prefix_shown_is_taken_back(started: tuple[Harness, int]) -> None:
    store = started[0].store
    assert store.shortest_prefix(SINGLE) == "abcdef02"
    assert store.shortest_prefix(TWIN_1) == TWIN_1  # (no shorter prefix is its alone)
    for execution_id in (SINGLE, TWIN_1, TWIN_2, THEIRS):
        assert store.resolve_execution_id(store.shortest_prefix(execution_id)) == execution_id


def test_a_prefix_is_looked_up_through_the_primary_key(started: tuple[Harness, int]) -> None:
    store = started[0].store
    statements: list[tuple[str, Any]] = []

    def seen(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        if "wfe_executions" in statement:
            statements.append((statement, parameters))

    with store.engine.connect() as conn:
        sa.event.listen(conn, "before_cursor_execute", seen)
        listing.ids_starting_with(conn, "abcdef01")
        sa.event.remove(conn, "before_cursor_execute", seen)
        [(statement, parameters)] = statements
        if store.dialect == "sqlite":
            plan = " ".join(
                str(row[-1]) for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)
            )
            assert "USING" in plan and "INDEX sqlite_autoindex_wfe_executions_1" in plan, plan
        else:
            conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
            plan = " ".join(str(row[0]) for row in conn.exec_driver_sql(f"EXPLAIN {statement}", parameters))
            assert "Index Only Scan using pk_wfe_executions" in plan and "Index Cond: ((id >=" in plan, plan
