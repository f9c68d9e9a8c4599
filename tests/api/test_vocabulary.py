"""One vocabulary: the REST API, the command line's --json and the Python API show an execution,
its steps and its attempts with the same field names and the same values, every time in ISO
8601 UTC with a Z; the reason an execution is not running is the monitor's sentence in each; and
the command line refuses the input bodies the API refuses."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.api.conftest import HELLO, Api
from tests.cli.test_settings_cli import wfe

TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
TIMES = {"created_at", "started_at", "finished_at", "queued_at", "timestamp"}


def cli(api: Api, tmp_path: Path, *args: str) -> Any:
    url = api.harness.settings.database_url
    done = wfe(
        tmp_path, *args, "--json", WFE_DATABASE_URL=str(getattr(url, "get_secret_value", lambda: url)())
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def times_in(document: Any) -> list[str]:
    """Every time in a document, wherever it is nested."""
    if isinstance(document, dict):
        found = [v for k, v in document.items() if k in TIMES and v is not None]
        return found + [t for v in document.values() for t in times_in(v)]
    if isinstance(document, list):
        return [t for v in document for t in times_in(v)]
    return []


def agree(api: Api, tmp_path: Path, execution_id: str) -> dict[str, Any]:
    """The execution as the three interfaces show it, checked to agree; REST's."""
    rest = api.get(f"/executions/{execution_id}").json()
    shown = cli(api, tmp_path, "status", execution_id[:8])
    python = api.engine.get(execution_id).to_json()
    assert shown == python
    assert set(rest) == set(python) | {"events"} and rest["events"] is None
    assert {k: v for k, v in rest.items() if k != "events"} == python
    assert all(TIME.match(t) for t in times_in(rest)), times_in(rest)
    return dict(rest)


def test_an_execution_and_its_attempts_read_the_same_everywhere(api: Api, tmp_path: Path) -> None:
    api.register(HELLO)
    execution_id = api.start("hello", input_data={"x": 1}, metadata={"m": [2]})

    queued = agree(api, tmp_path, execution_id)
    assert queued["input_data"] == {"x": 1} and queued["metadata"] == {"m": [2]}
    sentence = "queued on wfe.steps, which no live worker consumes"
    assert queued["reason"] == f"step 'a' {sentence}" and queued["steps"][0]["reason"] == sentence

    api.harness.store.beat("w1", "host", 1, ["echo"], ["wfe.steps"], [])  # a worker appears
    waiting = agree(api, tmp_path, execution_id)
    assert waiting["reason"] == "step 'a' queued on wfe.steps, waiting for a free worker"

    api.harness.agent("echo")
    api.harness.work()
    done = agree(api, tmp_path, execution_id)
    assert done["status"] == "completed" and done["reason"] is None

    rest = api.get(f"/executions/{execution_id}/logs").json()
    assert rest == cli(api, tmp_path, "logs", execution_id) == api.engine.logs(execution_id)
    assert [(e["step_name"], e["output_data"]) for e in rest] == [
        ("a", {"step": "a"}),
        ("b", {"step": "b"}),
    ]
    assert {"input_data", "output_data"} <= set(rest[0]) and not {"input", "output"} & set(rest[0])
    assert all(TIME.match(t) for t in times_in(rest))
    events = api.get(f"/executions/{execution_id}", params={"include_events": "true"}).json()["events"]
    assert events and all(TIME.match(e["created_at"]) for e in events)


@pytest.mark.parametrize(
    "body",
    [
        '{"x": 1, "x": 2}',
        '{"x": NaN}',
        '{"x": Infinity}',
        '{"x": "\\u0000"}',
        '{"x": "' + "y" * 600 + '"}',
    ],
    ids=["duplicate key", "NaN", "Infinity", "NUL", "too large"],
)
def test_the_command_line_refuses_the_input_the_api_refuses(
    api_factory: Any, tmp_path: Path, body: str
) -> None:
    api = api_factory(max_request_bytes=512)
    api.register(HELLO)
    raw = '{"workflow": "hello", "input_data": ' + body + "}"
    refused = api.post("/executions", content=raw.encode(), headers={"Content-Type": "application/json"})
    assert refused.status_code in (413, 422), refused.text
    url = api.harness.settings.database_url
    database = str(getattr(url, "get_secret_value", lambda: url)())
    done = wfe(
        tmp_path, "submit", "hello", "--input", body, WFE_DATABASE_URL=database, WFE_MAX_REQUEST_BYTES="512"
    )
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    detail = refused.json()["detail"]
    if refused.status_code == 413:
        assert detail == "request body larger than 512 bytes" and "larger than 512 bytes" in done.stderr
    else:
        assert done.stderr == f"wfe: error: invalid --input: {detail}\n"
