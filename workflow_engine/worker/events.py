"""Whether a worker sends task events right now, known to its pool processes too.

Task events are switched at run time: Flower's ``enable_events`` remote-control command adds the
``task`` group to the event dispatcher of the worker's consumer (``disable_events`` takes it
away), in the worker's main process. Celery follows that dispatcher for the tasks it runs; the
steps a pool process runs in place have no Celery task, so the runtime announces them itself,
and must follow the same live state, not the static ``WFE_TASK_EVENTS``.
"""

from __future__ import annotations

import ctypes
import multiprocessing
from typing import Any

from celery import bootsteps, signals

# how often the main process looks at its dispatcher between task messages (seconds)
REFRESH_INTERVAL = 1.0


def task_events_on(dispatcher: Any) -> bool:
    """Whether ``dispatcher`` sends ``task-*`` events (the test of EventDispatcher.publish)."""
    if dispatcher is None or not dispatcher.enabled:
        return False
    groups = dispatcher.groups
    return not groups or "task" in groups


class TaskEventsState:
    """The worker's live task-events switch: written by the main process, read by any process.

    The flag is shared memory made when the app is, before the worker forks its pool, so the
    pool processes see every change the main process writes.
    """

    def __init__(self, initial: bool) -> None:
        self._flag = multiprocessing.RawValue(ctypes.c_bool, initial)

    @property
    def enabled(self) -> bool:
        return bool(self._flag.value)

    def refresh(self, consumer: Any) -> None:
        """Copy the state of ``consumer``'s event dispatcher (in the worker's main process)."""
        self._flag.value = task_events_on(getattr(consumer, "event_dispatcher", None))


class WatchTaskEvents(bootsteps.StartStopStep):  # type: ignore[misc]
    """A consumer bootstep keeping the app's :class:`TaskEventsState` in step with its dispatcher.

    It refreshes on every task message received, before the message reaches the pool (so the
    steps run in place after a task follow the state Celery used for that task), and every
    second, for chains already running in place when events are switched.
    """

    requires = ("celery.worker.consumer.events:Events",)

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        self._timer: Any = None

    def start(self, parent: Any) -> None:
        state: TaskEventsState | None = getattr(parent.app, "live_task_events", None)
        if state is None:
            return
        state.refresh(parent)
        signals.task_received.connect(self._received, sender=parent, weak=False)
        self._timer = parent.timer.call_repeatedly(REFRESH_INTERVAL, state.refresh, (parent,))

    def _received(self, sender: Any = None, **_: Any) -> None:
        sender.app.live_task_events.refresh(sender)

    def stop(self, parent: Any) -> None:
        signals.task_received.disconnect(self._received, sender=parent)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def shutdown(self, parent: Any) -> None:
        self.stop(parent)

    def terminate(self, parent: Any) -> None:
        self.stop(parent)
