from __future__ import annotations

from pathlib import Path

import pytest

from workflow_engine.definitions import WorkflowBuilder, check_file, load, load_file
from workflow_engine.errors import DefinitionError

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "config" / "workflows").glob("*.*"))


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_every_example_workflow_is_valid(path: Path) -> None:
    definition = load_file(path)
    assert definition.steps


def test_examples_include_the_document_generation_pipeline() -> None:
    definition = load_file(ROOT / "config" / "workflows" / "ib-generation.json")
    assert [s.name for s in definition.steps] == [
        "enrich",
        "compose",
        "write",
        "validate",
        "assemble",
        "export",
    ]
    assert definition.step("validate").retry.max_attempts == 1


def test_yaml_syntax_errors_give_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("name: x\nsteps: [\n  {name: a\n")
    _, problems = check_file(path)
    assert len(problems) == 1 and problems[0].location.startswith("line ")


def test_duplicate_yaml_keys_are_refused_not_silently_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "dup.yaml"
    path.write_text("name: x\nname: y\nsteps: [{name: a, agent: b}]\n")
    _, problems = check_file(path)
    assert "duplicate key 'name'" in problems[0].message and problems[0].location == "line 2 column 1"


def test_json_files_are_parsed_as_json(tmp_path: Path) -> None:
    path = tmp_path / "w.json"
    path.write_text('{"name": "x", "steps": [{"name": "a", "agent": "b"}],}')
    _, problems = check_file(path)
    assert problems[0].location == "line 1 column 54"


def test_missing_file_is_one_clear_problem(tmp_path: Path) -> None:
    with pytest.raises(DefinitionError, match="cannot read file"):
        load_file(tmp_path / "absent.yaml")


def test_load_accepts_text_documents_and_models() -> None:
    definition = load("name: x\nsteps:\n  - {name: a, agent: b}\n")
    assert load(definition) == definition
    assert load(definition.document()) == definition


def test_builder_chains_steps_without_edges() -> None:
    definition = WorkflowBuilder("w").agent("a", "x").agent("b", "y").build()
    assert [(e.source, e.target) for e in definition.flow] == [("a", "b")]


def test_builder_with_edges_fans_out_and_joins_with_conditions() -> None:
    definition = (
        WorkflowBuilder("w", version="2.1.0", input_schema={"type": "object"})
        .agent("start")
        .agent("left", after="start")
        .agent("right", after="start", when="input.both")
        .agent("join", after=["left", "right"], required=False)
        .human("approve", after="join", input_schema={"type": "object"}, assignees=["alice"])
        .timer("wait", after="approve", delay=5)
        .build()
    )
    assert definition.step("right").agent == "right"
    assert [e.when for e in definition.flow if e.target == "right"] == ["input.both"]
    assert definition.step("approve").assignees == ("alice",)
    assert not definition.step("join").required


def test_builder_validates_like_a_file() -> None:
    with pytest.raises(DefinitionError) as caught:
        WorkflowBuilder("w").agent("a").agent("b", after="a").edge("b", "a").build()
    assert "cycle" in str(caught.value)


def test_builder_refuses_a_condition_without_an_edge() -> None:
    with pytest.raises(ValueError, match="needs 'after'"):
        WorkflowBuilder("w").agent("a", when="input.x")
