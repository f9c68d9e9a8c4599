"""Names are matched whole (a trailing newline is no part of a name), and a step's queue is never
one of the engine's own."""

from __future__ import annotations

from typing import Any

import click
import pytest
from pydantic import ValidationError

from workflow_engine.cli.processes import _QUEUE, _check_queues
from workflow_engine.definitions.queues import queue_problems
from workflow_engine.definitions.validation import load_document, validate_document
from workflow_engine.schedules import NAME as SCHEDULE_NAME
from workflow_engine.settings import Settings
from workflow_engine.users import USERNAME
from workflow_engine.versions import reserved_queues

pytestmark = pytest.mark.unit


def document(**step: Any) -> dict[str, Any]:
    return {"name": "w", "version": "1.0.0", "steps": [{"name": "a", "agent": "echo", **step}]}


def refused(doc: dict[str, Any]) -> list[str]:
    definition, problems = validate_document(doc)
    assert definition is None and problems, doc
    return [f"{p.location}: {p.message}" for p in problems]


@pytest.mark.parametrize(
    "doc",
    [
        {**document(), "name": "w\n"},
        document(name="a\n"),
        document(agent="echo\n"),
        document(queue="gpu\n"),
        {"name": "w", "steps": [{"name": "s", "type": "wait", "signal": "paid\n"}]},
        {"name": "w", "steps": [{"name": "s", "type": "workflow", "workflow": "child\n"}]},
    ],
    ids=["workflow", "step", "agent", "queue", "signal", "child workflow"],
)
def test_a_name_with_a_trailing_newline_is_refused(doc: dict[str, Any]) -> None:
    assert any("is not a valid name" in line for line in refused(doc))
    fine = load_document(
        {
            k: (v.rstrip("\n") if isinstance(v, str) else v)
            for k, v in {**doc, "steps": [_stripped(s) for s in doc["steps"]]}.items()
        }
    )
    assert fine.name == "w"


def _stripped(step: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.rstrip("\n") if isinstance(v, str) else v) for k, v in step.items()}


def test_schedule_user_and_worker_queue_names_refuse_a_trailing_newline() -> None:
    assert SCHEDULE_NAME.fullmatch("nightly") and not SCHEDULE_NAME.fullmatch("nightly\n")
    assert USERNAME.fullmatch("bob") and not USERNAME.fullmatch("bob\n")
    # `wfe worker --queues` checks with the pattern a definition's queue is checked with
    assert _QUEUE.match("gpu") and not _QUEUE.match("gpu\n")
    assert _check_queues(None, None, "gpu,io") == "gpu,io"  # type: ignore[arg-type]
    with pytest.raises(click.BadParameter):
        _check_queues(None, None, "gpu,i\no")  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        Settings(queue_prefix="wfe\n")
    with pytest.raises(ValidationError):
        Settings(intake_queue="celery\n")


@pytest.mark.parametrize("queue", ["coordinator", "steps"])
def test_the_engine_s_own_queues_are_refused_whatever_the_deployment(queue: str) -> None:
    assert any("is reserved for the engine" in line for line in refused(document(queue=queue)))


def test_a_queue_that_would_be_one_of_the_deployment_s_is_refused() -> None:
    settings = Settings(queue_prefix="acme", intake_queue="acme.intake")
    reserved = reserved_queues(settings)

    def problems(queue: str) -> list[str]:
        definition = load_document(document(queue=queue))
        return [p.message for p in queue_problems(definition, reserved, settings.queue_prefix)]

    assert problems("gpu") == [] and problems("wfe.gpu") == []
    assert "the intake queue" in problems("intake")[0]  # acme.intake
    assert "the coordinators' queue" in problems("acme.coordinator")[0]  # written in full
    assert "the engine's prefix" in problems("acme.gpu")[0]
    assert "the engine's prefix" in problems("acme")[0]
    default = Settings()
    assert (
        "the intake queue"
        in queue_problems(
            load_document(document(queue="celery")), reserved_queues(default), default.queue_prefix
        )[0].message
    )
