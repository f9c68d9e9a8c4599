from __future__ import annotations

from typing import Any

import pytest

from workflow_engine.definitions import load_document, validate_document
from workflow_engine.errors import DefinitionError, Problem


def doc(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "name": "review",
        "version": "1.0.0",
        "steps": [{"name": "a", "agent": "x"}, {"name": "b", "agent": "y"}, {"name": "c", "agent": "z"}],
    }
    base.update(overrides)
    return base


def problems_of(document: dict[str, Any], **kwargs: Any) -> list[Problem]:
    definition, problems = validate_document(document, **kwargs)
    assert (definition is None) == bool(problems)
    return problems


def only(problems: list[Problem]) -> Problem:
    assert len(problems) == 1, problems
    return problems[0]


def test_a_valid_document_has_no_problems_and_chains_without_edges() -> None:
    definition = load_document(doc())
    assert [(e.source, e.target) for e in definition.flow] == [("a", "b"), ("b", "c")]


def test_cycle_is_reported_with_the_cycle_named() -> None:
    edges = [{"from": "a", "to": "b"}, {"from": "b", "to": "c"}, {"from": "c", "to": "a"}]
    problem = only(problems_of(doc(edges=edges)))
    assert problem.location == "edges"
    assert problem.message == "cycle: a → b → c → a"


def test_edge_to_an_unknown_step_names_the_edge_and_the_step() -> None:
    edges = [{"from": "a", "to": "b"}, {"from": "b", "to": "c"}, {"from": "c", "to": "ghost"}]
    problem = only(problems_of(doc(edges=edges)))
    assert problem.location == "edges[2] c → ghost"
    assert problem.message == "unknown step 'ghost'"


def test_duplicate_step_names_point_at_both_places() -> None:
    steps = [{"name": "a", "agent": "x"}, {"name": "a", "agent": "y"}]
    problem = only(problems_of(doc(steps=steps)))
    assert problem.location == "steps[1] 'a'"
    assert "duplicate step name 'a' (first at steps[0])" in problem.message


def test_step_without_any_edge_is_unreachable_when_edges_are_declared() -> None:
    problem = only(problems_of(doc(edges=[{"from": "a", "to": "b"}])))
    assert problem.location == "steps[2] 'c'"
    assert problem.message.startswith("unreachable")


@pytest.mark.parametrize("version", ["1.0", "v1.0.0", "one", "1.0.0.0", 1.0])
def test_bad_versions_are_refused(version: Any) -> None:
    problem = only(problems_of(doc(version=version)))
    assert problem.location == "version" and "not a semantic version" in problem.message


def test_prerelease_and_build_versions_are_semantic_versions() -> None:
    assert load_document(doc(version="2.0.0-rc.1+build.5")).version == "2.0.0-rc.1+build.5"


def test_invalid_input_schema_is_reported() -> None:
    problem = only(problems_of(doc(input_schema={"type": "banana"})))
    assert problem.location == "input_schema" and "invalid JSON Schema" in problem.message


def test_a_schema_the_checks_cannot_bound_is_refused_at_registration() -> None:
    schema = {"patternProperties": {"^a": {}}, "unevaluatedProperties": False}
    problem = only(problems_of(doc(input_schema=schema)))
    assert problem.location == "input_schema" and "unevaluatedProperties is not supported" in problem.message


def test_invalid_human_task_schema_is_reported_at_its_step() -> None:
    steps = [{"name": "approve", "type": "human", "input_schema": {"required": "approved"}}]
    problem = only(problems_of(doc(steps=steps)))
    assert problem.location == "steps[0] 'approve'.input_schema"


def test_condition_that_does_not_parse_is_reported_at_its_edge() -> None:
    edges = [{"from": "a", "to": "b", "when": "steps.a.score >="}, {"from": "b", "to": "c"}]
    problem = only(problems_of(doc(edges=edges)))
    assert problem.location == "edges[0] a → b.when" and "syntax error" in problem.message


@pytest.mark.parametrize(
    ("when", "complaint"),
    [
        ("__import__('os')", "call of '__import__' is not allowed"),
        ("steps.a.__class__", "attribute '__class__' is not allowed"),
        ("print(1)", "call of 'print' is not allowed"),
        ("secret > 1", "unknown name 'secret'"),
    ],
)
def test_unsafe_conditions_are_validation_errors(when: str, complaint: str) -> None:
    edges = [{"from": "a", "to": "b", "when": when}, {"from": "b", "to": "c"}]
    problem = only(problems_of(doc(edges=edges)))
    assert complaint in problem.message


def test_condition_may_only_read_steps_that_run_before_it() -> None:
    edges = [
        {"from": "a", "to": "b", "when": "steps.c.ok"},
        {"from": "b", "to": "c", "when": "steps.nope.ok"},
    ]
    problems = problems_of(doc(edges=edges))
    assert [p.message for p in problems] == [
        "reads steps.c, which does not run before 'a'",
        "reads steps.nope, which is not a step of this workflow",
    ]


def test_always_false_condition_on_the_only_way_in_is_reported() -> None:
    edges = [{"from": "a", "to": "b", "when": "1 > 2"}, {"from": "b", "to": "c"}]
    assert "always false" in only(problems_of(doc(edges=edges))).message


def test_unknown_agents_are_reported_when_a_catalogue_is_given() -> None:
    problem = only(problems_of(doc(), known_agents={"x", "y"}))
    assert problem.location == "steps[2] 'c'.agent" and "unknown agent 'z'" in problem.message


def test_every_problem_is_reported_at_once() -> None:
    document = {
        "name": "Bad Name",
        "version": "1",
        "input_schema": {"type": 12},
        "steps": [
            {"name": "a"},
            {"name": "b", "agent": "y", "retry": {"max_attempts": 0}},
            {"name": "a", "agent": "z"},
        ],
        "edges": [{"from": "a", "to": "zz"}, {"from": "b", "to": "a", "when": "import os"}],
        "colour": "blue",
    }
    locations = [p.location for p in problems_of(document)]
    assert locations == [
        "colour",
        "name",
        "version",
        "steps[0] 'a'",
        "steps[1] 'b'.retry.max_attempts",
        "steps[2] 'a'",
        "edges[0] a → zz",
        "edges[1] b → a.when",
    ]


@pytest.mark.parametrize(
    ("step", "complaint"),
    [
        ({"name": "t", "type": "timer"}, "exactly one of 'delay' or 'until'"),
        ({"name": "t", "type": "timer", "delay": 5, "agent": "x"}, "agent not allowed on a timer step"),
        ({"name": "h", "type": "human", "retry": {"max_attempts": 2}}, "retry not allowed on a human step"),
        ({"name": "s", "agent": "x", "delay": 3}, "delay not allowed on a agent step"),
        ({"name": "s", "agent": "x", "timeout": -1}, "greater than 0"),
        ({"name": "s", "agent": "x", "frobnicate": True}, "Extra inputs are not permitted"),
        (
            {"name": "s", "type": "robot"},
            "Input should be 'agent', 'human', 'timer', 'map', 'workflow', 'wait' or 'task'",
        ),
        ({"name": "t", "type": "timer", "until": "steps.later.when"}, "reads steps.later"),
        ({"name": "w", "type": "wait", "agent": "x"}, "agent not allowed on a wait step"),
        ({"name": "w", "type": "wait", "retry": {"max_attempts": 2}}, "retry not allowed on a wait step"),
        ({"name": "w", "type": "wait", "signal": "pay ment"}, "letters, digits, '_' and '-'"),
        ({"name": "s", "agent": "x", "signal": "go"}, "signal not allowed on a agent step"),
        ({"name": "t", "type": "task"}, "a task step needs 'task'"),
        ({"name": "t", "type": "task", "task": "shop.x", "agent": "x"}, "agent not allowed on a task step"),
        ({"name": "t", "type": "task", "task": "shop x"}, "a Celery task's name"),
        ({"name": "t", "type": "task", "task": "shop.x", "args": ["input.("]}, "syntax error"),
        ({"name": "t", "type": "task", "task": "x", "kwargs": {"n": "steps.later.n"}}, "reads steps.later"),
        ({"name": "s", "agent": "x", "args": ["input.a"]}, "args not allowed on a agent step"),
    ],
)
def test_step_fields_must_fit_the_step_type(step: dict[str, Any], complaint: str) -> None:
    problem = only(problems_of(doc(steps=[step])))
    assert complaint in problem.message


def test_seed_format_is_accepted_as_is() -> None:
    seed = {
        "name": "ib-generation",
        "steps": [
            {
                "name": "enrich",
                "agent": "regdata",
                "required": True,
                "timeout_minutes": 10,
                "retry_on_failure": True,
            },
            {
                "name": "validate",
                "agent": "validator",
                "required": True,
                "timeout_minutes": 5,
                "retry_on_failure": False,
            },
        ],
    }
    definition = load_document(seed)
    assert definition.version == "1.0.0"
    enrich, validate = definition.steps
    assert enrich.timeout == 600 and enrich.retry.max_attempts == 3
    assert validate.timeout == 300 and validate.retry.max_attempts == 1


def test_seed_fields_conflicting_with_ours_are_refused() -> None:
    steps = [{"name": "a", "agent": "x", "timeout": 5, "timeout_minutes": 1}]
    assert "either 'timeout' or 'timeout_minutes'" in only(problems_of(doc(steps=steps))).message


def test_document_must_be_a_mapping() -> None:
    assert only(problems_of(["not", "a", "mapping"])).location == "document"  # type: ignore[arg-type]


def test_load_document_raises_with_every_problem() -> None:
    with pytest.raises(DefinitionError) as caught:
        load_document({"name": "x"})
    assert [p.location for p in caught.value.problems] == ["steps"]


def test_only_steps_that_read_data_have_their_ancestors_walked(monkeypatch: pytest.MonkeyPatch) -> None:
    """Loading a long chain stays linear: the DAG is walked for a step's ancestors only when the
    step has an expression whose references must run before it."""
    from workflow_engine.core.graph import Graph
    from workflow_engine.definitions import load

    walked: list[str] = []
    original = Graph.ancestors

    def counting(self: Graph, name: str) -> frozenset[str]:
        walked.append(name)
        return original(self, name)

    monkeypatch.setattr(Graph, "ancestors", counting)
    steps = [{"name": f"s{i}", "agent": "a"} for i in range(300)]
    steps.append({"name": "t", "type": "timer", "until": "steps.s0.when"})
    load({"name": "long", "steps": steps})
    assert walked == ["t"]
