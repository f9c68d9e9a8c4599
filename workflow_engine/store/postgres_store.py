"""PostgreSQL's store: the hot path's claims, pipelined and planned transactions, and counted
outcomes, in place of the portable ones of :class:`~workflow_engine.store.repository.Store`."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import exc
from sqlalchemy.engine import Engine

from workflow_engine.clock import Clock
from workflow_engine.core.states import StepStatus, check_step_update
from workflow_engine.store import postgres, slots
from workflow_engine.store.claims import ClaimedRun, claim_postgres
from workflow_engine.store.counted import Counted, Take, finish_counted, finish_item_counted
from workflow_engine.store.database import begin, create_engine, create_fast_engine, translate
from workflow_engine.store.plan import Plan
from workflow_engine.store.postgres_tx import PostgresTx
from workflow_engine.store.repository import Store
from workflow_engine.store.transaction import Tx


class PostgresStore(Store):
    notifies = True  # NOTIFY on commit (see store.postgres_tx), LISTEN in workflow_engine.notify

    def __init__(self, engine: Engine, clock: Clock | None = None) -> None:
        super().__init__(engine, clock)
        self.run_ids = postgres.RunIds()
        self._fast_engine: Engine | None = None
        self._pipeline_engine: Engine | None = None

    def dispose(self) -> None:
        super().dispose()
        for extra in (self._fast_engine, self._pipeline_engine):
            if extra is not None:
                extra.dispose()

    def waiting_for_slot(self, key: str) -> bool:
        """One autocommitted statement (this is asked each time a keyed execution ends)."""
        if self._fast_engine is None:
            self._fast_engine = create_fast_engine(self.engine.url)
        try:
            with self._fast_engine.connect() as conn:
                return slots.any_queued(conn, key)
        except (exc.DBAPIError, exc.TimeoutError) as error:
            raise translate(error) from error

    def claim(
        self, run_id: int, worker: str, task_id: str | None = None, at: datetime | None = None
    ) -> ClaimedRun | None:
        """One statement on sessions that do not wait for the disk (losing a claim only
        republishes the attempt)."""
        if self._fast_engine is None:
            self._fast_engine = create_fast_engine(self.engine.url)
        try:
            return claim_postgres(self._fast_engine, run_id, worker, task_id, at or self.clock.now())
        except (exc.DBAPIError, exc.TimeoutError) as error:
            raise translate(error) from error

    @contextmanager
    def transaction(self) -> Iterator[Tx]:
        with begin(self.engine) as connection:
            yield PostgresTx(connection, self.clock.now(), self.run_ids)

    @contextmanager
    def pipelined(self) -> Iterator[Tx]:
        """A write transaction whose BEGIN and COMMIT ride with its first and last statements
        (two round trips fewer)."""
        try:
            with self._autocommitting().connect() as connection:
                tx = PostgresTx(connection, self.clock.now(), self.run_ids, pipelined=True)
                try:
                    yield tx
                    if tx.begun and not tx.committed:
                        connection.exec_driver_sql("COMMIT")
                except BaseException:
                    if tx.begun and not tx.committed and not connection.invalidated:
                        try:
                            connection.exec_driver_sql("ROLLBACK")
                        except exc.SQLAlchemyError:
                            connection.invalidate()  # never back to the pool mid-transaction
                    raise
        except (exc.DBAPIError, exc.TimeoutError) as error:
            raise translate(error) from error

    @contextmanager
    def planning(self) -> Iterator[Plan | None]:
        try:
            with self._autocommitting().connect() as connection:
                yield Plan(connection, self.clock.now(), self.run_ids)
        except (exc.DBAPIError, exc.TimeoutError) as error:
            raise translate(error) from error

    def finish_counted(self, counted: Counted, take: Take) -> tuple[bool, tuple[int, dict[str, Any]] | None]:
        """Record a success that only counts toward joins in one statement, if
        ``core.counting``'s guard holds on the execution's row, and take a carried run as
        ``take`` says. See :data:`workflow_engine.store.counted.FINISH_COUNTED`."""
        check_step_update((StepStatus.RUNNING,), counted.attempt["status"])
        try:
            with self._autocommitting().connect() as connection:
                return finish_counted(connection, counted, take)
        except (exc.DBAPIError, exc.TimeoutError) as error:
            raise translate(error) from error

    def finish_item_counted(
        self, counted: Counted, step: str, take: Take
    ) -> tuple[bool, tuple[int, dict[str, Any]] | None]:
        """Record a map item's success in one statement if ``core.mapping``'s guard holds on
        the execution's row. See :data:`workflow_engine.store.counted.FINISH_ITEM_COUNTED`."""
        check_step_update((StepStatus.RUNNING,), counted.attempt["status"])
        try:
            with self._autocommitting().connect() as connection:
                return finish_item_counted(connection, counted, step, take)
        except (exc.DBAPIError, exc.TimeoutError) as error:
            raise translate(error) from error

    def _autocommitting(self) -> Engine:
        """Sessions that leave transaction control to the statements (durable commits)."""
        if self._pipeline_engine is None:
            self._pipeline_engine = create_engine(
                self.engine.url.render_as_string(hide_password=False),
                pool_size=2,
                isolation_level="AUTOCOMMIT",
            )
        return self._pipeline_engine
