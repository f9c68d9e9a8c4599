"""The queues a step may name: never one of the engine's own.

A step's ``queue: X`` sends its agent's messages to the broker queue ``<prefix>.X`` (see
:func:`workflow_engine.worker.app.queue_name`), which only workers started with ``--queues X``
consume. The engine's own queues are the coordinator's (``<prefix>.coordinator``), the steps
queue every worker consumes (``<prefix>.steps``) and the intake queue other services send
``wfe.start_workflow`` to: a step routed to one of them would run its agent inside a coordinator,
or take the place of the engine's messages. The model refuses ``coordinator`` and ``steps``
whatever the deployment (:data:`~workflow_engine.definitions.model.RESERVED_QUEUES`); this
module refuses, at registration, what depends on the deployment's settings.
"""

from __future__ import annotations

from collections.abc import Mapping

from workflow_engine.definitions.model import WorkflowDefinition
from workflow_engine.errors import Problem


def queue_problems(definition: WorkflowDefinition, reserved: Mapping[str, str], prefix: str) -> list[Problem]:
    """A problem for each step whose queue is, or is written as, one of the engine's own.

    ``reserved`` maps each of the engine's broker queues to what it is (``{"wfe.coordinator":
    "the coordinators' queue", ...}``); ``prefix`` is the deployment's queue prefix."""
    problems = []
    for index, step in enumerate(definition.steps):
        if step.queue is None:
            continue
        routed = f"{prefix}.{step.queue}"
        what = reserved.get(routed) or reserved.get(step.queue)
        if what is None and (step.queue == prefix or step.queue.startswith(f"{prefix}.")):
            what = f"the engine's prefix {prefix!r} (its messages would go to {routed!r})"
        if what is not None:
            problems.append(
                Problem(
                    f"steps[{index}] {step.name!r}.queue",
                    f"queue {step.queue!r} is reserved: it names {what}; choose another name",
                )
            )
    return problems
