"""Execution ids by unique prefix in every command that takes one, ids `wfe list` shows that
paste back, and input the REST API refuses refused by the command line too (one line on
stderr, exit 2, nothing started)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.test_settings_cli import wfe
from tests.store.test_execution_ids import SINGLE, TWIN_1, TWIN_2, planned
from tests.support.harness import Harness
from workflow_engine.definitions import WorkflowBuilder
from workflow_engine.store import migrate

pytestmark = pytest.mark.long


@pytest.fixture
def harness(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Harness]:
    url = f"sqlite:///{tmp_path / 'wfe.db'}"
    migrate.upgrade(url)
    harness = Harness(url)
    harness.register(WorkflowBuilder("named").human("approve").agent("a", after="approve"))
    planned(monkeypatch, [TWIN_1, TWIN_2, SINGLE])
    for _ in range(3):
        harness.start("named")
    harness.work()  # (each waits for its approval)
    try:
        yield harness
    finally:
        harness.close()


def one_line_error(result: object, *says: str) -> None:
    stderr: str = result.stderr  # type: ignore[attr-defined]
    assert result.returncode == 2, stderr  # type: ignore[attr-defined]
    assert stderr.startswith("wfe: error: ") and stderr.count("\n") == 1 and "Traceback" not in stderr
    for words in says:
        assert words in stderr, stderr


COMMANDS_WITH_AN_ID = [
    ["status", "{id}"],
    ["watch", "{id}"],
    ["logs", "{id}"],
    ["pause", "{id}"],
    ["resume", "{id}"],
    ["next", "{id}"],
    ["cancel", "{id}"],
    ["retry", "{id}"],
    ["migrate", "{id}", "--to-version", "1.0.0"],
    ["complete", "{id}", "approve", "--data", "{{}}"],
    ["signal", "{id}", "go"],
    ["list", "--parent", "{id}"],
]


@pytest.mark.parametrize("command", COMMANDS_WITH_AN_ID, ids=lambda c: c[0])
def test_every_command_that_takes_an_id_takes_a_prefix_and_refuses_an_ambiguous_one(
    harness: Harness, tmp_path: Path, command: list[str]
) -> None:
    ambiguous = wfe(tmp_path, *[part.format(id="abcdef01") for part in command])
    one_line_error(ambiguous, "'abcdef01': ambiguous", TWIN_1, TWIN_2)
    short = wfe(tmp_path, *[part.format(id="abcdef0") for part in command])
    one_line_error(short, "too short", "at least 8 characters")


def test_a_unique_prefix_works_and_list_shows_ids_that_paste_back(harness: Harness, tmp_path: Path) -> None:
    shown = json.loads(wfe(tmp_path, "status", "abcdef02", "--json").stdout)
    assert shown["execution_id"] == SINGLE
    done = wfe(tmp_path, "complete", "abcdef02", "approve", "--data", '{"ok": true}')
    assert done.returncode == 0 and done.stdout == f"{SINGLE}: running\n", done.stderr
    cancelled = wfe(tmp_path, "cancel", "ABCDEF02")
    assert cancelled.returncode == 0 and cancelled.stdout == f"{SINGLE}: cancelled\n", cancelled.stderr

    listed = wfe(tmp_path, "list", COLUMNS="200")
    assert listed.returncode == 0, listed.stderr
    rows = re.findall(r"(?<![0-9a-f-])[0-9a-f]{8}[0-9a-f-]*", listed.stdout)
    assert sorted(rows) == sorted(["abcdef02", TWIN_1, TWIN_2])  # (the twins share 35 characters)
    for pasted in rows:
        again = json.loads(wfe(tmp_path, "status", pasted, "--json").stdout)
        assert again["execution_id"].startswith(pasted)


REFUSED = [
    ('{"a": 1, "a": 2}', "the key 'a' appears twice in one object"),
    ('{"a": NaN}', "NaN is not a JSON number"),
    ('{"a": -Infinity}', "-Infinity is not a JSON number"),
    ('{"a": "\\u0000"}', "NUL characters"),
    ('{"a": "' + "x" * 300 + '"}', "larger than 256 bytes (WFE_MAX_REQUEST_BYTES)"),
    ("[1]", "must be a JSON object"),
]


@pytest.mark.parametrize(("text", "says"), REFUSED, ids=[s.split()[0] for _, s in REFUSED])
def test_input_the_api_refuses_is_refused_before_anything_starts(
    harness: Harness, tmp_path: Path, text: str, says: str
) -> None:
    limit = {"WFE_MAX_REQUEST_BYTES": "256"}
    one_line_error(wfe(tmp_path, "submit", "named", "--input", text, **limit), "invalid --input", says)
    (tmp_path / "input.json").write_text(text)
    one_line_error(wfe(tmp_path, "submit", "named", "--metadata", "@input.json", **limit), says)
    one_line_error(wfe(tmp_path, "complete", "abcdef02", "approve", "--data", text, **limit), says)
    (tmp_path / "flow.yaml").write_text("name: flow\nversion: 1.0.0\nsteps: [{name: a, agent: echo}]\n")
    run = wfe(tmp_path, "run", "flow.yaml", "--input", text, **limit)
    one_line_error(run, says)
    assert json.loads(wfe(tmp_path, "list", "--json").stdout)["total"] == 3  # nothing started
