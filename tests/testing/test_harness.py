"""workflow_engine.testing: the engine in process, agents mocked, the clock virtual."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from workflow_engine.agents import AgentContext, AgentRegistry
from workflow_engine.definitions import WorkflowBuilder, load, validate_document
from workflow_engine.errors import FatalError
from workflow_engine.testing import Harness, mocked, run_cases
from workflow_engine.testing.cases import contains


@pytest.fixture
def harness() -> Any:
    with Harness() as h:
        yield h


def chain(name: str, *agents: str) -> WorkflowBuilder:
    builder = WorkflowBuilder(name)
    for agent in agents:
        builder.agent(agent)
    return builder


def test_a_value_a_function_and_an_error_class_stand_in_for_agents(harness: Harness) -> None:
    harness.register(chain("three", "a", "b", "c"))
    harness.mock("a", {"n": 2})
    harness.mock("b", lambda ctx: {"double": ctx.steps["a"]["n"] * 2})
    harness.mock("c", FatalError)
    run = harness.start("three")
    harness.work()
    assert run.status == "failed"
    assert run.steps == {"a": "succeeded", "b": "succeeded", "c": "failed"}
    assert harness.view(run.id).steps[1].output == {"double": 4}
    assert "mocked FatalError" in run.error["message"]
    assert run.path == ["a", "b", "c"]


def test_a_transient_error_recovers_on_the_attempt_after_times_and_backoff_takes_virtual_time(
    harness: Harness,
) -> None:
    harness.register(
        {
            "name": "flaky",
            "steps": [
                {
                    "name": "call",
                    "agent": "api",
                    "retry": {"max_attempts": 4, "initial_delay": 60, "factor": 2, "max_delay": 600},
                }
            ],
        }
    )
    harness.mock("api", {"error": "transient", "times": 2, "output": {"ok": True}})
    began = harness.clock.now()
    run = harness.start("flaky")
    harness.work()
    assert (run.status, run.output) == ("completed", {"call": {"ok": True}})
    assert [attempt for step, attempt in harness.calls] == [1, 2, 3]
    # the backoff of 60 s then 120 s was waited on the virtual clock
    assert harness.clock.now() - began >= timedelta(seconds=180)


def test_advance_delivers_only_what_is_due_by_then(harness: Harness) -> None:
    harness.register(
        {
            "name": "later",
            "steps": [{"name": "nap", "type": "timer", "delay": 3600}, {"name": "after", "agent": "x"}],
        }
    )
    run = harness.start("later")
    harness.advance(1800)
    assert run.steps["nap"] == "waiting"
    harness.advance(1799)
    assert run.status == "running"
    harness.advance(1)
    assert (run.status, run.path) == ("completed", ["nap", "after"])


def test_humans_and_signals_are_given_by_the_test(harness: Harness) -> None:
    harness.register(
        {
            "name": "gated",
            "steps": [
                {"name": "draft", "agent": "w"},
                {"name": "approve", "type": "human", "assignees": ["role:editor"]},
                {"name": "paid", "type": "wait", "signal": "payment"},
                {"name": "ship", "agent": "s"},
            ],
        }
    )
    run = harness.start("gated")
    harness.work()
    assert (run.status, run.steps["approve"]) == ("waiting", "waiting")
    harness.complete(run.id, "approve", {"ok": True})
    assert run.steps["paid"] == "waiting"
    assert harness.signal(run.id, "payment", {"amount": 10}) == "paid"
    assert run.status == "completed"
    assert run.outputs["paid"] == {"amount": 10}


def test_maps_and_child_workflows_run_in_process(harness: Harness) -> None:
    harness.register(chain("child", "inner"))
    harness.register(
        {
            "name": "parent",
            "steps": [
                {"name": "list", "agent": "lister"},
                {"name": "each", "type": "map", "items": "steps.list.items", "agent": "per"},
                {"name": "sub", "type": "workflow", "workflow": "child"},
            ],
        }
    )
    harness.mock("lister", {"items": [1, 2, 3]})
    harness.mock("per", lambda ctx: {"squared": ctx.item * ctx.item})
    harness.mock("inner", {"deep": True})
    run = harness.start("parent")
    harness.work()
    assert run.status == "completed"
    assert run.outputs["each"]["results"] == [{"squared": 1}, {"squared": 4}, {"squared": 9}]
    assert run.output["sub"] == {"inner": {"deep": True}}


def test_mocked_raises_an_instance_and_copies_a_value() -> None:
    error = FatalError("no such customer")
    with pytest.raises(FatalError, match="no such customer"):
        mocked(error)(None)  # type: ignore[arg-type]
    value = {"list": [1]}
    first = mocked(value)(None)  # type: ignore[arg-type]
    first["list"].append(2)
    assert mocked(value)(None) == {"list": [1]}  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("actual", "expected", "matches"),
    [
        ({"a": 1, "b": {"c": 2, "d": 3}}, {"b": {"c": 2}}, True),
        ({"a": 1}, {"a": 2}, False),
        ({"a": 1}, {"b": 1}, False),
        ([1, 2], [1, 2], True),
        ([1, 2], [1], False),
        (None, None, True),
        ("x", {"a": 1}, False),
    ],
)
def test_an_expected_output_is_contained_in_the_actual_one(actual: Any, expected: Any, matches: bool) -> None:
    assert contains(actual, expected) is matches


DAY = {
    "name": "daily",
    "steps": [
        {
            "name": "fetch",
            "agent": "fetcher",
            "retry": {"max_attempts": 2, "initial_delay": 600, "max_delay": 3600},
        },
        {"name": "wait_a_day", "type": "timer", "delay": 86400},
        {"name": "check", "type": "human", "input_schema": {"type": "object", "required": ["ok"]}},
        {"name": "send", "agent": "sender"},
    ],
    "edges": [
        {"from": "fetch", "to": "wait_a_day"},
        {"from": "wait_a_day", "to": "check"},
        {"from": "check", "to": "send", "when": "steps.check.ok"},
    ],
    "tests": [
        {
            "name": "a day later, approved",
            "mocks": {
                "fetcher": {"error": "transient", "times": 1, "output": {"n": 1}},
                "sender": {"sent": 1},
            },
            "human": {"check": {"ok": True}},
            "expect": {
                "status": "completed",
                "steps": {"send": "succeeded"},
                "output": {"send": {"sent": 1}},
            },
        },
        {
            "name": "expects what does not happen",
            "mocks": {"fetcher": {"n": 1}, "sender": {"sent": 1}},
            "human": {"check": {"ok": False}},
            "expect": {"status": "failed", "steps": {"send": "succeeded"}, "output": {"send": {"sent": 2}}},
        },
        {
            "name": "nobody answers",
            "mocks": {"fetcher": {"n": 1}},
            "expect": {"status": "waiting", "steps": {"check": "waiting", "send": "pending"}},
        },
    ],
}


def test_a_definitions_cases_pass_or_say_what_differed() -> None:
    results = run_cases([load(DAY)])
    assert [(r.case, r.passed) for r in results] == [
        ("a day later, approved", True),
        ("expects what does not happen", False),
        ("nobody answers", True),
    ]
    assert results[0].path == ["fetch", "wait_a_day", "check", "send"]
    assert results[1].differences == [
        "status: expected failed, got completed",
        "steps.send: expected succeeded, got skipped",
        "output: expected {'send': {'sent': 2}}, got {}",
    ]
    assert (
        results[1].line().startswith("FAIL daily 1.0.0 expects what does not happen: status: expected failed")
    )


def test_an_agent_neither_mocked_nor_registered_fails_its_case_only_if_it_runs() -> None:
    definition = load({**DAY, "tests": [{"name": "fetch fails", "mocks": {"fetcher": {"error": "fatal"}}}]})
    assert run_cases([definition])[0].passed
    missing = load({**DAY, "tests": [{"name": "no fetcher", "mocks": {"sender": {}}}]})
    [result] = run_cases([missing])
    assert not result.passed
    assert result.differences == [
        "agent fetcher ran, and is neither mocked by the case nor registered (WFE_AGENT_MODULES)"
    ]


def test_a_registered_agent_runs_where_no_mock_is_given() -> None:
    agents = AgentRegistry()
    agents.register("fetcher", lambda ctx: {"n": len(ctx.input["ids"])})
    agents.register("sender", lambda ctx: {"sent": ctx.steps["fetch"]["n"]})
    case = {"name": "real", "input": {"ids": [1, 2]}, "human": {"check": {"ok": True}}}
    case["expect"] = {"output": {"send": {"sent": 2}}}
    [result] = run_cases([load({**DAY, "tests": [case]})], agents=agents)
    assert result.passed, result.differences


def test_children_come_from_the_definitions_given() -> None:
    child = load({"name": "child", "steps": [{"name": "inner", "agent": "in"}]})
    parent_document = {
        "name": "parent",
        "steps": [{"name": "sub", "type": "workflow", "workflow": "child"}],
        "tests": [{"name": "child runs", "mocks": {}, "expect": {"output": {"sub": {"inner": {"x": 1}}}}}],
    }
    parent = load(parent_document)
    [alone] = run_cases([parent])
    assert alone.differences == ["child workflow child is not among the definitions given"]

    def inner(ctx: AgentContext) -> Any:
        return {"x": 1}

    agents = AgentRegistry()
    agents.register("in", inner)
    [together] = run_cases([parent, child], agents=agents)
    assert together.passed, together.differences


def test_what_advance_delivers_runs_at_its_own_time(harness: Harness) -> None:
    harness.register(
        {
            "name": "timed",
            "steps": [{"name": "nap", "type": "timer", "delay": 100}, {"name": "then", "agent": "t"}],
        }
    )
    seen: list[Any] = []
    harness.mock("t", lambda ctx: seen.append(harness.clock.now()) or {})
    began = harness.clock.now()
    run = harness.start("timed")
    harness.advance(1000)
    assert run.status == "completed"
    assert seen == [began + timedelta(seconds=100)]
    assert harness.clock.now() == began + timedelta(seconds=1000)


@pytest.mark.parametrize(
    ("case", "location", "message"),
    [
        (
            {"name": "c", "mocks": {"nobody": 1}},
            "tests[0].mocks.nobody",
            "no step of this workflow runs this agent",
        ),
        ({"name": "c", "human": {"fetch": {}}}, "tests[0].human.fetch", "not a human step of this workflow"),
        ({"name": "c", "signals": {"go": 1}}, "tests[0].signals[0]", "no wait step takes 'go'"),
        ({"name": "c", "expect": {"steps": {"nope": "failed"}}}, "tests[0].expect.steps.nope", "not a step"),
        (
            {"name": "c", "mocks": {"fetcher": {"error": "sometimes"}}},
            "tests.0.mocks",
            "error must be one of",
        ),
        (
            {"name": "c", "mocks": {"fetcher": {"error": "fatal", "times": 0}}},
            "tests.0.mocks",
            "times must be",
        ),
        ({"name": "c", "expect": {"status": "finished"}}, "tests.0.expect.status", "Input should be"),
        ({"name": "c", "surprise": 1}, "tests.0.surprise", "Extra inputs"),
    ],
)
def test_a_case_naming_what_the_workflow_lacks_is_refused_with_where(
    case: dict[str, Any], location: str, message: str
) -> None:
    definition, problems = validate_document({**DAY, "tests": [case]})
    assert definition is None
    assert [(p.location, message in p.message) for p in problems] == [(location, True)]


def test_two_cases_of_one_name_are_refused() -> None:
    _, problems = validate_document({**DAY, "tests": [{"name": "same"}, {"name": "same"}]})
    assert [(p.location, p.message) for p in problems] == [
        ("tests[1].name", "duplicate case name (first at tests[0])")
    ]
