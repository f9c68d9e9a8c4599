"""Ctrl-C during `wfe run`, in a real pseudo-terminal, on the embedded default with a slow step:
the first detaches (the run stops its worker and coordinator and says how to follow or cancel
the execution, which stays where it is), a second while they stop cancels the execution; the run
never hangs and leaves no process of its own behind."""

from __future__ import annotations

import contextlib
import json
import os
import re
import select
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest

from tests.cli.test_settings_cli import wfe
from tests.conftest import ROOT
from tests.support import services
from tests.support.polling import poll

pytestmark = pytest.mark.slow

WORKFLOW = """\
name: slowpoke
version: 1.0.0
steps:
  - {name: nap, agent: slow, config: {seconds: 600}}
  - {name: after, agent: echo}
edges:
  - {from: nap, to: after}
"""
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
DEADLINE = 60.0  # (bounds every wait: a broken run fails the test instead of hanging it)


@dataclass
class Terminal:
    """`wfe run` in a pseudo-terminal of its own, in its own session (its process group is the
    terminal's foreground group, which Ctrl-C signals)."""

    process: subprocess.Popen[bytes]
    master: int
    shown: bytearray = field(default_factory=bytearray)

    @property
    def text(self) -> str:
        return ANSI.sub("", self.shown.decode(errors="replace")).replace("\r", "")

    def read_until(self, done: Callable[[], bool], what: str) -> None:
        """Read what the run prints until ``done()``, at most :data:`DEADLINE` seconds."""

        def read_then_check() -> bool:
            ready, _, _ = select.select([self.master], [], [], 0)
            if ready:
                with contextlib.suppress(OSError):  # (the terminal closes as the run exits)
                    self.shown += os.read(self.master, 65536)
            return done()

        poll(read_then_check, DEADLINE, f"the {what}", interval=0.05, explain=lambda: self.text)

    def ctrl_c(self) -> None:
        os.killpg(self.process.pid, signal.SIGINT)  # what the terminal does on Ctrl-C

    def exited(self) -> bool:
        return self.process.poll() is not None


@pytest.fixture
def terminal(tmp_path: Path) -> Iterator[Terminal]:
    (tmp_path / "slowpoke.yaml").write_text(WORKFLOW)
    master, slave = os.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "workflow_engine", "run", str(tmp_path / "slowpoke.yaml")],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env={
            **services.environment_without_settings(),
            "WFE_DATABASE_URL": f"sqlite:///{tmp_path / 'wfe.db'}",
            "WFE_AGENT_MODULES": "tests.support.agents",
        },
        cwd=ROOT,
        start_new_session=True,
    )
    os.close(slave)
    try:
        yield Terminal(process, master)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        os.close(master)


def descendants(pid: int) -> list[psutil.Process]:
    return psutil.Process(pid).children(recursive=True)


def gone(process: psutil.Process) -> bool:
    try:
        return process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def all_gone(children: list[psutil.Process]) -> None:
    """Every process the run started has ended (polled: a killed process takes a moment)."""
    poll(
        lambda: all(gone(child) for child in children),
        DEADLINE,
        "every process the run started to end",
        interval=0.05,
        explain=lambda: [child.cmdline() for child in children if not gone(child)],
    )


def running_nap(terminal: Terminal) -> tuple[str, list[psutil.Process]]:
    """Wait until the slow step runs; its execution's id, and every process the run started."""
    terminal.read_until(lambda: "step nap running" in terminal.text, "running step")
    found = re.search(r"execution ([0-9a-f-]{36}) of slowpoke", terminal.text)
    assert found, terminal.text
    children = descendants(terminal.process.pid)
    commands = [" ".join(child.cmdline()) for child in children]
    assert any(" worker " in c for c in commands) and any(" coordinator " in c for c in commands), commands
    return found.group(1), children


def status_of(tmp_path: Path, execution_id: str) -> dict[str, object]:
    shown = wfe(tmp_path, "status", execution_id, "--json")
    assert shown.returncode == 0, shown.stderr
    document: dict[str, object] = json.loads(shown.stdout)
    return document


def test_first_ctrl_c_detaches_and_stops_the_local_processes(terminal: Terminal, tmp_path: Path) -> None:
    execution_id, children = running_nap(terminal)
    terminal.ctrl_c()
    terminal.read_until(terminal.exited, "exit")
    terminal.read_until(lambda: terminal.text.rstrip().endswith("`"), "last line")
    assert terminal.process.returncode == 130, terminal.text
    last = terminal.text.rstrip().splitlines()[-1]
    assert last == (
        f"detached: execution {execution_id} is running; nothing runs it until a worker runs "
        f"again (`wfe worker` and `wfe coordinator`); follow it with `wfe watch {execution_id}`, "
        f"cancel it with `wfe cancel {execution_id}`"
    )
    assert "Traceback" not in terminal.text and "aborted" not in terminal.text
    all_gone(children)
    document = status_of(tmp_path, execution_id)  # where it was left: the next step never started
    assert document["status"] == "running"
    assert [(s["name"], s["status"]) for s in document["steps"]] == [("nap", "running"), ("after", "pending")]  # type: ignore[attr-defined]


def test_second_ctrl_c_cancels_the_execution(terminal: Terminal, tmp_path: Path) -> None:
    execution_id, children = running_nap(terminal)
    terminal.ctrl_c()
    terminal.read_until(lambda: "Ctrl-C again cancels the execution" in terminal.text, "notice")
    terminal.ctrl_c()
    terminal.read_until(terminal.exited, "exit")
    terminal.read_until(lambda: "shows where it ended" in terminal.text, "last line")
    assert terminal.process.returncode == 1, terminal.text
    assert terminal.text.rstrip().splitlines()[-1] == (
        f"cancelled: execution {execution_id} is cancelled; `wfe status {execution_id}` shows where it ended"
    )
    assert "Traceback" not in terminal.text
    all_gone(children)
    assert status_of(tmp_path, execution_id)["status"] == "cancelled"
