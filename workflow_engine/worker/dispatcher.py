"""Publishing step work as Celery tasks; what the broker's client raises becomes a
:class:`~workflow_engine.errors.BrokerError` here, in one line."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Sequence
from typing import Any

from kombu.exceptions import KombuError
from kombu.utils.url import maybe_sanitize_url

from workflow_engine.decisions.dispatch import Dispatch
from workflow_engine.errors import BrokerError
from workflow_engine.outages import BROKER
from workflow_engine.settings import Settings
from workflow_engine.worker.app import EngineCelery, create_celery_app, queue_name

TASKS = {"step": "wfe.step", "timer": "wfe.fire_timer"}


class CeleryDispatcher:
    """One task per step attempt; a fan-out goes out over one producer connection (plain
    messages: the database decides the join, so Celery's group bookkeeping is not needed)."""

    def __init__(self, app: EngineCelery, hard_limit_grace: float = 30.0) -> None:
        self.app = app
        self.hard_limit_grace = hard_limit_grace
        self._broker_errors: tuple[type[BaseException], ...] | None = None

    def options(self, item: Dispatch) -> dict[str, Any]:
        """The Celery options of ``item``'s message: its task id, queue, name in Flower, ETA
        and time limits."""
        options: dict[str, Any] = {
            "task_id": item.task_id,
            "queue": queue_name(self.app.settings, item.queue),
            "shadow": item.celery_task
            or f"{item.workflow}.{item.step}" + ("" if item.index is None else f"[{item.index}]"),
            # the attempts before this one: what Flower shows as the task's retries
            "retries": max(item.attempt - 1, 0),
        }
        if item.eta is not None:
            options["eta"] = item.eta
        if item.kind == "step" and item.time_limit:
            options["soft_time_limit"] = item.time_limit
            options["time_limit"] = item.time_limit + self.hard_limit_grace
        return options

    def dispatch(self, items: Sequence[Dispatch]) -> None:
        if not items:
            return
        executions = ", ".join(sorted({item.execution_id for item in items}))
        waiting = f"the steps of execution {executions} wait to be published"
        with self._talking(waiting), self.app.producer_or_acquire() as producer:
            for item in items:
                self.app.send_task(
                    TASKS[item.kind],
                    args=(item.run_id, item.execution_id, item.step, item.attempt),
                    kwargs={"workflow": item.workflow, **({"rated": True} if item.rated else {})},
                    producer=producer,
                    **self.options(item),
                )

    def revoke(self, task_ids: Sequence[str], terminate: bool) -> None:
        with self._talking(f"the workers were not told to drop {', '.join(task_ids)}"):
            self.app.control.revoke(list(task_ids), terminate=terminate, signal="SIGTERM")

    @contextlib.contextmanager
    def _talking(self, consequence: str) -> Iterator[None]:
        """Inside, the broker's client talks to the broker: what it raises when the broker is
        unreachable or refuses becomes a :class:`BrokerError` saying ``consequence``."""
        errors = self._errors()
        try:
            yield
        except errors as exc:
            url = maybe_sanitize_url(self.app.settings.broker_url)
            reason = " ".join(str(exc).split()) or type(exc).__name__
            if url.startswith("rediss://") and "timeout" in reason.lower():
                reason += "; is that port TLS? rediss:// speaks TLS"
            raise BrokerError(f"the broker at {url} did not answer ({reason}): {consequence}") from exc
        BROKER.ok()

    def _errors(self) -> tuple[type[BaseException], ...]:
        """What the broker's client raises for a broker that is unreachable or refuses: kombu's
        errors and its transport's (a KeyError is a bug here, not the broker)."""
        if self._broker_errors is None:
            connection = self.app.connection_for_write()
            kinds = {*connection.connection_errors, *connection.channel_errors} - {KeyError}
            self._broker_errors = (KombuError, OSError, *kinds)
            connection.release()
        return self._broker_errors

    def depths(self, queues: Sequence[str]) -> dict[str, int | None]:
        """How many messages wait in each queue (None: the broker does not know the queue). A
        broker that cannot be reached raises (kombu's error) after one short try."""
        found: dict[str, int | None] = {}
        with self.app.connection_for_read() as connection:
            connection.ensure_connection(max_retries=1, timeout=2)
            for queue in queues:
                channel = connection.channel()  # (a refused passive declare closes its channel)
                try:
                    found[queue] = int(channel.queue_declare(queue=queue, passive=True).message_count)
                except Exception:
                    found[queue] = None
                finally:
                    with contextlib.suppress(Exception):
                        channel.close()
        return found


class LazyCeleryDispatcher:
    """A :class:`CeleryDispatcher` whose Celery app is built only when something is first
    published (an engine that only reads never connects to a broker)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._dispatcher: CeleryDispatcher | None = None
        self._lock = threading.Lock()

    @property
    def app(self) -> EngineCelery:
        return self._built().app

    def _built(self) -> CeleryDispatcher:
        if self._dispatcher is None:
            with self._lock:
                if self._dispatcher is None:
                    self._dispatcher = CeleryDispatcher(create_celery_app(self.settings))
        return self._dispatcher

    def dispatch(self, items: Sequence[Dispatch]) -> None:
        self._built().dispatch(items)

    def revoke(self, task_ids: Sequence[str], terminate: bool) -> None:
        self._built().revoke(task_ids, terminate)

    def depths(self, queues: Sequence[str]) -> dict[str, int | None]:
        return self._built().depths(queues)
