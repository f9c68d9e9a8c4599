"""How much work one operator's request can make a deployment do, against a real `wfe api`, a
real worker and coordinator, Redis and PostgreSQL: a tree of child executions has a number of
executions it may start, test runs are isolated, bounded and cleaned up, and the event stream
of an ended execution sends its whole history."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from tests.integration.conftest import FAST, broker_settings
from tests.integration.test_api_server import Server, serving
from tests.support.polling import poll
from workflow_engine.settings import Settings
from workflow_engine.store import schema as t

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600), pytest.mark.long]
MAX_DESCENDANTS = 30
TEST_RUN_TIMEOUT = 3.0
SHARED_MEMORY = Path("/dev/shm")  # where the harness makes its databases


@pytest.fixture(scope="module")
def bounded(redis_url: str, pg_module_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """`wfe api`, a worker and a coordinator with a small allowance of child executions and a
    short time limit for test runs; alice is an operator."""
    settings = Settings(
        database_url=pg_module_url,
        **broker_settings("redis", redis_url),
        **FAST,
        jwt_secret="integration-test-secret-0123456789abcdef",
        max_descendants=MAX_DESCENDANTS,
        test_run_timeout=TEST_RUN_TIMEOUT,
    )
    with serving(settings, tmp_path_factory.mktemp("bounded"), {"alice": "operator"}) as served:
        yield served


def count(server: Server, query: sa.Select[Any]) -> int:
    with server.cluster.engine.store.reading() as connection:
        return int(connection.execute(query).scalar_one())


# a tree of child executions


def test_two_versions_whose_maps_start_each_other_stop_at_the_descendant_limit(bounded: Server) -> None:
    # every item may fail, so that no failure ends the tree early: without a limit, 2 items a
    # level and 8 levels make 511 executions
    each: dict[str, Any] = {
        "name": "each",
        "type": "map",
        "items": "input.items",
        "input": {"items": "input.items"},
        "tolerated_failures": "100%",
    }
    leaf = {"name": "ping", "version": "1.0.0", "steps": [{"name": "leaf", "agent": "echo"}]}
    pong = {"name": "pong", "version": "1.0.0", "steps": [{**each, "workflow": "ping"}]}
    ping = {"name": "ping", "version": "2.0.0", "steps": [{**each, "workflow": "pong"}]}
    for definition in (leaf, pong, ping):  # (pong starts the latest ping: 2.0.0, once registered)
        bounded.register(definition)
    root = bounded.start("ping", input_data={"items": [1, 2]})
    assert bounded.cluster.wait(root, timeout=240).status in {"completed", "failed"}
    e = t.executions
    mine = e.c.workflow_name.in_(["ping", "pong"])
    still_open = e.c.status.in_(["running", "initialized", "paused", "waiting"])
    open_ones = sa.select(sa.func.count()).select_from(e).where(mine, still_open)
    poll(lambda: count(bounded, open_ones) == 0, timeout=120, what="every execution of the tree to end")
    assert count(bounded, sa.select(sa.func.count()).select_from(e).where(mine)) == 1 + MAX_DESCENDANTS
    lineage = sa.select(t.lineages.c.started).where(t.lineages.c.root_execution_id == root)
    assert count(bounded, lineage) == MAX_DESCENDANTS
    r = t.step_runs
    refused = sa.select(sa.func.count()).select_from(r).where(r.c.error_message.like("DESCENDANT_LIMIT:%"))
    assert count(bounded, refused) >= 1


# the event stream of an ended execution


def test_the_event_stream_of_an_ended_execution_sends_its_whole_history(bounded: Server) -> None:
    wide = {
        "name": "wide",
        "version": "1.0.0",
        "steps": [{"name": "each", "type": "map", "items": "input.items", "agent": "echo"}],
    }
    bounded.register(wide)
    execution = bounded.start("wide", input_data={"items": list(range(600))})
    assert bounded.cluster.wait(execution, timeout=300).status == "completed"
    stored = count(
        bounded, sa.select(sa.func.count()).select_from(t.events).where(t.events.c.execution_id == execution)
    )
    assert stored > 1000  # (more than one page)
    events: list[tuple[str, dict[str, Any]]] = []
    kind = ""
    with bounded.http.stream(
        "GET", f"/api/v1/executions/{execution}/events", headers=bounded.auth("alice"), timeout=120
    ) as stream:
        for line in stream.iter_lines():
            if line.startswith("event:"):
                kind = line.split(":", 1)[1].strip()
            elif line.startswith("data:"):
                events.append((kind, json.loads(line.split(":", 1)[1])))
    transitions = [event["id"] for kind, event in events if kind == "transition"]
    assert len(transitions) == stored and len(set(transitions)) == stored
    assert transitions == sorted(transitions)
    assert events[-1] == ("end", {"execution_id": execution, "status": "completed"})


# test runs


def harness_folders() -> set[str]:
    if not SHARED_MEMORY.is_dir():
        return set()
    return {entry.name for entry in SHARED_MEMORY.iterdir() if entry.name.startswith("wfe-harness-")}


def with_cases(name: str, cases: list[dict[str, Any]], items: bool = False) -> dict[str, Any]:
    step: dict[str, Any] = {"name": "each", "type": "map", "items": "input.items", "agent": "echo"}
    return {
        "name": name,
        "version": "1.0.0",
        "steps": [step] if items else [{"name": "one", "agent": "echo"}],
        "tests": cases,
    }


def at_once(base: str, body: dict[str, Any], headers: dict[str, str], count: int = 2) -> list[httpx.Response]:
    """``count`` POST /testing/runs of ``body`` sent at the same moment; their answers."""
    answers: list[httpx.Response] = []
    barrier = threading.Barrier(count)

    def run() -> None:
        with httpx.Client(base_url=base, timeout=120) as http:
            barrier.wait()
            answers.append(http.post("/api/v1/testing/runs", json=body, headers=headers))

    threads = [threading.Thread(target=run) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return answers


def test_test_runs_at_once_each_run_in_their_own_database_and_leave_nothing_behind(bounded: Server) -> None:
    before = harness_folders()
    case = {"name": "works", "mocks": {"echo": {"done": True}}, "expect": {"status": "completed"}}
    bounded.register(with_cases("tested-at-once", [case, {**case, "name": "again"}]))
    headers = bounded.auth("alice")
    for _ in range(3):
        answers = at_once(str(bounded.http.base_url), {"workflow": "tested-at-once"}, headers)
        assert [a.status_code for a in answers] == [201, 201], [a.text for a in answers]
        assert all(a.json()["passed"] == 2 and a.json()["failed"] == 0 for a in answers)
    poll(lambda: harness_folders() <= before, timeout=30, what="the test runs' folders to be removed")


def test_a_test_run_longer_than_its_time_limit_is_stopped_and_recorded_failed(bounded: Server) -> None:
    before = harness_folders()
    case = {
        "name": "a long map",
        "input": {"items": list(range(1000))},
        "mocks": {"echo": {"done": True}},
        "expect": {"status": "completed"},
    }
    cases = [{**case, "name": f"a long map {n}"} for n in range(6)]
    bounded.register(with_cases("tested-too-long", cases, items=True))
    began = time.monotonic()
    answer = bounded.post("/testing/runs", json={"workflow": "tested-too-long"}, timeout=300)
    assert answer.status_code == 201, answer.text
    assert time.monotonic() - began < 120  # (stopped: six such cases take minutes on two cores)
    run = answer.json()
    assert run["failed"] >= 1
    stopped = [c for c in run["cases"] if any("WFE_TEST_RUN_TIMEOUT" in d for d in c["differences"])]
    assert stopped, run["cases"]
    kept = bounded.get(f"/testing/runs/{run['id']}").json()
    assert kept["failed"] == run["failed"]
    poll(lambda: harness_folders() <= before, timeout=30, what="the test run's folder to be removed")


def test_a_test_runs_map_longer_than_its_item_limit_fails_its_step(bounded: Server) -> None:
    case = {
        "name": "too many items",
        "input": {"items": list(range(5000))},
        "mocks": {"echo": {"done": True}},
        "expect": {"status": "failed", "steps": {"each": "failed"}},
    }
    bounded.register(with_cases("tested-too-wide", [case], items=True))
    answer = bounded.post("/testing/runs", json={"workflow": "tested-too-wide"}, timeout=300)
    assert answer.status_code == 201, answer.text
    assert answer.json()["passed"] == 1, answer.json()["cases"]
