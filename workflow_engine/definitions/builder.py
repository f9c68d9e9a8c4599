"""Building a definition in Python; ``build()`` validates it like any file."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from workflow_engine.definitions.model import DEFAULT_VERSION, WorkflowDefinition
from workflow_engine.definitions.validation import load_document


class WorkflowBuilder:
    """Chainable builder::

        WorkflowBuilder("review", version="1.0.0")
            .agent("score", "scorer")
            .human("approve", after="score", when="steps.score.value >= 80")
            .agent("publish", "exporter", after="approve")
            .build()

    Steps added without ``after`` and without any edge in the workflow run in order.
    """

    def __init__(
        self,
        name: str,
        version: str = DEFAULT_VERSION,
        description: str = "",
        input_schema: dict[str, Any] | None = None,
    ) -> None:
        self._document: dict[str, Any] = {"name": name, "version": version}
        if description:
            self._document["description"] = description
        if input_schema is not None:
            self._document["input_schema"] = input_schema
        self._steps: list[dict[str, Any]] = []
        self._edges: list[dict[str, Any]] | None = None

    def _add(
        self, step: dict[str, Any], after: str | Iterable[str] | None, when: str | None
    ) -> WorkflowBuilder:
        self._steps.append({key: value for key, value in step.items() if value is not None})
        if after is not None:
            for source in [after] if isinstance(after, str) else after:
                self.edge(source, step["name"], when=when)
        elif when is not None:
            raise ValueError("'when' needs 'after': a condition belongs to an edge")
        return self

    def agent(
        self,
        name: str,
        agent: str | None = None,
        *,
        after: str | Iterable[str] | None = None,
        when: str | None = None,
        **options: Any,
    ) -> WorkflowBuilder:
        """An agent step; ``agent`` defaults to the step's name."""
        return self._add({"name": name, "agent": agent or name, **options}, after, when)

    def task(
        self,
        name: str,
        task: str,
        *,
        args: Iterable[str] | None = None,
        kwargs: dict[str, str] | None = None,
        after: str | Iterable[str] | None = None,
        when: str | None = None,
        **options: Any,
    ) -> WorkflowBuilder:
        """A step that runs the body of the Celery task ``task``, with ``args`` and ``kwargs``
        (expressions) as its arguments."""
        step = {"name": name, "type": "task", "task": task, "kwargs": kwargs, **options}
        if args is not None:
            step["args"] = list(args)
        return self._add(step, after, when)

    def human(
        self,
        name: str,
        *,
        input_schema: dict[str, Any] | None = None,
        assignees: Iterable[str] = (),
        after: str | Iterable[str] | None = None,
        when: str | None = None,
        **options: Any,
    ) -> WorkflowBuilder:
        step = {"name": name, "type": "human", "input_schema": input_schema, **options}
        if assignees:
            step["assignees"] = list(assignees)
        return self._add(step, after, when)

    def wait(
        self,
        name: str,
        *,
        signal: str | None = None,
        input_schema: dict[str, Any] | None = None,
        timeout: float | None = None,
        after: str | Iterable[str] | None = None,
        when: str | None = None,
        **options: Any,
    ) -> WorkflowBuilder:
        """A step that waits for the signal ``signal`` (default: its name); its output is the
        signal's data. With ``timeout``, it fails when no signal came within that many seconds."""
        step = {
            "name": name,
            "type": "wait",
            "signal": signal,
            "input_schema": input_schema,
            "timeout": timeout,
        }
        return self._add({**step, **options}, after, when)

    def timer(
        self,
        name: str,
        *,
        delay: float | None = None,
        until: str | None = None,
        after: str | Iterable[str] | None = None,
        when: str | None = None,
        **options: Any,
    ) -> WorkflowBuilder:
        step = {"name": name, "type": "timer", "delay": delay, "until": until, **options}
        return self._add(step, after, when)

    def map(
        self,
        name: str,
        items: str,
        *,
        agent: str | None = None,
        workflow: str | None = None,
        input: dict[str, str] | None = None,
        max_concurrency: int | None = None,
        tolerated_failures: int | str | None = None,
        after: str | Iterable[str] | None = None,
        when: str | None = None,
        **options: Any,
    ) -> WorkflowBuilder:
        """A map step: ``agent`` (or the child ``workflow``) once per item of the list ``items``
        gives; ``input`` maps each item's input (expressions over ``item`` and ``index`` too)."""
        step = {
            "name": name,
            "type": "map",
            "items": items,
            "agent": agent,
            "workflow": workflow,
            "input": input,
            "max_concurrency": max_concurrency,
            "tolerated_failures": tolerated_failures,
            **options,
        }
        return self._add(step, after, when)

    def workflow(
        self,
        name: str,
        workflow: str,
        *,
        version: str | None = None,
        input: dict[str, str] | None = None,
        after: str | Iterable[str] | None = None,
        when: str | None = None,
        **options: Any,
    ) -> WorkflowBuilder:
        """A workflow step: a child execution of ``workflow`` (its ``version``, or the latest)."""
        step = {"name": name, "type": "workflow", "workflow": workflow, "version": version, "input": input}
        return self._add({**step, **options}, after, when)

    def concurrency(
        self, max_running: int, key: str | None = None, strategy: str = "queue"
    ) -> WorkflowBuilder:
        """At most ``max_running`` executions at once (per value of ``key``, if given)."""
        limit: dict[str, Any] = {"max_running": max_running, "strategy": strategy}
        if key is not None:
            limit["key"] = key
        self._document["concurrency"] = limit
        return self

    def secrets(self, *paths: str) -> WorkflowBuilder:
        """Declare values secret (``input.NAME``, ``steps.STEP.NAME``): sealed at rest, ``***``
        in every view, opened only for the agents that read them."""
        self._document["secrets"] = [*self._document.get("secrets", []), *paths]
        return self

    def edge(self, source: str, target: str, when: str | None = None) -> WorkflowBuilder:
        if self._edges is None:
            self._edges = []
        edge: dict[str, Any] = {"from": source, "to": target}
        if when is not None:
            edge["when"] = when
        self._edges.append(edge)
        return self

    def document(self) -> dict[str, Any]:
        document = {**self._document, "steps": list(self._steps)}
        if self._edges is not None:
            document["edges"] = list(self._edges)
        return document

    def build(self) -> WorkflowDefinition:
        """The validated definition, or :class:`~workflow_engine.errors.DefinitionError`."""
        return load_document(self.document(), self._document["name"])
