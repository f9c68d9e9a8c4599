"""Starting the engine's processes (`wfe worker`, `wfe coordinator`) as local child processes.

Used by `wfe run` to run a workflow on the embedded default, and by the integration tests,
which must exercise the same real processes an operator starts.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

from workflow_engine.settings import Settings


def settings_env(settings: Settings) -> dict[str, str]:
    """``settings`` as the ``WFE_*`` environment a child process reads them back from."""
    env: dict[str, str] = {}
    for name, value in settings.model_dump().items():
        if value is None:
            continue
        if hasattr(value, "get_secret_value"):
            value = value.get_secret_value()
        elif isinstance(value, (tuple, list)):
            value = ",".join(value)
        elif isinstance(value, dict):
            value = json.dumps(value)
        env[f"WFE_{name.upper()}"] = str(value)
    return env


class Process:
    """One child process in its own session, so that it and its children stop together."""

    def __init__(self, name: str, argv: Sequence[str], env: Mapping[str, str], log: Path, cwd: Path) -> None:
        self.name = name
        self.argv = list(argv)
        self.env = dict(env)
        self.log = log
        self.cwd = cwd
        self.popen: subprocess.Popen[bytes] | None = None

    def start(self) -> Process:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as out:
            self.popen = subprocess.Popen(
                self.argv,
                env=self.env,
                cwd=self.cwd,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def signal(self, sig: int) -> None:
        """Send ``sig`` to the whole process group (a prefork worker and its pool)."""
        if self.popen is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, sig)

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM to the main process (it stops its pool), SIGKILL to the group after ``timeout``."""
        if self.popen is None:
            return None
        if self.alive():
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.signal(signal.SIGKILL)
                self.popen.wait(5)
        self.signal(signal.SIGKILL)  # strays left in the group
        return self.popen.returncode

    def tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


class LocalCluster:
    """A worker and a coordinator, started with the given settings, stopped on exit."""

    def __init__(
        self,
        settings: Settings,
        log_dir: Path,
        concurrency: int = 2,
        pool: str = "prefork",
        extra_env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        with_coordinator: bool = True,
    ) -> None:
        self.env = {**os.environ, **settings_env(settings), **(extra_env or {})}
        self.env.setdefault("PYTHONUNBUFFERED", "1")
        self.log_dir = log_dir
        self.cwd = cwd or Path.cwd()
        self.concurrency = concurrency
        self.pool = pool
        self.with_coordinator = with_coordinator
        self.processes: list[Process] = []

    def _wfe(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "workflow_engine", *args]

    def start_worker(
        self, name: str = "worker", concurrency: int | None = None, pool: str | None = None
    ) -> Process:
        argv = self._wfe(
            "worker",
            "--concurrency",
            str(concurrency or self.concurrency),
            "--pool",
            pool or self.pool,
            "--hostname",
            f"{name}-{os.getpid()}-{len(self.processes)}@%h",
        )
        process = Process(name, argv, self.env, self.log_dir / f"{name}.log", self.cwd).start()
        self.processes.append(process)
        return process

    def start_coordinator(self, name: str = "coordinator") -> Process:
        argv = self._wfe("coordinator", "--hostname", f"{name}-{os.getpid()}-{len(self.processes)}@%h")
        process = Process(name, argv, self.env, self.log_dir / f"{name}.log", self.cwd).start()
        self.processes.append(process)
        return process

    def start_flower(self, port: int, *extra: str, name: str = "flower") -> Process:
        argv = self._wfe("flower", "--port", str(port), *extra)
        process = Process(name, argv, self.env, self.log_dir / f"{name}.log", self.cwd).start()
        self.processes.append(process)
        return process

    def start_api(self, port: int, name: str = "api") -> Process:
        argv = self._wfe("api", "--host", "127.0.0.1", "--port", str(port))
        process = Process(name, argv, self.env, self.log_dir / f"{name}.log", self.cwd).start()
        self.processes.append(process)
        return process

    def start(self) -> LocalCluster:
        self.start_worker()
        if self.with_coordinator:
            self.start_coordinator()
        return self

    def failed(self) -> Process | None:
        """A process that has exited on its own, if any."""
        return next((p for p in self.processes if p.popen is not None and not p.alive()), None)

    def stop(self, graceful: bool = True) -> None:
        """Warm shutdown (running steps finish), or at once when nothing needs to finish."""
        if not graceful:
            for process in self.processes:
                process.signal(signal.SIGKILL)
        for process in self.processes:
            if process.popen is not None:
                process.popen.send_signal(signal.SIGTERM) if process.alive() else None
        deadline = time.monotonic() + 15
        for process in self.processes:
            process.stop(max(0.1, deadline - time.monotonic()))

    def __enter__(self) -> LocalCluster:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
