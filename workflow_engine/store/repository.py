"""The store: reads, workflow registration and users. Writes that move executions forward go
through :class:`~workflow_engine.store.transaction.Tx`, inside one transaction each."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine, Row

from workflow_engine.clock import Clock, SystemClock
from workflow_engine.core.states import StepStatus
from workflow_engine.definitions.model import WorkflowDefinition, parse_version
from workflow_engine.errors import (
    Conflict,
    DefinitionExists,
    ExecutionNotFound,
    InputError,
    NameTaken,
    Problem,
    UserNotFound,
    WorkflowNotFound,
)
from workflow_engine.store import listing, slots
from workflow_engine.store import schema as t
from workflow_engine.store.claims import claim_portable
from workflow_engine.store.database import begin
from workflow_engine.store.optimistic import OptimisticWrite
from workflow_engine.store.records import (
    ClaimedRun,
    EventRecord,
    ExecutionRecord,
    StepRunRecord,
    UserRecord,
    WorkerRecord,
    WorkflowRecord,
    from_row,
)
from workflow_engine.store.seam import UNSUPPORTED, Arrival, ArrivalAnswer, Take, Unsupported
from workflow_engine.store.transaction import Tx

SYSTEM_USER = "system"
ROLES = ("admin", "operator", "viewer")
DELETED_NAME = "~deleted-"  # the name a deleted version's row keeps (no workflow name starts so)
MIN_ID_PREFIX = 8  # characters of an execution id that name it, when no other starts with them
ID_LENGTH = 36
_ID_CHARACTERS = re.compile(r"[0-9a-f-]+")
_SHOWN_MATCHES = 5


def document_digest(document: dict[str, Any]) -> str:
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class LogQuery:
    step_name: str | None = None
    step_type: str | None = None
    has_error: bool | None = None
    limit: int = 100
    index: int | None = None  # a map step's item


class Store:
    """Everything the engine keeps, behind one object per process: the portable implementation,
    SQLite's (:class:`~workflow_engine.store.postgres_store.PostgresStore` is PostgreSQL's;
    :func:`~workflow_engine.store.opening.store_for` opens the one of a URL)."""

    notifies = False  # whether listeners hear of new events (here, readers poll)

    def __init__(self, engine: Engine, clock: Clock | None = None) -> None:
        self.engine = engine
        self.clock = clock or SystemClock()
        self._system_user_id: int | None = None

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def dispose(self) -> None:
        self.engine.dispose()

    def claim(
        self, run_id: int, worker: str, task_id: str | None = None, at: datetime | None = None
    ) -> ClaimedRun | None:
        """Take a queued attempt for ``worker`` (queued or retrying → running), or None; it
        starts ``at`` (now, unless a rate limit recorded its start)."""
        with self.transaction() as tx:
            if at is not None:
                tx.now = at
            return claim_portable(tx, run_id, worker, task_id)

    def waiting_for_slot(self, key: str) -> bool:
        """Whether any execution waits for one of the concurrency ``key``'s slots (read as
        committed, taking no lock)."""
        with self.reading() as conn:
            return slots.any_queued(conn, key)

    @contextmanager
    def transaction(self, now: datetime | None = None) -> Iterator[Tx]:
        """One write transaction; everything in it commits together or not at all. Every row
        it writes is dated ``now`` (the clock's, once it holds the database, if not given)."""
        with begin(self.engine) as connection:
            yield Tx(connection, now or self.clock.now())

    @contextmanager
    def pipelined(self, now: datetime | None = None) -> Iterator[Tx]:
        """A write transaction for a step's outcome, dated ``now`` (PostgreSQL saves two round
        trips in it; here, an ordinary transaction)."""
        with self.transaction(now) as tx:
            yield tx

    @contextmanager
    def optimistic(self) -> Iterator[OptimisticWrite | Unsupported]:
        """A :class:`~workflow_engine.store.optimistic.OptimisticWrite` for an outcome known in advance
        (unsupported here: a round trip costs little; PostgreSQL gives one)."""
        yield UNSUPPORTED

    def record_arrival(self, arrival: Arrival, take: Take) -> ArrivalAnswer:
        """Record a success that only counts toward joins in one statement (PostgreSQL; here
        unsupported: the outcome is recorded the usual way)."""
        return UNSUPPORTED

    def record_item_arrival(self, arrival: Arrival, step: str, take: Take) -> ArrivalAnswer:
        """Record a map item's success that only counts, in one statement (PostgreSQL; here
        unsupported: the outcome is recorded the usual way)."""
        return UNSUPPORTED

    @contextmanager
    def reading(self) -> Iterator[Connection]:
        with begin(self.engine, read_only=True) as connection:
            yield connection

    # users

    def system_user_id(self) -> int:
        """The owner of work started without a user (CLI, plain Celery messages)."""
        if self._system_user_id is None:
            self._system_user_id = self.get_user(SYSTEM_USER).id
        return self._system_user_id

    def create_user(self, username: str, password_hash: str | None, role: str) -> UserRecord:
        if role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}")
        with self.transaction() as tx:
            inserted = tx.insert_ignoring_conflicts(
                t.users,
                {
                    "username": username,
                    "password_hash": password_hash,
                    "role": role,
                    "active": True,
                    "created_at": tx.now,
                },
                ["username"],
            )
            if not inserted:
                raise Conflict(f"user {username!r} exists already")
        return self.get_user(username)

    def get_user(self, username: str) -> UserRecord:
        with self.reading() as conn:
            row = conn.execute(sa.select(t.users).where(t.users.c.username == username)).first()
        if row is None:
            raise UserNotFound(username)
        return from_row(UserRecord, row)

    # failed logins

    def get_user_by_id(self, user_id: int) -> UserRecord:
        with self.reading() as conn:
            row = conn.execute(sa.select(t.users).where(t.users.c.id == user_id)).first()
        if row is None:
            raise UserNotFound(str(user_id))
        return from_row(UserRecord, row)

    # workflows

    def register_workflow(
        self, definition: WorkflowDefinition, created_by: int | None = None
    ) -> tuple[WorkflowRecord, bool]:
        """Store a definition version; registering the same body again changes nothing.

        Returns the record and whether it was created. A name belongs to whoever registered
        its first version: anyone else is refused with :class:`NameTaken`, whatever the
        version and body (so the answer tells nothing of what is registered under it). A
        different body under an existing (name, version) is refused: versions are immutable.
        """
        document = definition.document()
        digest = document_digest(document)
        owner = created_by if created_by is not None else self.system_user_id()
        names = t.workflow_names
        with self.transaction() as tx:
            tx.insert_ignoring_conflicts(
                names,
                {"name": definition.name, "owner_id": owner, "created_at": tx.now},
                ["name"],
            )
            holder = tx.execute(
                sa.select(names.c.owner_id).where(names.c.name == definition.name)
            ).scalar_one()
            if holder != owner:
                raise NameTaken(definition.name)
            created = tx.insert_ignoring_conflicts(
                t.workflows,
                {
                    "name": definition.name,
                    "version": definition.version,
                    "description": definition.description,
                    "document": document,
                    "digest": digest,
                    "created_by": owner,
                    "created_at": tx.now,
                },
                ["name", "version"],
            )
            row = tx.execute(
                sa.select(t.workflows).where(
                    t.workflows.c.name == definition.name, t.workflows.c.version == definition.version
                )
            ).one()
        if row.digest != digest or row.created_by != owner:
            raise DefinitionExists(definition.name, definition.version)
        return from_row(WorkflowRecord, row), created

    def _owned_versions(self, visible_to: int | None) -> sa.Select[Any]:
        """Versions registered by their name's owner (the only ones that run), of the names
        ``visible_to`` may see: their own and the deployment's (every name when None)."""
        w, n = t.workflows, t.workflow_names
        query = sa.select(w).join(n, sa.and_(n.c.name == w.c.name, n.c.owner_id == w.c.created_by))
        if visible_to is not None:
            query = query.where(n.c.owner_id.in_([visible_to, self.system_user_id()]))
        return query

    def get_workflow(
        self,
        name: str,
        version: str | None = None,
        visible_to: int | None = None,
        tx: Tx | OptimisticWrite | None = None,
    ) -> WorkflowRecord:
        """A version of a workflow, or its highest semantic version when ``version`` is None
        (read in ``tx``, or by ``plan``, if given)."""
        return self.workflow_with(name, version, visible_to, tx)[0]

    def workflow_with(
        self,
        name: str,
        version: str | None = None,
        visible_to: int | None = None,
        tx: Tx | OptimisticWrite | None = None,
        columns: Sequence[sa.ColumnElement[Any]] = (),
    ) -> tuple[WorkflowRecord, Row[Any]]:
        """:meth:`get_workflow`, with ``columns`` (what a start's quotas count: see
        store/quotas.py) read in the same statement: the version and the row holding them."""
        query = self._owned_versions(visible_to).where(t.workflows.c.name == name).add_columns(*columns)
        if version is not None:
            query = query.where(t.workflows.c.version == version)
        if tx is not None:
            rows = tx.execute(query).all()
        else:
            with self.reading() as conn:
                rows = conn.execute(query).all()
        if not rows:
            raise WorkflowNotFound(f"{name}@{version}" if version else name)
        best = max(rows, key=lambda row: parse_version(row.version))
        return from_row(WorkflowRecord, best), best

    def get_workflow_by_id(self, workflow_id: int) -> WorkflowRecord:
        with self.reading() as conn:
            row = conn.execute(sa.select(t.workflows).where(t.workflows.c.id == workflow_id)).first()
        if row is None:
            raise WorkflowNotFound(str(workflow_id))
        return from_row(WorkflowRecord, row)

    def list_workflows(self, visible_to: int | None = None, name: str | None = None) -> list[WorkflowRecord]:
        """Every registered version, by name, newest version first."""
        query = self._owned_versions(visible_to)
        if name is not None:
            query = query.where(t.workflows.c.name == name)
        with self.reading() as conn:
            records = [from_row(WorkflowRecord, row) for row in conn.execute(query)]
        records.sort(key=lambda r: parse_version(r.version), reverse=True)
        records.sort(key=lambda r: r.name)
        return records

    def delete_workflow_version(self, workflow_id: int) -> WorkflowRecord:
        """Delete a version no execution used (:class:`Conflict` when one did): it leaves its
        name, whose owner may register that version again with any body. Its row stays under a
        name no one can register (``~deleted-<id>``): processes cache definitions by id, so an
        id must never name another version (SQLite gives a deleted row's id to the next one)."""
        w, e = t.workflows, t.executions
        with self.transaction() as tx:
            row = tx.execute(sa.select(w).where(w.c.id == workflow_id).with_for_update()).first()
            if row is None or row.name.startswith(DELETED_NAME):
                raise WorkflowNotFound(str(workflow_id))
            used = tx.execute(sa.select(e.c.id).where(e.c.workflow_id == workflow_id).limit(1)).first()
            if used is not None:
                raise Conflict(
                    f"{row.name} {row.version} has run (execution {used.id}): a version that ran "
                    "cannot be deleted"
                )
            tx.execute(sa.update(w).where(w.c.id == workflow_id).values(name=f"{DELETED_NAME}{workflow_id}"))
        return from_row(WorkflowRecord, row)

    # executions

    def get_execution(self, execution_id: str, owner_id: int | None = None) -> ExecutionRecord:
        query = sa.select(t.executions).where(t.executions.c.id == execution_id)
        if owner_id is not None:
            query = query.where(t.executions.c.owner_id == owner_id)
        with self.reading() as conn:
            row = conn.execute(query).first()
        if row is None:
            raise ExecutionNotFound(execution_id)
        return from_row(ExecutionRecord, row)

    def resolve_execution_id(self, text: str, owner_id: int | None = None) -> str:
        """The whole id of the one execution (of ``owner_id``'s, if given) whose id is ``text``
        or starts with it; ``text`` is a whole id, or a prefix of at least
        :data:`MIN_ID_PREFIX` characters that no other execution's id starts with."""
        if len(text) >= ID_LENGTH:
            return text  # (a whole id: the read that follows says whether it is there)
        if len(text) < MIN_ID_PREFIX:
            problem = f"too short: give the whole id, or at least {MIN_ID_PREFIX} characters of it"
            raise InputError("execution id", [Problem(repr(text), problem)])
        prefix = text.lower()
        if not _ID_CHARACTERS.fullmatch(prefix):
            raise ExecutionNotFound(text)
        with self.reading() as conn:
            found = listing.ids_starting_with(conn, prefix, owner_id, limit=_SHOWN_MATCHES + 1)
        if not found:
            raise ExecutionNotFound(text)
        if len(found) > 1:
            shown = ", ".join(found[:_SHOWN_MATCHES]) + (" and more" if len(found) > _SHOWN_MATCHES else "")
            problem = f"ambiguous: it starts the ids of {shown}; give more characters"
            raise InputError("execution id", [Problem(repr(text), problem)])
        return found[0]

    def shortest_prefix(self, execution_id: str, owner_id: int | None = None) -> str:
        """The shortest prefix of ``execution_id``, of :data:`MIN_ID_PREFIX` characters or more,
        that no other execution's id (of ``owner_id``'s, if given) starts with."""
        with self.reading() as conn:
            for length in range(MIN_ID_PREFIX, len(execution_id), 4):
                prefix = execution_id[:length]
                if _ID_CHARACTERS.fullmatch(prefix) is None:
                    break
                if len(listing.ids_starting_with(conn, prefix, owner_id, limit=2)) == 1:
                    return prefix
        return execution_id

    def children(
        self,
        parent_id: str,
        step: str | None = None,
        statuses: Collection[str] | None = None,
        limit: int | None = None,
    ) -> list[ExecutionRecord]:
        """The child executions of ``parent_id`` (of its ``step``, in ``statuses``), oldest first
        (the first ``limit``)."""
        e = t.executions
        query = sa.select(e).where(e.c.parent_execution_id == parent_id)
        if step is not None:
            query = query.where(e.c.parent_step == step)
        if statuses is not None:
            query = query.where(e.c.status.in_(list(statuses)))
        if limit is not None:
            query = query.limit(limit)
        with self.reading() as conn:
            return [
                from_row(ExecutionRecord, row) for row in conn.execute(query.order_by(e.c.created_at, e.c.id))
            ]

    def step_runs(self, execution_id: str, items: bool = False) -> list[StepRunRecord]:
        """Every attempt of every step, in the order they were created; with ``items``, the
        attempts of map items too (which can be many: a map's counts are in the execution's row)."""
        r = t.step_runs
        query = sa.select(r).where(r.c.execution_id == execution_id).order_by(r.c.queued_at, r.c.id)
        if not items:
            query = query.where(r.c.item_index.is_(None))
        with self.reading() as conn:
            return [from_row(StepRunRecord, row) for row in conn.execute(query)]

    def step_run(self, execution_id: str, run_id: int) -> StepRunRecord | None:
        """One attempt of ``execution_id``'s (None if it has no attempt of that id)."""
        r = t.step_runs
        query = sa.select(r).where(r.c.execution_id == execution_id, r.c.id == run_id)
        with self.reading() as conn:
            row = conn.execute(query).first()
        return from_row(StepRunRecord, row) if row is not None else None

    def logs(self, execution_id: str, query: LogQuery) -> list[StepRunRecord]:
        """Attempts in chronological order, filtered."""
        r = t.step_runs
        conditions: list[sa.ColumnElement[bool]] = [r.c.execution_id == execution_id]
        if query.step_name is not None:
            conditions.append(r.c.step_name == query.step_name)
        if query.step_type is not None:
            conditions.append(r.c.step_type == query.step_type)
        if query.has_error is True:
            conditions.append(r.c.error_type.is_not(None))
        elif query.has_error is False:
            conditions.append(r.c.error_type.is_(None))
        if query.index is not None:
            conditions.append(r.c.item_index == query.index)
        stmt = sa.select(r).where(*conditions).order_by(r.c.queued_at, r.c.id).limit(query.limit)
        with self.reading() as conn:
            return [from_row(StepRunRecord, row) for row in conn.execute(stmt)]

    def events(
        self,
        execution_id: str,
        after_id: int = 0,
        limit: int = 1000,
        before_id: int | None = None,
        excluding: Collection[int] = (),
    ) -> list[EventRecord]:
        """An execution's events after ``after_id`` (and before ``before_id``, but for
        ``excluding``), by id."""
        ev = t.events
        conditions = [ev.c.execution_id == execution_id, ev.c.id > after_id]
        if before_id is not None:
            conditions.append(ev.c.id < before_id)
        if excluding:
            conditions.append(ev.c.id.not_in(list(excluding)))
        return self._events(conditions, limit)

    def latest_events(self, execution_id: str, limit: int, before_id: int | None = None) -> list[EventRecord]:
        """An execution's ``limit`` newest events (before ``before_id``), by id."""
        ev = t.events
        conditions = [
            ev.c.execution_id == execution_id,
            *([ev.c.id < before_id] if before_id is not None else []),
        ]
        query = sa.select(ev).where(*conditions).order_by(ev.c.id.desc()).limit(limit)
        with self.reading() as conn:
            return [from_row(EventRecord, row) for row in conn.execute(query)][::-1]

    def events_since(self, after_id: int, limit: int = 1000) -> list[EventRecord]:
        """Events of every execution after ``after_id``, by id."""
        return self._events([t.events.c.id > after_id], limit)

    def events_by_ids(self, ids: Sequence[int]) -> list[EventRecord]:
        return self._events([t.events.c.id.in_(list(ids))])

    def _events(
        self, conditions: Sequence[sa.ColumnElement[bool]], limit: int | None = None
    ) -> list[EventRecord]:
        """Events meeting every condition, by id."""
        query = sa.select(t.events).where(*conditions).order_by(t.events.c.id).limit(limit)
        with self.reading() as conn:
            return [from_row(EventRecord, row) for row in conn.execute(query)]

    def last_event_id(self) -> int:
        with self.reading() as conn:
            return int(conn.execute(sa.select(sa.func.coalesce(sa.func.max(t.events.c.id), 0))).scalar_one())

    def step_outputs(self, execution_id: str) -> dict[str, Any]:
        """Outputs of the steps of an execution whose current run succeeded."""
        with self.transaction() as tx:
            return tx.outputs(execution_id, None)

    def beat(
        self,
        worker_id: str,
        hostname: str,
        pid: int,
        agents: Sequence[str],
        queues: Sequence[str],
        run_ids: Sequence[int],
        slots: int = 1,
    ) -> None:
        """A worker process is alive (running up to ``slots`` steps at once), and so are the
        attempts it is running."""
        with self.transaction() as tx:
            values = {
                "id": worker_id,
                "hostname": hostname,
                "pid": pid,
                "agents": sorted(agents),
                "queues": sorted(queues),
                "slots": slots,
                "started_at": tx.now,
                "last_seen": tx.now,
            }
            if not tx.insert_ignoring_conflicts(t.workers, values, ["id"]):
                tx.execute(
                    sa.update(t.workers)
                    .where(t.workers.c.id == worker_id)
                    .values(last_seen=tx.now, agents=values["agents"], queues=values["queues"], slots=slots)
                )
            if run_ids:
                r = t.step_runs
                tx.execute(
                    sa.update(r)
                    .where(r.c.id.in_(list(run_ids)), r.c.status == StepStatus.RUNNING)
                    .values(heartbeat_at=tx.now)
                )

    def forget_worker(self, worker_id: str) -> None:
        """A worker process stopped cleanly: its heartbeat record goes."""
        with self.transaction() as tx:
            tx.execute(sa.delete(t.workers).where(t.workers.c.id == worker_id))

    def forget_workers(self, seen_before: datetime) -> int:
        with self.transaction() as tx:
            result = tx.execute(sa.delete(t.workers).where(t.workers.c.last_seen < seen_before))
            return int(result.rowcount)

    def capacity(self, queue: str, seen_since: datetime) -> int:
        """How many steps of ``queue`` the worker processes that have beaten since
        ``seen_since`` can run at once."""
        w = t.workers
        with self.reading() as conn:
            rows = conn.execute(sa.select(w.c.queues, w.c.slots).where(w.c.last_seen >= seen_since))
            return sum(row.slots for row in rows if queue in (row.queues or ()))

    def workers(self) -> list[WorkerRecord]:
        with self.reading() as conn:
            rows = conn.execute(sa.select(t.workers).order_by(t.workers.c.id)).all()
        return [from_row(WorkerRecord, row) for row in rows]

    def known_agents(self, seen_since: datetime) -> set[str]:
        """Agents served by workers seen since ``seen_since``."""
        query = sa.select(t.workers.c.agents).where(t.workers.c.last_seen >= seen_since)
        with self.reading() as conn:
            return {agent for (agents,) in conn.execute(query) for agent in agents}

    def count_rows(
        self, tables: Sequence[str] = ("wfe_executions", "wfe_step_runs", "wfe_events")
    ) -> dict[str, int]:
        known = {table.name: table for table in t.metadata.sorted_tables}
        with self.reading() as conn:
            return {
                name: conn.execute(sa.select(sa.func.count()).select_from(known[name])).scalar_one()
                for name in tables
            }
