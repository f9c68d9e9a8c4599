"""After a unit commits: publish its runs, revoke the tasks it stopped, announce its events.

The runs were written as published in the unit's transaction (the outbox); a message that
cannot be sent is marked unpublished again, and the reconciler publishes it later.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from workflow_engine.decisions.dispatch import Dispatch, Dispatcher
from workflow_engine.decisions.unit import Unit
from workflow_engine.events import EventBus
from workflow_engine.outages import warn
from workflow_engine.store.repository import Store

log = logging.getLogger(__name__)


class Outbox:
    def __init__(self, store: Store, dispatcher: Dispatcher, events: EventBus) -> None:
        self.store = store
        self.dispatcher = dispatcher
        self.events = events
        # what follows a unit's commit beyond messages: its child executions (the coordinator's);
        # given the reporting worker, it may hand back a child's decision whose first step that
        # worker is to run in place
        self.follow_up: Callable[[Unit, tuple[str, str | None] | None], Unit | None] | None = None

    def after_commit(self, unit: Unit, in_place: tuple[str, str | None] | None = None) -> Unit | None:
        """Publish, revoke and announce what ``unit`` decided, then what follows it; the decision
        on a child whose first step ``in_place``'s worker (if given) runs in place, if any."""
        if unit.dispatches:
            self.publish(unit.dispatches)
        for terminate in (False, True) if unit.revocations else ():
            ids = [task for task, kill in unit.revocations if kill is terminate]
            if ids:
                try:
                    self.dispatcher.revoke(ids, terminate=terminate)
                except Exception as exc:
                    warn(log, exc, "could not revoke %s", ids)
        self.events.publish(unit.events)
        record = unit.record
        follows = unit.children or unit.cascades or record.parent_execution_id is not None
        follows = follows or record.concurrency_key is not None
        if self.follow_up is not None and follows:  # (children to start, a parent or a slot to tell)
            try:
                return self.follow_up(unit, in_place)
            except Exception as exc:  # committed already: the reconciler finishes what is left
                warn(log, exc, "what follows a decision on %s failed", unit.id)
        return None

    def publish(self, dispatches: Sequence[Dispatch]) -> None:
        """Publish committed runs; if the broker fails, leave them to the reconciler."""
        try:
            self.dispatcher.dispatch(dispatches)
        except Exception as exc:
            warn(log, exc, "publishing %d step(s) failed; the reconciler will publish them", len(dispatches))
            ids = [d.run_id for d in dispatches]
            try:
                with self.store.transaction() as tx:
                    tx.unpublish(ids)
            except Exception as exc:
                warn(log, exc, "could not mark runs %s unpublished", ids)
