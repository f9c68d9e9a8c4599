"""A worker process says it is alive, and which attempts it runs, every few seconds.

The reconciler treats a running attempt whose heartbeat is older than ``worker_lost_after`` as
lost with its worker (killed, frozen, cut off) and runs it again. A process's record is named
``<node>:<pid>``: the Celery node it belongs to (a worker's main process and its pool processes
share one, see :mod:`workflow_engine.worker.nodes`) and its own pid. A process that stops cleanly
takes its record with it.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from workflow_engine.outages import DATABASE, warn
from workflow_engine.store.repository import Store

log = logging.getLogger(__name__)


def worker_identity(node: str | None = None) -> tuple[str, str, int]:
    """This process's heartbeat id, host and pid; the id starts with its Celery node's name
    when it has one, else with the host's."""
    hostname, pid = socket.gethostname(), os.getpid()
    return f"{node or hostname}:{pid}", hostname, pid


class Heartbeat:
    def __init__(
        self,
        store: Store,
        agents: Sequence[str],
        queues: Sequence[str],
        interval: float,
        slots: int = 1,
        node: str | None = None,
    ) -> None:
        self.store = store
        self.slots = slots  # steps it reports it runs at once (see EngineCelery.process_slots)
        self.worker_id, self.hostname, self.pid = worker_identity(node)
        self.agents = list(agents)
        self.queues = list(queues)
        self.interval = interval
        self._running: set[int] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @contextmanager
    def beating(self, run_id: int) -> Iterator[None]:
        """While inside, ``run_id`` is reported alive with this worker."""
        self.start()
        with self._lock:
            self._running.add(run_id)
        try:
            yield
        finally:
            with self._lock:
                self._running.discard(run_id)

    def start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="wfe-heartbeat", daemon=True)
                self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def leave(self) -> None:
        """Stop beating and remove this process's record: it stops cleanly, so it is neither
        counted as capacity nor shown as a silent process any more."""
        self.stop()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(self.interval + 5)  # (a beat under way would write the record again)
        try:
            self.store.forget_worker(self.worker_id)
        except Exception as exc:  # its record goes stale instead, and is forgotten later
            warn(log, exc, "could not remove the heartbeat record %s", self.worker_id)

    def beat(self) -> None:
        with self._lock:
            running = list(self._running)
        self.store.beat(
            self.worker_id, self.hostname, self.pid, self.agents, self.queues, running, self.slots
        )

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.beat()
                DATABASE.ok()
            except Exception as exc:
                warn(log, exc, "heartbeat failed")
            self._stop.wait(self.interval)
