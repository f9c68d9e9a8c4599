"""PostgreSQL statements for the hot path, written once and reused as is.

A step's outcome takes two statements inside one transaction: lock the execution and record
the outcome (:data:`FINISH`), then write every new run, the execution's row, the events and the
notification at once (:data:`SAVE`). Variable-length lists travel as one JSON document expanded
by ``jsonb_to_recordset``, so the text of each statement never changes: the server parses and
plans it once per session (:mod:`workflow_engine.store.prepared`). The portable path in
:mod:`workflow_engine.store.transaction` does the same work in more statements on SQLite.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from workflow_engine.core.counting import COUNTING
from workflow_engine.core.mapping import ITEM_COUNTING
from workflow_engine.core.states import StepStatus, sql_literal
from workflow_engine.store import schema as t
from workflow_engine.store.prepared import Prepared
from workflow_engine.store.records import ExecutionRecord, from_row

CHANNEL = "wfe_events"  # NOTIFY channel: "an execution has new events"
E, R, V = t.executions.name, t.step_runs.name, t.events.name
RUNNING, QUEUED = sql_literal(StepStatus.RUNNING), sql_literal(StepStatus.QUEUED)

# lock the execution (on condition `locked_if`), then record the outcome on its running run if
# the CTE `gate` has a row; the run's values are named run_* as the execution's row has columns
# of the same names
_LOCK = f"locked AS (SELECT * FROM {E} WHERE id = :execution_id {{locked_if}} FOR NO KEY UPDATE)"  # noqa: S608
_RECORD = f"""
    finished AS (
        UPDATE {R} SET status = :run_status, finished_at = :run_finished_at,
            duration_ms = :run_duration_ms, output = CAST(:run_output AS jsonb),
            error_type = :run_error_type, error_message = :run_error_message,
            error_code = :run_error_code
        -- `status || ''` keeps the planner on the primary key (see store.claims)
        WHERE id = :run_id AND status || '' = {RUNNING} AND NOT superseded AND worker = :worker
          AND EXISTS (SELECT 1 FROM {{gate}})
        RETURNING id
    )"""  # noqa: S608 - table names only; every value is a bound parameter
_LOCK_AND_RECORD = f"{_LOCK},{_RECORD.format(gate='locked')}"
_RECORD_TYPES = {
    "execution_id": "varchar",
    "run_id": "bigint",
    "worker": "varchar",
    "run_status": "varchar",
    "run_finished_at": "timestamptz",
    "run_duration_ms": "integer",
    "run_output": "text",
    "run_error_type": "varchar",
    "run_error_message": "text",
    "run_error_code": "varchar",
}
FINISH = Prepared(
    "wfe_finish",
    f"""
    WITH {_LOCK_AND_RECORD.format(locked_if="")}
    SELECT {", ".join(f"locked.{c.name}" for c in t.executions.c)},
           (SELECT count(*) FROM finished) AS applied
    FROM locked
    """,  # noqa: S608 - table names only; every value is a bound parameter
    _RECORD_TYPES,
    columns=(*t.executions.c, sa.column("applied", sa.Integer)),
)

# optional columns of the execution's row are kept unless the unit changed them
_OPTIONAL = {
    "started_at": "timestamptz",
    "finished_at": "timestamptz",
    "output": "jsonb",
    "error": "jsonb",
    "checkpoint": "jsonb",
    "barriers": "jsonb",
    "maps": "jsonb",
}
_KEEP_UNLESS_SET = ",\n".join(
    f"{name} = CASE WHEN :set_{name} THEN CAST(:{name} AS {kind}) ELSE {name} END"
    for name, kind in _OPTIONAL.items()
)
_EVENT_FIELDS = (
    "step_name text, attempt int, from_status text, to_status text, actor text, reason text, "
    "details jsonb, created_at timestamptz"
)
_RUN_FIELDS = (
    "id bigint, step_name text, step_type text, agent text, attempt int, status text, carried boolean, "
    "timeout float8, "
    "error_type text, error_message text, worker text, task_id text, input jsonb, "
    "queued_at timestamptz, not_before timestamptz, published_at timestamptz, "
    "started_at timestamptz, heartbeat_at timestamptz, finished_at timestamptz, "
    "item_index int, item jsonb, output jsonb, error_code text, duration_ms int"
)
_RUN_COLUMNS = [field.split()[0] for field in _RUN_FIELDS.split(", ")]
_EVENT_COLUMNS = [field.split()[0] for field in _EVENT_FIELDS.split(", ")]

# write the unit: the execution's row (whose revision the database moves on), the events, the
# new runs; each only `if_` a condition holds
_WRITE = f"""
    saved_execution AS (
        UPDATE {E} SET status = :status, active_steps = :active_steps, waiting_steps = :waiting_steps,
            resolved_steps = :resolved_steps, retries = :retries, updated_at = :updated_at,
            {_KEEP_UNLESS_SET}
        WHERE id = :execution_id {{if_}}
    ),
    saved_events AS (
        INSERT INTO {V} (execution_id, {", ".join(_EVENT_COLUMNS)})
        SELECT :execution_id, {", ".join(f"x.{c}" for c in _EVENT_COLUMNS)}
        FROM jsonb_to_recordset(CAST(:events AS jsonb)) AS x({_EVENT_FIELDS})
        WHERE true {{if_}}
    ),
    saved_runs AS (
        INSERT INTO {R} (execution_id, superseded, {", ".join(_RUN_COLUMNS)})
        SELECT :execution_id, false, {", ".join(f"x.{c}" for c in _RUN_COLUMNS)}
        FROM jsonb_to_recordset(CAST(:runs AS jsonb)) AS x({_RUN_FIELDS})
        WHERE true {{if_}}
    )"""  # noqa: S608 - table names only; every value is a bound parameter
_WRITE_TYPES = {
    "execution_id": "varchar",
    "status": "varchar",
    "active_steps": "integer",
    "waiting_steps": "integer",
    "resolved_steps": "integer",
    "retries": "integer",
    "updated_at": "timestamptz",
    **{f"set_{name}": "boolean" for name in _OPTIONAL},
    **{name: "text" if kind == "jsonb" else kind for name, kind in _OPTIONAL.items()},
    "events": "text",
    "runs": "text",
    "notify": "boolean",
}
SAVE = Prepared(
    "wfe_save",
    f"""
    WITH {_WRITE.format(if_="")}
    SELECT CASE WHEN :notify THEN pg_notify('{CHANNEL}', :execution_id) END AS notified
    """,
    _WRITE_TYPES,
)

# a planned outcome: everything above in one statement, done only if the execution's row is at
# the revision the plan was made against and the run is still running for the worker
_APPLIED = "AND EXISTS (SELECT 1 FROM finished)"
FINISH_PLANNED = Prepared(
    "wfe_finish_planned",
    f"""
    WITH {_LOCK_AND_RECORD.format(locked_if="AND revision = :revision")},
    {_WRITE.format(if_=_APPLIED)}
    SELECT (SELECT count(*) FROM finished) AS applied,
           CASE WHEN :notify {_APPLIED} THEN pg_notify('{CHANNEL}', :execution_id) END AS notified
    """,  # noqa: S608 - table names only; every value is a bound parameter
    {**_RECORD_TYPES, **_WRITE_TYPES, "revision": "integer"},
)


# a map item's events say which item: {"index": ...}
_ITEM_DETAILS = (
    "CASE WHEN {run}.item_index IS NULL THEN NULL ELSE jsonb_build_object('index', {run}.item_index) END"
)

# once the outcome is recorded, take the oldest carried run of the execution (that no other
# taker has locked): to run in place for the worker (`take` = 'run'), or to publish ('send')
_IN_PLACE = "{column} = CASE WHEN :take = 'run' THEN {run} ELSE x.{column} END"
_TAKE_CARRIED = f"""
    next_carried AS (
        SELECT id FROM {R}
        WHERE execution_id = :execution_id AND carried AND status = {QUEUED}
          AND :take <> 'none' AND EXISTS (SELECT 1 FROM finished)
        ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED
    ),
    taken AS (
        UPDATE {R} AS x SET carried = false,
            {_IN_PLACE.format(column="status", run=RUNNING)},
            {_IN_PLACE.format(column="worker", run=":worker")},
            {_IN_PLACE.format(column="task_id", run=":task_id")},
            {_IN_PLACE.format(column="input", run="COALESCE(x.input, (SELECT input FROM locked))")},
            {_IN_PLACE.format(column="started_at", run=":updated_at")},
            {_IN_PLACE.format(column="heartbeat_at", run=":updated_at")},
            published_at = CASE WHEN :take = 'run' THEN NULL ELSE :updated_at END
        FROM next_carried WHERE x.id = next_carried.id
        RETURNING x.id, x.step_name, x.attempt, x.queued_at, x.input, x.item_index, x.item
    ),
    taken_event AS (
        INSERT INTO {V} (execution_id, step_name, attempt, from_status, to_status, actor, reason,
                         details, created_at)
        SELECT :execution_id, taken.step_name, taken.attempt, {QUEUED}, {RUNNING}, :worker,
               :in_place_reason, {_ITEM_DETAILS.format(run="taken")}, :updated_at
        FROM taken WHERE :take = 'run'
    )"""  # noqa: S608 - table names only; every value is a bound parameter
_TAKE_TYPES = {"take": "text", "task_id": "varchar", "in_place_reason": "text"}
_TAKEN = """taken.id AS taken_id, taken.step_name AS taken_step, taken.attempt AS taken_attempt,
           taken.queued_at AS taken_queued_at, taken.input AS taken_input,
           taken.item_index AS taken_index, taken.item AS taken_item"""

# a counted outcome: a success that only counts toward joins still waiting for other steps; the
# counters and the joins' barriers move on from the locked row as it is, so outcomes of sibling
# steps never refuse each other. Done only if core.counting's guard holds on that row (its
# values are the statement's `guard_*` parameters); otherwise nothing is written.
_JOINS = "jsonb_to_recordset(CAST(:joins AS jsonb)) AS j(name text, degree int)"
_WAITING_FOR = "COALESCE(CAST(locked.barriers -> j.name ->> 0 AS int), j.degree)"
_LIVE_SO_FAR = "COALESCE(CAST(locked.barriers -> j.name ->> 1 AS int), 0)"
# what follows a counted outcome (of a step or of a map item): its event, a carried sibling taken
_COUNTED_TAIL = f"""saved_events AS (
        INSERT INTO {V} (execution_id, {", ".join(_EVENT_COLUMNS)})
        SELECT :execution_id, {", ".join(f"x.{c}" for c in _EVENT_COLUMNS)}
        FROM jsonb_to_recordset(CAST(:events AS jsonb)) AS x({_EVENT_FIELDS})
        WHERE EXISTS (SELECT 1 FROM finished)
    ),
    {_TAKE_CARRIED}
    SELECT (SELECT count(*) FROM finished) AS applied,
           CASE WHEN EXISTS (SELECT 1 FROM finished) THEN pg_notify('{CHANNEL}', :execution_id) END
               AS notified,
           {_TAKEN}
    FROM (SELECT 1) AS one LEFT JOIN taken ON true"""  # noqa: S608 - table names only

FINISH_COUNTED = Prepared(
    "wfe_finish_counted",
    f"""
    WITH {_LOCK.format(locked_if="")},
    countable AS (
        SELECT locked.id FROM locked
        WHERE locked.status = :guard_status AND locked.mode = :guard_mode
          AND locked.active_steps - 1 >= :guard_others_active
          AND locked.total_steps - locked.resolved_steps - 1 >= :guard_left_after
          AND NOT EXISTS (SELECT 1 FROM {_JOINS} WHERE {_WAITING_FOR} - 1 < :guard_waiting_after)
    ),
    {_RECORD.format(gate="countable")},
    counted AS (
        UPDATE {E} AS x SET active_steps = locked.active_steps - 1,
            resolved_steps = locked.resolved_steps + 1,
            checkpoint = CAST(:checkpoint AS jsonb), updated_at = :updated_at,
            barriers = COALESCE(locked.barriers, '{{}}') || COALESCE((
                SELECT jsonb_object_agg(j.name, jsonb_build_array({_WAITING_FOR} - 1, {_LIVE_SO_FAR} + 1))
                FROM {_JOINS}), '{{}}')
        FROM locked
        WHERE x.id = locked.id AND EXISTS (SELECT 1 FROM finished)
    ),
    {_COUNTED_TAIL}
    """,  # noqa: S608 - table names only; every value is a bound parameter
    {
        **_RECORD_TYPES,
        "joins": "text",
        "guard_status": "varchar",
        "guard_mode": "varchar",
        "guard_others_active": "integer",
        "guard_left_after": "integer",
        "guard_waiting_after": "integer",
        "checkpoint": "text",
        "updated_at": "timestamptz",
        "events": "text",
        **_TAKE_TYPES,
    },
    column_types={"taken_queued_at": t.step_runs.c.queued_at.type},
)


# a counted item: a map item's success that only counts (core.mapping's ITEM_COUNTING holds on
# the locked row; its values are the `guard_*` parameters): its run recorded, the map's counts
# moved on in the execution's row, its event written; otherwise nothing is written
_COUNTS = "locked.maps -> :step"
_COUNT = "CAST({counts} ->> '{name}' AS int)"
_S, _F, _N, _T, _C = (
    _COUNT.format(counts=_COUNTS, name=n) for n in ("succeeded", "failed", "running", "total", "cancelled")
)
FINISH_ITEM_COUNTED = Prepared(
    "wfe_finish_item_counted",
    f"""
    WITH {_LOCK.format(locked_if="")},
    countable AS (
        SELECT locked.id FROM locked
        WHERE locked.status = :guard_status AND {_COUNTS} IS NOT NULL
          AND {_T} - {_S} - {_F} - COALESCE({_C}, 0) - {_N} = :guard_pending
          AND {_T} - {_S} - {_F} - 1 >= :guard_left_after
    ),
    {_RECORD.format(gate="countable")},
    counted AS (
        UPDATE {E} AS x SET updated_at = :updated_at,
            maps = jsonb_set(locked.maps, ARRAY[:step], {_COUNTS} || jsonb_build_object(
                CAST(:succeeded_key AS text), {_S} + 1, CAST(:running_key AS text), {_N} - 1))
        FROM locked
        WHERE x.id = locked.id AND EXISTS (SELECT 1 FROM finished)
    ),
    {_COUNTED_TAIL}
    """,  # noqa: S608 - table names only; every value is a bound parameter
    {
        **_RECORD_TYPES,
        **_TAKE_TYPES,
        "step": "text",
        "succeeded_key": "text",
        "running_key": "text",
        "guard_status": "varchar",
        "guard_pending": "integer",
        "guard_left_after": "integer",
        "updated_at": "timestamptz",
        "events": "text",
    },
    column_types={"taken_queued_at": t.step_runs.c.queued_at.type},
)


def finish_item_counted(
    connection: Connection, counted: Counted, step: str, take: Take
) -> tuple[bool, tuple[int, dict[str, Any]] | None]:
    """Record a map item's success that only counts (``counted.joins`` unused) in one statement
    on an autocommitting connection, then take a carried run as ``take`` says: whether it was
    done (if not, nothing was written), and the run taken."""
    execution_id, attempt, event = counted.execution_id, counted.attempt, counted.event
    parameters = {
        **_record_parameters(execution_id, counted.run_id, counted.worker, attempt),
        "step": step,
        "succeeded_key": "succeeded",  # the keys of core.mapping's counts
        "running_key": "running",
        **{f"guard_{f.name}": getattr(ITEM_COUNTING, f.name) for f in fields(ITEM_COUNTING)},
        "updated_at": attempt["finished_at"],
        "events": json.dumps([{c: event.get(c) for c in _EVENT_COLUMNS}], default=_encode),
        **_take_parameters(take),
    }
    row = FINISH_ITEM_COUNTED.execute(connection, parameters).first()
    if row is None or not row.applied:
        return False, None
    return True, _taken(row)


def _json(value: Any) -> str | None:
    if value is None:
        return None
    return json.dumps(value, default=_encode)


def _encode(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


class RunIds:
    """Ids for new step runs, taken from the table's sequence a block at a time: a unit knows
    the ids of the runs it writes without reading them back, so its last statement can carry
    the COMMIT."""

    def __init__(self, block: int = 256) -> None:
        self.block = block
        self._free: list[int] = []
        self._lock = threading.Lock()
        self._sequence: str | None = None

    def take(self, connection: Connection, count: int) -> list[int]:
        with self._lock:
            if len(self._free) < count:
                if self._sequence is None:
                    self._sequence = connection.execute(
                        sa.text("SELECT pg_get_serial_sequence(:table, 'id')"), {"table": R}
                    ).scalar_one()
                wanted = max(self.block, count)
                fresh = connection.execute(
                    sa.text("SELECT nextval(CAST(:sequence AS regclass)) FROM generate_series(1, :n)"),
                    {"sequence": self._sequence, "n": wanted},
                ).scalars()
                self._free.extend(fresh)
            taken, self._free = self._free[:count], self._free[count:]
            return taken


def _record_parameters(
    execution_id: str, run_id: int, worker: str, values: Mapping[str, Any]
) -> dict[str, Any]:
    return {
        "execution_id": execution_id,
        "run_id": run_id,
        "worker": worker,
        "run_status": values["status"],
        "run_finished_at": values["finished_at"],
        "run_duration_ms": values["duration_ms"],
        "run_output": _json(values.get("output")),
        "run_error_type": values.get("error_type"),
        "run_error_message": values.get("error_message"),
        "run_error_code": values.get("error_code"),
    }


def _write_parameters(
    execution_id: str,
    values: Mapping[str, Any],
    runs: Sequence[Mapping[str, Any]],
    events: Sequence[Mapping[str, Any]],
    ids: Sequence[int],
) -> dict[str, Any]:
    parameters: dict[str, Any] = {
        "execution_id": execution_id,
        "status": values["status"],
        "active_steps": values["active_steps"],
        "waiting_steps": values["waiting_steps"],
        "resolved_steps": values["resolved_steps"],
        "retries": values["retries"],
        "updated_at": values["updated_at"],
        "events": json.dumps([{c: e.get(c) for c in _EVENT_COLUMNS} for e in events], default=_encode),
        "runs": json.dumps(
            [
                {**{c: r.get(c) for c in _RUN_COLUMNS}, "id": run_id}
                for r, run_id in zip(runs, ids, strict=True)
            ],
            default=_encode,
        ),
        "notify": bool(events),
    }
    for name, kind in _OPTIONAL.items():
        parameters[f"set_{name}"] = name in values
        value = values.get(name)
        parameters[name] = _json(value) if kind == "jsonb" else value
    return parameters


def finish(
    connection: Connection,
    execution_id: str,
    run_id: int,
    worker: str,
    values: Mapping[str, Any],
    begin: bool = False,
) -> tuple[ExecutionRecord | None, bool]:
    """Lock the execution and record an attempt's outcome on its running run (opening the
    transaction in the same round trip when ``begin``)."""
    parameters = _record_parameters(execution_id, run_id, worker, values)
    row = FINISH.execute(connection, parameters, begin=begin).first()
    if row is None:
        return None, False
    return from_row(ExecutionRecord, row), bool(row.applied)


def save(
    connection: Connection,
    execution_id: str,
    values: Mapping[str, Any],
    runs: Sequence[Mapping[str, Any]],
    events: Sequence[Mapping[str, Any]],
    ids: Sequence[int],
    commit: bool = False,
) -> None:
    """Write a unit of work in one statement (committing in the same round trip when
    ``commit``); the runs are given their ``ids``."""
    parameters = _write_parameters(execution_id, values, runs, events, ids)
    SAVE.execute(connection, parameters, commit=commit)


def finish_planned(
    connection: Connection,
    execution_id: str,
    revision: int,
    run_id: int,
    worker: str,
    attempt: Mapping[str, Any],
    write: tuple[Mapping[str, Any], Sequence[Mapping[str, Any]], Sequence[Mapping[str, Any]], Sequence[int]],
) -> bool:
    """Record an attempt's outcome and write the unit planned for it, in one statement (on an
    autocommitting connection: one transaction, one round trip), if the execution's row is
    still at ``revision``: whether it was done (if not, nothing was written)."""
    values, runs, events, ids = write
    recorded = _record_parameters(execution_id, run_id, worker, attempt)
    written = _write_parameters(execution_id, values, runs, events, ids)
    assert recorded.keys() & written.keys() == {"execution_id"}, "one name, one value"
    parameters = {**recorded, **written, "revision": revision}
    row = FINISH_PLANNED.execute(connection, parameters).first()
    return row is not None and bool(row.applied)


@dataclass(frozen=True, slots=True)
class Take:
    """What to do with a carried run once an outcome is recorded: ``how`` is "run" (in place,
    by the worker that reported), "send" (published) or "none"."""

    how: str = "none"
    task_id: str | None = None
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class Counted:
    """A success that only counts toward ``joins`` (name: in-degree): the attempt's values for
    its run, the execution's new checkpoint, and the run's event."""

    execution_id: str
    run_id: int
    worker: str
    attempt: Mapping[str, Any]
    joins: Mapping[str, int]
    checkpoint: Any
    event: Mapping[str, Any]


def finish_counted(
    connection: Connection, counted: Counted, take: Take
) -> tuple[bool, tuple[int, dict[str, Any]] | None]:
    """Record ``counted`` in one statement on an autocommitting connection, if none of its
    joins becomes due by it, then take a carried run as ``take`` says. Whether it was done (if
    not, nothing was written), and the run taken."""
    execution_id, attempt, event = counted.execution_id, counted.attempt, counted.event
    parameters = {
        **_record_parameters(execution_id, counted.run_id, counted.worker, attempt),
        "joins": json.dumps([{"name": name, "degree": degree} for name, degree in counted.joins.items()]),
        **{f"guard_{f.name}": getattr(COUNTING, f.name) for f in fields(COUNTING)},
        "checkpoint": _json(counted.checkpoint),
        "updated_at": attempt["finished_at"],
        "events": json.dumps([{c: event.get(c) for c in _EVENT_COLUMNS}], default=_encode),
        **_take_parameters(take),
    }
    row = FINISH_COUNTED.execute(connection, parameters).first()
    if row is None or not row.applied:
        return False, None
    return True, _taken(row)


def _take_parameters(take: Take) -> dict[str, Any]:
    return {"take": take.how, "task_id": take.task_id, "in_place_reason": take.reason}


def _taken(row: Any) -> tuple[int, dict[str, Any]] | None:
    """The run a statement took (id and row), if any."""
    if row.taken_id is None:
        return None
    return row.taken_id, {
        "step_name": row.taken_step,
        "attempt": row.taken_attempt,
        "queued_at": row.taken_queued_at,
        "input": row.taken_input,
        "item_index": row.taken_index,
        "item": row.taken_item,
    }
