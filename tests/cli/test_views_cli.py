"""Every execution status, every step status, in every view of the command line that shows
them (`status`, `watch`, `list`, `logs`; `run` prints through the same progress and summary as
`watch`): each renders, whatever brackets names, reasons and errors hold, and none is an
internal error. `wfe status` says why an execution is not running."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from rich.console import Console

from tests.cli.test_settings_cli import wfe
from tests.support.harness import Harness
from workflow_engine.cli import progress
from workflow_engine.cli.main import main
from workflow_engine.core.states import SETTLED_EXECUTION, ExecutionStatus, StepStatus
from workflow_engine.definitions import WorkflowBuilder
from workflow_engine.store import migrate
from workflow_engine.store import schema as t

MARKUP = "[/] [bold]not markup[/bold] [red]"  # what rich would take for tags, were it parsed


@pytest.fixture
def every_status(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Harness, dict[str, str]]]:
    """One execution in each execution status, each with one step in each step status (and a
    last one pending: the others all start at once; a failed one's error and every
    transition's reason hold what looks like markup)."""
    url = f"sqlite:///{tmp_path / 'wfe.db'}"
    migrate.upgrade(url)
    monkeypatch.setenv("WFE_DATABASE_URL", url)
    monkeypatch.setenv("COLUMNS", "400")  # (no table cell wraps)
    harness = Harness(url)
    builder = WorkflowBuilder("every")
    for status in StepStatus:
        builder.agent(f"s_{status.value}")
    harness.register(builder.agent("end", after=[f"s_{status.value}" for status in StepStatus]))
    executions = {status.value: harness.start("every").id for status in ExecutionStatus}
    with harness.store.engine.begin() as conn:
        for status, execution_id in executions.items():
            conn.execute(
                sa.update(t.executions).where(t.executions.c.id == execution_id).values(status=status)
            )
            for step in StepStatus:
                failing = step in (StepStatus.FAILED, StepStatus.RETRYING, StepStatus.WAITING)
                conn.execute(
                    sa.update(t.step_runs)
                    .where(t.step_runs.c.execution_id == execution_id, t.step_runs.c.step_name == f"s_{step}")
                    .values(
                        status=step,
                        error_type="Boom" if failing else None,
                        error_message=MARKUP if failing else None,
                    )
                )
                conn.execute(
                    sa.insert(t.events).values(
                        execution_id=execution_id,
                        step_name=f"s_{step}",
                        attempt=1,
                        from_status="queued",
                        to_status=step,
                        actor="test",
                        reason=MARKUP,
                        created_at=harness.clock.now(),
                    )
                )
            conn.execute(
                sa.insert(t.events).values(
                    execution_id=execution_id,
                    to_status=status,
                    actor="test",
                    reason=MARKUP,
                    created_at=harness.clock.now(),
                )
            )
    try:
        yield harness, executions
    finally:
        harness.close()


def wfe_in_process(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """`wfe` run in this process (the matrix is large): its exit code, stdout and stderr."""
    with pytest.raises(SystemExit) as ended:
        main(list(args))
    out, err = capsys.readouterr()
    return int(ended.value.code or 0), out, err


def words(text: str) -> set[str]:
    return set(re.findall(r"[a-z_]+", text))


def test_every_status_renders_in_every_view(
    every_status: tuple[Harness, dict[str, str]], capsys: pytest.CaptureFixture[str]
) -> None:
    _, executions = every_status
    step_statuses = {s.value for s in StepStatus}
    for status, execution_id in executions.items():
        code, out, err = wfe_in_process(capsys, "status", execution_id)
        assert code == 0 and err == "", (status, err)
        assert status in words(out) and step_statuses <= words(out), (status, out)
        assert out.count(MARKUP) >= 3, (status, out)  # each error as it is (and in why: lines)

        code, out, err = wfe_in_process(capsys, "status", execution_id, "--json")
        document = json.loads(out)
        assert code == 0 and document["status"] == status
        assert {s["status"] for s in document["steps"]} == step_statuses

        code, out, err = wfe_in_process(capsys, "watch", execution_id, "--timeout", "1")
        assert "internal error" not in err and "Traceback" not in err, (status, err)
        assert MARKUP in out, (status, out)  # every transition's line, its reason as it is
        assert step_statuses <= words(out), (status, out)
        if status in SETTLED_EXECUTION:
            assert code in (0, 1, 3) and err == "", (status, err)
        else:  # (it does not settle: watching ends at its timeout, in one line)
            assert code == 1 and err.startswith("wfe: error: execution") and err.count("\n") == 1

        code, out, err = wfe_in_process(capsys, "logs", execution_id)
        assert code == 0 and err == "" and step_statuses <= words(out), (status, out, err)
        code, out, err = wfe_in_process(capsys, "logs", execution_id, "--json")
        assert code == 0 and {e["status"] for e in json.loads(out)} == step_statuses

    code, out, err = wfe_in_process(capsys, "list")
    assert code == 0 and err == "" and set(executions) <= words(out), (out, err)
    code, out, err = wfe_in_process(capsys, "list", "--json")
    assert {e["status"] for e in json.loads(out)["executions"]} == set(executions)


def test_every_status_has_a_style_and_nothing_is_read_as_markup(
    every_status: tuple[Harness, dict[str, str]],
) -> None:
    """`wfe run` prints each transition and the summary through these two functions."""
    harness, executions = every_status
    assert {*ExecutionStatus, *StepStatus} <= set(progress.STYLES)
    for execution_id in executions.values():
        console = Console(record=True, width=400)
        for event in harness.store.events(execution_id):
            console.print(progress.event_line(event))
        console.print(progress.summary(harness.view(execution_id)))
        shown = console.export_text()
        reasons = [e for e in harness.store.events(execution_id) if e.reason == MARKUP]
        assert shown.count(MARKUP) == len(reasons) + 3  # and the three steps' errors


def test_status_of_a_paused_execution_and_of_one_waiting_for_a_slot_says_why(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'wfe.db'}"
    migrate.upgrade(url)
    harness = Harness(url)
    try:
        harness.register(WorkflowBuilder("limited").concurrency(1, key=None).agent("a"))
        first = harness.start("limited").id
        second = harness.start("limited").id
        harness.coordinator.pause(first, "test")

        paused = wfe(tmp_path, "status", first)
        assert paused.returncode == 0 and paused.stderr == "", paused.stderr
        assert "limited 1.0.0: paused (0%)" in paused.stdout
        assert "why: the execution is paused; resume it to go on" in paused.stdout
        held = wfe(tmp_path, "status", second)
        assert held.returncode == 0 and held.stderr == "", held.stderr
        assert "initialized" in held.stdout and "why: waiting for a concurrency slot" in held.stdout

        harness.coordinator.resume(first, "test")
        running = json.loads(wfe(tmp_path, "status", first, "--json").stdout)
        sentence = "step 'a' queued on wfe.steps, which no live worker consumes"
        assert running["reason"] == sentence and running["steps"][0]["reason"] == sentence.removeprefix(
            "step 'a' "
        )
    finally:
        harness.close()
