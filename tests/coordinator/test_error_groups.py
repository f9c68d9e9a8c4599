"""Error groups on SQLite and PostgreSQL: failed attempts grouped by workflow, step, type, code
and masked message, counted with first and last seen and the executions affected, only the
caller's; retrying a group retries each failed execution from its failed step."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from tests.support.harness import Harness
from workflow_engine.definitions import WorkflowBuilder
from workflow_engine.error_groups import ErrorGroups
from workflow_engine.errors import FatalError

FIXED: set[str] = set()


def charge(ctx: Any) -> dict[str, Any]:
    if ctx.input["order"] not in FIXED:
        raise FatalError(
            f"card declined for order-{ctx.input['order']} (attempt {ctx.attempt})", code="DECLINED"
        )
    return {}


def test_failures_of_one_kind_are_one_group_and_retrying_it_retries_each(harness: Harness) -> None:
    FIXED.clear()
    harness.register(WorkflowBuilder("pay").agent("prepare").agent("charge", after="prepare"))
    harness.agent("charge", charge)
    owner = harness.store.create_user("alice", None, "operator").id
    other = harness.store.create_user("bob", None, "operator").id
    mine = [harness.start("pay", input_data={"order": n}, owner_id=owner).id for n in (1, 2, 3)]
    harness.work()
    harness.clock.advance(5)
    theirs = harness.start("pay", input_data={"order": 9}, owner_id=other).id
    harness.work()
    groups = ErrorGroups(harness.coordinator)
    (group,) = groups.list()
    assert (group.workflow, group.step, group.code) == ("pay", "charge", "DECLINED")
    assert group.error_type == "fatal"
    assert group.message == "card declined for <id> (attempt <n>)"
    assert group.count == 4 and sorted(group.execution_ids) == sorted([*mine, theirs])
    assert group.last_seen is not None and group.first_seen is not None
    assert group.last_seen - group.first_seen == timedelta(seconds=5)
    (own,) = groups.list(owner_id=owner)
    assert own.group == group.group and sorted(own.execution_ids) == sorted(mine)  # alice's only
    assert (
        groups.list(since=timedelta(seconds=1)) != []
        and groups.list(since=timedelta(seconds=1))[0].count == 1
    )
    FIXED.update({1, 2, 3, 9})
    result = groups.retry(group.group, actor="alice", owner_id=owner)
    assert (result.matched, result.changed, result.refused) == (3, 3, 0)
    harness.work()
    assert {harness.store.get_execution(e).status for e in mine} == {"completed"}
    assert harness.store.get_execution(theirs).status == "failed"  # another user's is not retried
    assert [r.attempt for r in harness.runs(mine[0], "prepare")] == [1]  # from the failed step


def test_different_errors_are_different_groups(harness: Harness) -> None:
    harness.register(WorkflowBuilder("two").agent("a").agent("b", after="a"))
    harness.agent("a", lambda ctx: (_ for _ in ()).throw(FatalError("bad input 'x'", code="E1")))
    harness.run("two")
    harness.agent("a", lambda ctx: (_ for _ in ()).throw(FatalError("bad input 'y'", code="E2")))
    harness.run("two")
    groups = ErrorGroups(harness.coordinator).list()
    assert sorted(g.code or "" for g in groups) == ["E1", "E2"]
    assert {g.message for g in groups} == {"bad input <id>"}
