"""PostgreSQL statements for the hot path, written once and reused as is.

A step's outcome takes two statements inside one transaction: lock the execution and record
the outcome (:data:`FINISH`), then write every new run, the execution's row, the events and the
notification at once (:data:`SAVE`). Variable-length lists travel as one JSON document expanded
by ``jsonb_to_recordset``, so the text of each statement never changes: the server parses and
plans it once per session (:class:`Prepared`). The portable path in
:mod:`workflow_engine.store.transaction` does the same work in more statements on SQLite.

Hot-path statements are prepared once per PostgreSQL session, then executed by name. The
statements of a step's claim and outcome are long CTEs over a dozen columns; parsing and
planning them cost the server more than running them (``pg_stat_statements`` during a fan-out
of 200: 0.26–0.46 ms of planning per call against 0.24–0.36 ms of execution). Prepared, each is
parsed once per connection and runs on a cached plan.

A statement is prepared on a connection the first time it runs there, and the connection
remembers it (``Connection.info`` lives as long as the DBAPI connection; a prepared statement
outlives a rolled-back transaction). Sessions must therefore be the server's own: a pooler in
transaction mode, which hands each transaction to any server session, cannot carry them.
"""

from __future__ import annotations

import functools
import json
import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import fields
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from workflow_engine.core.states import (
    CLAIMABLE_STEP,
    TERMINAL_EXECUTION,
    ExecutionStatus,
    StepStatus,
    check_step_update,
    sql_literal,
)
from workflow_engine.definitions.model import WORKER_STEPS
from workflow_engine.store import schema as t
from workflow_engine.store.records import ExecutionRecord

# a `:name` bind parameter, as sqlalchemy.text reads them (not `::`, not `\:`)
_PARAMETER = re.compile(r"(?<![:\w\\]):(\w+)(?!:)")
_PREPARED = "wfe_prepared"  # key in Connection.info: names prepared on that connection


class Prepared:
    """``sql`` (with ``:name`` parameters, each typed in ``types``) as a prepared statement;
    run it with :meth:`execute`, optionally opening or committing the transaction in the same
    round trip. ``columns`` and ``column_types`` type its result as ``TextClause.columns`` does
    (by position, and by name)."""

    def __init__(
        self,
        name: str,
        sql: str,
        types: Mapping[str, str],
        columns: Sequence[Any] = (),
        column_types: Mapping[str, Any] | None = None,
    ) -> None:
        order: list[str] = []

        def number(match: re.Match[str]) -> str:
            parameter = match.group(1)
            if parameter not in order:
                order.append(parameter)
            return f"${order.index(parameter) + 1}"

        body = _PARAMETER.sub(number, sql)
        untyped = [p for p in order if p not in types]
        if untyped:
            raise ValueError(f"{name}: no type for {', '.join(untyped)}")
        self.name = name
        self.parameters = tuple(order)
        self.definition = f"PREPARE {name} ({', '.join(types[p] for p in order)}) AS {body}"
        call = f"EXECUTE {name}({', '.join(f':{p}' for p in order)})"
        self._statements = {
            (begin, commit): sa.text(
                ("BEGIN; " if begin else "") + call + ("; COMMIT" if commit else "")
            ).columns(*columns, **(column_types or {}))
            for begin in (False, True)
            for commit in (False, True)
        }

    def execute(
        self,
        connection: Connection,
        parameters: Mapping[str, Any],
        begin: bool = False,
        commit: bool = False,
    ) -> sa.CursorResult[Any]:
        prepared: set[str] = connection.info.setdefault(_PREPARED, set())
        if self.name not in prepared:
            connection.exec_driver_sql(self.definition)
            prepared.add(self.name)
        return connection.execute(self._statements[(begin, commit)], dict(parameters))


@functools.cache
def last_result_cursor() -> type:
    """psycopg 3's client-side binding cursor, positioned on the last result (as psycopg2's),
    which the statements here need (``BEGIN; EXECUTE ...; COMMIT`` answers with the EXECUTE's
    result); imported only by processes that use psycopg 3."""
    import psycopg

    class LastResultCursor(psycopg.ClientCursor):
        def execute(self, query: Any, params: Any = None, **options: Any) -> LastResultCursor:
            super().execute(query, params, **options)
            while self.nextset():
                pass
            return self

    return LastResultCursor


EXECUTION_FIELDS = tuple(f.name for f in fields(ExecutionRecord))
CHANNEL = "wfe_events"  # NOTIFY channel: "an execution has new events"
E, R, V, L = t.executions.name, t.step_runs.name, t.events.name, t.lineages.name
RUNNING, QUEUED = sql_literal(StepStatus.RUNNING), sql_literal(StepStatus.QUEUED)
EXECUTION_RUNNING = sql_literal(ExecutionStatus.RUNNING)

# lock the execution (on condition `locked_if`), then record the outcome on its running run if
# the CTE `gate` has a row; the run's values are named run_* as the execution's row has columns
# of the same names
LOCK = f"locked AS (SELECT * FROM {E} WHERE id = :execution_id {{locked_if}} FOR NO KEY UPDATE)"  # noqa: S608
RECORD = f"""
    finished AS (
        UPDATE {R} SET status = :run_status, finished_at = :run_finished_at,
            duration_ms = :run_duration_ms, output = CAST(:run_output AS jsonb),
            error_type = :run_error_type, error_message = :run_error_message,
            error_code = :run_error_code
        -- `status || ''` keeps the planner on the primary key (see store.claims)
        -- (a workflow step's run waits for its child with no worker: its child's end gives NULL)
        WHERE id = :run_id AND status || '' = {RUNNING} AND NOT superseded
          AND worker IS NOT DISTINCT FROM :worker
          AND EXISTS (SELECT 1 FROM {{gate}})
        RETURNING id
    )"""  # noqa: S608 - table names only; every value is a bound parameter
LOCK_AND_RECORD = f"{LOCK},{RECORD.format(gate='locked')}"
RECORD_TYPES = {
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
    WITH {LOCK_AND_RECORD.format(locked_if="")}
    SELECT {", ".join(f"locked.{c.name}" for c in t.executions.c)},
           (SELECT count(*) FROM finished) AS applied
    FROM locked
    """,  # noqa: S608 - table names only; every value is a bound parameter
    RECORD_TYPES,
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
    # an execution moved to another version of its workflow (decisions.control.migrate)
    "workflow_id": "integer",
    "workflow_version": "varchar",
    "total_steps": "integer",
}
_KEEP_UNLESS_SET = ",\n".join(
    f"{name} = CASE WHEN :set_{name} THEN CAST(:{name} AS {kind}) ELSE {name} END"
    for name, kind in _OPTIONAL.items()
)
EVENT_FIELDS = (
    "step_name text, attempt int, from_status text, to_status text, actor text, reason text, "
    "details jsonb, created_at timestamptz"
)
_RUN_FIELDS = (
    "id bigint, step_name text, step_type text, agent text, attempt int, status text, carried boolean, "
    "timeout float8, "
    "error_type text, error_message text, worker text, task_id text, input jsonb, "
    "queued_at timestamptz, not_before timestamptz, published_at timestamptz, "
    "started_at timestamptz, heartbeat_at timestamptz, finished_at timestamptz, "
    "item_index int, item jsonb, output jsonb, error_code text, duration_ms int, completed_by text"
)
_RUN_COLUMNS = [field.split()[0] for field in _RUN_FIELDS.split(", ")]
EVENT_COLUMNS = [field.split()[0] for field in EVENT_FIELDS.split(", ")]

# write the unit: the execution's row (whose revision the database moves on), the events, the
# new runs; each only `if_` a condition holds
_WRITE_EXECUTION = f"""
    saved_execution AS (
        UPDATE {E} SET status = :status, active_steps = :active_steps, waiting_steps = :waiting_steps,
            resolved_steps = :resolved_steps, retries = :retries, updated_at = :updated_at,
            {_KEEP_UNLESS_SET}
        WHERE id = :execution_id {{if_}}
    )"""  # noqa: S608 - table names only; every value is a bound parameter
_WRITE_HISTORY = f"""
    saved_events AS (
        INSERT INTO {V} (execution_id, {", ".join(EVENT_COLUMNS)})
        SELECT :execution_id, {", ".join(f"x.{c}" for c in EVENT_COLUMNS)}
        FROM jsonb_to_recordset(CAST(:events AS jsonb)) AS x({EVENT_FIELDS})
        WHERE true {{if_}}
    ),
    saved_runs AS (
        INSERT INTO {R} (execution_id, superseded, {", ".join(_RUN_COLUMNS)})
        SELECT :execution_id, false, {", ".join(f"x.{c}" for c in _RUN_COLUMNS)}
        FROM jsonb_to_recordset(CAST(:runs AS jsonb)) AS x({_RUN_FIELDS})
        WHERE true {{if_}}
    )"""  # noqa: S608 - table names only; every value is a bound parameter
_WRITE = f"{_WRITE_EXECUTION},{_WRITE_HISTORY}"
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
FINISH_OPTIMISTIC = Prepared(
    "wfe_finish_optimistic",
    f"""
    WITH {LOCK_AND_RECORD.format(locked_if="AND revision = :revision")},
    {_WRITE.format(if_=_APPLIED)}
    SELECT (SELECT count(*) FROM finished) AS applied,
           CASE WHEN :notify {_APPLIED} THEN pg_notify('{CHANNEL}', :execution_id) END AS notified
    """,  # noqa: S608 - table names only; every value is a bound parameter
    {**RECORD_TYPES, **_WRITE_TYPES, "revision": "integer"},
)


def as_json(value: Any) -> str | None:
    if value is None:
        return None
    return json.dumps(value, default=datetime.isoformat)  # (anything else: TypeError)


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


def record_parameters(
    execution_id: str, run_id: int, worker: str | None, values: Mapping[str, Any]
) -> dict[str, Any]:
    return {
        "execution_id": execution_id,
        "run_id": run_id,
        "worker": worker,
        "run_status": values["status"],
        "run_finished_at": values["finished_at"],
        "run_duration_ms": values.get("duration_ms"),
        "run_output": as_json(values.get("output")),
        "run_error_type": values.get("error_type"),
        "run_error_message": values.get("error_message"),
        "run_error_code": values.get("error_code"),
    }


def write_parameters(
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
        **_history_parameters(runs, events, ids),
    }
    for name, kind in _OPTIONAL.items():
        parameters[f"set_{name}"] = name in values
        value = values.get(name)
        parameters[name] = as_json(value) if kind == "jsonb" else value
    return parameters


def _history_parameters(
    runs: Sequence[Mapping[str, Any]], events: Sequence[Mapping[str, Any]], ids: Sequence[int]
) -> dict[str, Any]:
    """The new runs (under ``ids``) and the events of a unit, as its statement takes them."""
    event_rows, run_rows = [], []  # (loops, not comprehensions: this runs for every outcome)
    for e in events:
        event_rows.append(dict(zip(EVENT_COLUMNS, map(e.get, EVENT_COLUMNS), strict=True)))
    for r, run_id in zip(runs, ids, strict=True):
        row = dict(zip(_RUN_COLUMNS, map(r.get, _RUN_COLUMNS), strict=True))
        row["id"] = run_id
        run_rows.append(row)
    return {
        "events": json.dumps(event_rows, default=datetime.isoformat),
        "runs": json.dumps(run_rows, default=datetime.isoformat),
        "notify": bool(events),
    }


def finish_optimistic(
    connection: Connection,
    execution_id: str,
    revision: int,
    run_id: int,
    worker: str | None,
    attempt: Mapping[str, Any],
    write: tuple[Mapping[str, Any], Sequence[Mapping[str, Any]], Sequence[Mapping[str, Any]], Sequence[int]],
) -> bool:
    """Record an attempt's outcome and write the unit planned for it, in one statement (on an
    autocommitting connection: one transaction, one round trip), if the execution's row is
    still at ``revision``: whether it was done (if not, nothing was written)."""
    values, runs, events, ids = write
    recorded = record_parameters(execution_id, run_id, worker, attempt)
    written = write_parameters(execution_id, values, runs, events, ids)
    assert recorded.keys() & written.keys() == {"execution_id"}, "one name, one value"
    parameters = {**recorded, **written, "revision": revision}
    row = FINISH_OPTIMISTIC.execute(connection, parameters).first()
    return row is not None and bool(row.applied)


# an execution started in one statement: its row inserted as its first decision leaves it, with
# that decision's runs and events, once (a conflict on its id or idempotency key inserts
# nothing); a child only while its parent's run still waits for it, the parent runs (not
# paused, not ended) and its tree may start one more child (core.descendants.may_start, applied
# to its count under the count's row lock, and the count moved on with the insert; a tree with
# no count yet is started on the transaction path, which gives it one)
def _column_type(column: sa.Column[Any]) -> str:
    if isinstance(column.type, sa.JSON):
        return "text"  # (as JSON text, cast below)
    if isinstance(column.type, (sa.DateTime, t.UTCDateTime)):
        return "timestamptz"
    if isinstance(column.type, sa.Integer):
        return "integer"
    if isinstance(column.type, sa.String):
        return "varchar"
    raise TypeError(f"{column.name}: no parameter type for {column.type!r}")


_EXECUTION_TYPES = {f"x_{c.name}": _column_type(c) for c in t.executions.c}
_STARTED = "AND EXISTS (SELECT 1 FROM started)"
_WAITS = f"""
        WHERE EXISTS (
            SELECT 1 FROM {R} WHERE id = :run_id AND status || '' = {RUNNING} AND NOT superseded
        ) AND EXISTS (
            -- (shared: a verb deciding on the parent meanwhile is waited for, then seen)
            SELECT 1 FROM {E} WHERE id = :x_parent_execution_id AND status = {EXECUTION_RUNNING}
            FOR SHARE
        ) AND EXISTS (
            SELECT 1 FROM {L} WHERE root_execution_id = (SELECT id FROM tree WHERE parent IS NULL)
              AND started < room
            FOR UPDATE
        )"""  # noqa: S608 - table names only; every value is a bound parameter
# the parent and its ancestors, up to the top-level execution whose tree the child joins
_TREE = f"""RECURSIVE tree(id, parent, hops) AS (
            SELECT id, parent_execution_id, 0 FROM {E} WHERE id = :x_parent_execution_id
            UNION ALL
            SELECT e.id, e.parent_execution_id, tree.hops + 1 FROM {E} e
            JOIN tree ON e.id = tree.parent WHERE tree.hops < 64
        ),
        """  # noqa: S608 - table names only; every value is a bound parameter
_COUNTED = f""",
        counted AS (
            UPDATE {L} SET started = started + 1
            WHERE root_execution_id = (SELECT id FROM tree WHERE parent IS NULL)
              AND EXISTS (SELECT 1 FROM started)
        )"""  # noqa: S608 - table names only; every value is a bound parameter


def _start(name: str, guard: str, before: str = "", after: str = "") -> Prepared:
    values = ", ".join(
        f"CAST(:x_{c.name} AS jsonb)" if isinstance(c.type, sa.JSON) else f":x_{c.name}"
        for c in t.executions.c
    )
    types = {**_EXECUTION_TYPES, **_WRITE_TYPES, **({"run_id": "bigint"} if guard else {})}
    return Prepared(
        name,
        f"""
        WITH {before}started AS (
            INSERT INTO {E} ({", ".join(c.name for c in t.executions.c)})
            SELECT {values}
            {guard}
            ON CONFLICT DO NOTHING
            RETURNING id
        ),
        {_WRITE_HISTORY.format(if_=_STARTED)}{after}
        SELECT (SELECT count(*) FROM started) AS applied,
               CASE WHEN :notify {_STARTED} THEN pg_notify('{CHANNEL}', :execution_id) END AS notified
        """,  # noqa: S608 - table names only; every value is a bound parameter
        types,
    )


START = _start("wfe_start", "")
START_CHILD = _start("wfe_start_child", _WAITS, _TREE, _COUNTED)


def start(
    connection: Connection,
    values: Mapping[str, Any],
    changes: Mapping[str, Any],
    runs: Sequence[Mapping[str, Any]],
    events: Sequence[Mapping[str, Any]],
    ids: Sequence[int],
    waits: int | None = None,
    begin: bool = False,
    commit: bool = False,
) -> bool:
    """Insert the new execution ``values`` (every column) as its first decision leaves it (with
    its ``changes`` to the row, as if inserted then saved: the revision moves on if there are
    any) with that decision's new runs and events, in one statement (a child, if its parent's run ``waits``
    still waits for it and the parent runs), opening or committing the transaction in the same
    round trip when asked: whether it was started (if not, nothing was written). A committing
    start is taken as started: only one that nothing can conflict with (a fresh id and no
    idempotency key, no guard) may commit."""
    row = {**values, **changes, "revision": values["revision"] + bool(changes)}
    parameters: dict[str, Any] = {
        f"x_{c.name}": as_json(row[c.name]) if isinstance(c.type, sa.JSON) else row[c.name]
        for c in t.executions.c
    }
    parameters.update(execution_id=row["id"], **_history_parameters(runs, events, ids))
    statement = START
    if waits is not None:
        statement, parameters["run_id"] = START_CHILD, waits
    result = statement.execute(connection, parameters, begin=begin, commit=commit)
    if commit:
        return True  # (its result is COMMIT's: asked only of a start that nothing can conflict with)
    found = result.first()
    return found is not None and bool(found.applied)


# claiming an attempt: one statement, committed on its own without waiting for the disk (see
# store.claims)

CLAIM = Prepared(
    "wfe_claim",
    f"""
    WITH claimed AS (
        UPDATE {t.step_runs.name} AS r
        SET status = :running, started_at = :now, heartbeat_at = :now, worker = :worker, task_id = :task_id,
            carried = false,
            deadline_at = CASE WHEN r.timeout IS NULL THEN NULL
                               ELSE CAST(:now AS timestamptz) + r.timeout * interval '1 second' END
        FROM {t.step_runs.name} AS previous, {t.executions.name} AS e
        WHERE r.id = :run_id AND previous.id = r.id AND e.id = r.execution_id
          AND r.status || '' = ANY(:claimable) AND NOT r.superseded
          AND r.step_type IN ({", ".join(sorted(map(sql_literal, WORKER_STEPS)))})
          AND e.status <> ALL(:terminal)
        RETURNING r.id, r.execution_id, r.step_name, r.attempt, r.queued_at, r.not_before,
                  previous.status AS previous_status, e.workflow_id, e.workflow_name,
                  e.workflow_version, e.metadata AS execution_metadata, e.retries, r.item_index, r.item,
                  COALESCE(r.input, e.input) AS execution_input
    ), recorded AS (
        INSERT INTO {t.events.name}
            (execution_id, step_name, attempt, from_status, to_status, actor, details, created_at)
        SELECT execution_id, step_name, attempt, previous_status, :running, :worker,
               CASE WHEN item_index IS NULL THEN NULL ELSE jsonb_build_object('index', item_index) END,
               :now
        FROM claimed
    )
    SELECT claimed.*, pg_notify('{CHANNEL}', claimed.execution_id) AS notified FROM claimed
    """,  # noqa: S608 - table names only; every value is a bound parameter
    {
        "running": "varchar",
        "now": "timestamptz",
        "worker": "varchar",
        "task_id": "varchar",
        "run_id": "bigint",
        "claimable": "text[]",
        "terminal": "text[]",
    },
    column_types={"queued_at": t.UTCDateTime(), "not_before": t.UTCDateTime()},
)


check_step_update(CLAIMABLE_STEP, StepStatus.RUNNING)  # the transition CLAIM writes
# CLAIM's parameters that are the same for every claim
CLAIM_STATES: dict[str, Any] = {
    "running": StepStatus.RUNNING.value,
    "claimable": sorted(CLAIMABLE_STEP),
    "terminal": sorted(TERMINAL_EXECUTION),
}
