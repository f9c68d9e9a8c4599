"""`wfe register` says what a version changes; `--require-compatible` refuses a breaking one;
`wfe migrate` moves an execution to another version, or says why not."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli.test_settings_cli import wfe

V1 = "name: simple\nversion: 1.0.0\nsteps:\n  - {name: a, agent: echo}\n  - {name: b, agent: echo}\n"
V11 = V1.replace("1.0.0", "1.1.0") + "  - {name: c, agent: echo}\n"
V2 = (
    "name: simple\nversion: 2.0.0\ninput_schema: {type: object, required: [id]}\n"
    "steps:\n  - {name: b, agent: echo}\n"
)


pytestmark = pytest.mark.long


def files(tmp_path: Path) -> dict[str, str]:
    paths = {}
    for name, text in {"v1": V1, "v11": V11, "v2": V2}.items():
        (tmp_path / f"{name}.yaml").write_text(text)
        paths[name] = str(tmp_path / f"{name}.yaml")
    return paths


def test_register_reports_the_changes_and_can_refuse_a_breaking_one(tmp_path: Path) -> None:
    paths = files(tmp_path)
    assert wfe(tmp_path, "register", paths["v1"]).stdout == "registered simple 1.0.0\n"
    added = wfe(tmp_path, "register", "--require-compatible", paths["v11"])
    assert added.returncode == 0, added.stderr
    assert added.stdout.splitlines() == [
        "against simple 1.0.0: 2 changes, 0 breaking",
        "  step added c: a new agent step",
        "  edge added b → c: always",
        "registered simple 1.1.0",
    ]
    refused = wfe(tmp_path, "register", "--require-compatible", paths["v2"])
    assert refused.returncode == 1
    assert refused.stdout == ""
    assert refused.stderr.splitlines() == [
        "wfe: error: simple 2.0.0 breaks compatibility: step removed a: the agent step is gone (breaking); "
        "step removed c: the agent step is gone (breaking); "
        "input narrowed input: now checked by a schema (breaking)"
    ]
    listed = json.loads(wfe(tmp_path, "workflows", "--json").stdout)
    assert [w["version"] for w in listed] == ["1.1.0", "1.0.0"]  # nothing registered
    report = json.loads(wfe(tmp_path, "register", paths["v2"], "--json").stdout)
    assert (report["against"], report["compatible"]) == ("1.1.0", False)
    assert [c["kind"] for c in report["changes"] if c["breaking"]] == [
        "step removed",
        "step removed",
        "input narrowed",
    ]


def test_migrate_moves_an_execution_or_says_why_not_in_one_line(tmp_path: Path) -> None:
    paths = files(tmp_path)
    for name in ("v1", "v11", "v2"):
        assert wfe(tmp_path, "register", paths[name]).returncode == 0
    started = json.loads(wfe(tmp_path, "submit", "simple", "--version", "1.0.0", "--json").stdout)
    execution = started["execution_id"]
    refused = wfe(tmp_path, "migrate", execution, "--to-version", "2.0.0")
    assert refused.returncode != 0
    assert refused.stderr == (
        "wfe: error: cannot migrate to version 2.0.0: step 'a' has run and version 2.0.0 has no such step\n"
    )
    moved = wfe(tmp_path, "migrate", execution, "--to-version", "1.1.0")
    assert moved.returncode == 0, moved.stderr
    assert moved.stdout == f"{execution}: moved to simple 1.1.0, running\n"
    shown = json.loads(wfe(tmp_path, "status", execution, "--json").stdout)
    assert shown["version"] == "1.1.0"
    unknown = wfe(tmp_path, "migrate", execution, "--to-version", "9.9.9")
    assert unknown.returncode == 2 and len(unknown.stderr.splitlines()) == 1
