"""`wfe validate`, `wfe register` and `wfe workflows` as a user runs them: a real process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def wfe(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "workflow_engine", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=ROOT,
        timeout=60,
        check=False,
    )


TWO_PROBLEMS = """\
name: two-problems
version: 1.0.0
steps:
  - {name: a, agent: x}
  - {name: b, agent: y}
edges:
  - {from: a, to: b, when: "__import__('os').system('id')"}
  - {from: b, to: a}
"""


def test_validate_reports_both_problems_with_exit_1_and_no_traceback(tmp_path: Path) -> None:
    path = tmp_path / "two.yaml"
    path.write_text(TWO_PROBLEMS)
    result = wfe("validate", str(path))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert lines == [
        f"{path}: edges[0] a → b.when: call of '__import__' is not allowed "
        "(functions allowed: abs, bool, float, get, int, len, lower, max, min, round, str, upper)",
        f"{path}: edges: cycle: a → b → a",
    ]
    assert "Traceback" not in result.stderr + result.stdout


def test_validate_json_lists_problems_on_stdout(tmp_path: Path) -> None:
    path = tmp_path / "two.yaml"
    path.write_text(TWO_PROBLEMS)
    result = wfe("validate", str(path), "--json")
    document = json.loads(result.stdout)
    assert result.returncode == 1 and document["valid"] is False
    assert [p["location"] for p in document["problems"]] == ["edges[0] a → b.when", "edges"]


def test_validate_accepts_the_examples() -> None:
    result = wfe("validate", "config/workflows/ib-review.yaml")
    assert result.returncode == 0, result.stderr
    assert "valid: ib-review 1.0.0, 9 steps" in result.stdout


def test_register_then_list_workflows(tmp_path: Path) -> None:
    env = {"WFE_DATABASE_URL": f"sqlite:///{tmp_path / 'wfe.db'}"}
    first = wfe("register", "config/workflows/ib-generation.json", env=env)
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip() == "registered ib-generation 1.0.0"
    listed = json.loads(wfe("workflows", "--json", env=env).stdout)
    assert [(w["name"], w["version"], w["steps"]) for w in listed] == [("ib-generation", "1.0.0", 6)]


def test_errors_are_one_line_on_stderr_never_a_traceback(tmp_path: Path) -> None:
    missing = wfe(
        "register", str(tmp_path / "absent.yaml"), env={"WFE_DATABASE_URL": f"sqlite:///{tmp_path}/x.db"}
    )
    assert missing.returncode == 2
    assert missing.stderr.count("\n") == 1 and missing.stderr.startswith("wfe: error: ")
    usage = wfe("validate")
    assert usage.returncode == 2 and usage.stderr.count("\n") == 1
    bad_setting = wfe("workflows", env={"WFE_API_PORT": "not-a-port"})
    assert bad_setting.returncode == 1
    assert bad_setting.stderr.startswith("wfe: error: invalid setting WFE_API_PORT")
    unreachable = wfe("workflows", env={"WFE_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none"})
    assert unreachable.returncode == 1 and unreachable.stderr.count("\n") == 1
    assert unreachable.stderr.startswith("wfe: error: database error: connection failed")
