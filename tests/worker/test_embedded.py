"""The embedded broker never shows a consumer a message still being written."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from kombu import Connection

from workflow_engine.worker import embedded

OPTIONS_KEYS = ("data_folder_in", "data_folder_out")


def connection(folder: Path) -> Connection:
    options = dict.fromkeys(OPTIONS_KEYS, str(folder)) | {"control_folder": str(folder / "control")}
    return Connection(f"{embedded.SCHEME}://", transport_options=options)


def test_a_message_gets_its_name_only_once_written_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    renamed: list[tuple[str, str]] = []
    replace = os.replace

    def watched(source: Any, target: Any) -> None:
        assert not os.path.exists(target)  # no consumer could have seen it under its name
        json.loads(Path(source).read_text())  # the whole message is there already
        renamed.append((os.path.basename(source), os.path.basename(target)))
        replace(source, target)

    monkeypatch.setattr(embedded.os, "replace", watched)
    with connection(tmp_path) as conn:
        queue = conn.SimpleQueue("steps")
        queue.put({"n": 1})
        message = queue.get(timeout=5)
        message.ack()
        queue.close()
    assert message.payload == {"n": 1}
    assert len(renamed) == 1 and renamed[0][1].endswith(".steps.msg") and not renamed[0][0].endswith(".msg")
