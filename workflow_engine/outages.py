"""One clear line when the database (or the broker) becomes unreachable and one when it is
back, whatever keeps failing meanwhile (heartbeats, the reconciler, the scheduler, step tasks,
publishing), and the backoff loops wait between attempts."""

from __future__ import annotations

import logging
import threading
import time

from workflow_engine.errors import BrokerError, StoreError

log = logging.getLogger("workflow_engine.outages")
DRIVERS = ("psycopg", "psycopg2")


def is_outage(error: BaseException) -> bool:
    """Whether ``error`` is the database being unreachable (or shutting down): worth waiting
    out, and said once. A lock or a conflict is not. A PostgreSQL driver's own error (a raw
    connection's, maybe wrapped by SQLAlchemy) counts when it is an ``OperationalError``."""
    if isinstance(error, StoreError):
        return error.unreachable
    raw = getattr(error, "orig", None) or error
    return any(
        kind.__name__ == "OperationalError" and kind.__module__.split(".")[0] in DRIVERS
        for kind in type(raw).__mro__
    )


def warn(logger: logging.Logger, error: BaseException, message: str, *args: object) -> None:
    """Log ``message`` with ``error``'s traceback; when ``error`` is the database being
    unreachable, or the broker not taking a message, the outage's one line says it instead."""
    if is_outage(error):
        DATABASE.failed(error)
    elif isinstance(error, BrokerError):
        BROKER.failed(error)
    else:
        logger.warning(message, *args, exc_info=error)


class Outage:
    """The state of one dependency in this process: reachable, or unreachable since when."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.since: float | None = None
        self.failures = 0
        self.last_error: BaseException | None = None
        self._lock = threading.Lock()

    def failed(self, error: BaseException) -> None:
        """Another call failed: the first of an outage is logged, the others are counted."""
        with self._lock:
            self.failures += 1
            self.last_error = error
            if self.since is not None:
                return
            self.since = time.monotonic()
        message = " ".join(str(error).split())
        log.warning("%s unreachable, retrying until it is back: %s", self.what, message)

    def ok(self) -> None:
        """A call succeeded: the end of an outage is logged."""
        if self.since is None:  # (the common case: no lock)
            return
        with self._lock:
            if self.since is None:
                return
            lasted, failures = time.monotonic() - self.since, self.failures
            self.since, self.failures = None, 0
        log.warning("%s reachable again after %.1f s (%d calls failed)", self.what, lasted, failures)

    def pause(self, base: float, longest: float = 5.0) -> float:
        """How long a loop of period ``base`` waits before its next attempt: ``base`` while
        the dependency is reachable, doubling per failure (up to ``longest``) while it is not."""
        if self.since is None:
            return base
        return float(min(max(base, longest), base * 2 ** min(self.failures, 16)))


DATABASE = Outage("database")
BROKER = Outage("broker")
