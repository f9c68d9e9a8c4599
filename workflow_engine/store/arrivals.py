"""PostgreSQL statements of arrivals: outcomes that only count, in one statement each.

A barrier arrival, a success that only counts toward joins (:data:`RECORD_ARRIVAL`, guarded by
:data:`~workflow_engine.core.arrivals.ARRIVAL`) and an item arrival, a map item's success
that only counts (:data:`RECORD_ITEM_ARRIVAL`, guarded by :data:`~workflow_engine.core.mapping.ITEM_ARRIVAL`)
move the execution's counters on from its locked row as it is, so siblings finishing together
never refuse each other; each then takes a carried sibling (:data:`_TAKE_CARRIED`).
"""

from __future__ import annotations

import json
from dataclasses import fields
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Connection

from workflow_engine.core.arrivals import ARRIVAL
from workflow_engine.core.mapping import ITEM_ARRIVAL
from workflow_engine.store import schema as t
from workflow_engine.store.postgres import (
    CHANNEL,
    EVENT_COLUMNS,
    EVENT_FIELDS,
    LOCK,
    QUEUED,
    RECORD,
    RECORD_TYPES,
    RUNNING,
    E,
    Prepared,
    R,
    V,
    as_json,
    record_parameters,
)
from workflow_engine.store.seam import Arrival, ArrivalAnswer, Arrived, GuardFailed, Take

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
            {_IN_PLACE.format(column="started_at", run=":updated_at")},
            {_IN_PLACE.format(column="heartbeat_at", run=":updated_at")},
            published_at = CASE WHEN :take = 'run' THEN NULL ELSE :updated_at END
        FROM next_carried WHERE x.id = next_carried.id
        RETURNING x.id, x.step_name, x.attempt, x.queued_at, x.item_index, x.item,
            COALESCE(x.input, (SELECT input FROM locked)) AS input
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

# an arrival: a success that only counts toward joins still waiting for other steps; the
# counters and the joins' barriers move on from the locked row as it is, so outcomes of sibling
# steps never refuse each other. Done only if core.arrivals's guard holds on that row (its
# values are the statement's `guard_*` parameters); otherwise nothing is written.
_JOINS = "jsonb_to_recordset(CAST(:joins AS jsonb)) AS j(name text, degree int)"
_WAITING_FOR = "COALESCE(CAST(locked.barriers -> j.name ->> 0 AS int), j.degree)"
_LIVE_SO_FAR = "COALESCE(CAST(locked.barriers -> j.name ->> 1 AS int), 0)"
# what follows an arrival (of a step or of a map item): its event, a carried sibling taken
_COUNTED_TAIL = f"""saved_events AS (
        INSERT INTO {V} (execution_id, {", ".join(EVENT_COLUMNS)})
        SELECT :execution_id, {", ".join(f"x.{c}" for c in EVENT_COLUMNS)}
        FROM jsonb_to_recordset(CAST(:events AS jsonb)) AS x({EVENT_FIELDS})
        WHERE EXISTS (SELECT 1 FROM finished)
    ),
    {_TAKE_CARRIED}
    SELECT (SELECT count(*) FROM finished) AS applied,
           CASE WHEN EXISTS (SELECT 1 FROM finished) THEN pg_notify('{CHANNEL}', :execution_id) END
               AS notified,
           {_TAKEN}
    FROM (SELECT 1) AS one LEFT JOIN taken ON true"""  # noqa: S608 - table names only

RECORD_ARRIVAL = Prepared(
    "wfe_record_arrival",
    f"""
    WITH {LOCK.format(locked_if="")},
    countable AS (
        SELECT locked.id FROM locked
        WHERE locked.status = :guard_status AND locked.mode = :guard_mode
          AND locked.active_steps + :guard_active_delta >= :guard_others_active
          AND locked.total_steps - (locked.resolved_steps + :guard_resolved_delta) >= :guard_left_after
          AND NOT EXISTS (
              SELECT 1 FROM {_JOINS} WHERE {_WAITING_FOR} + :guard_waiting_delta < :guard_waiting_after
          )
    ),
    {RECORD.format(gate="countable")},
    counted AS (
        UPDATE {E} AS x SET active_steps = locked.active_steps + :guard_active_delta,
            resolved_steps = locked.resolved_steps + :guard_resolved_delta,
            checkpoint = CAST(:checkpoint AS jsonb), updated_at = :updated_at,
            barriers = COALESCE(locked.barriers, '{{}}') || COALESCE((
                SELECT jsonb_object_agg(j.name, jsonb_build_array(
                    {_WAITING_FOR} + :guard_waiting_delta, {_LIVE_SO_FAR} + :guard_live_delta))
                FROM {_JOINS}), '{{}}')
        FROM locked
        WHERE x.id = locked.id AND EXISTS (SELECT 1 FROM finished)
    ),
    {_COUNTED_TAIL}
    """,  # noqa: S608 - table names only; every value is a bound parameter
    {
        **RECORD_TYPES,
        "joins": "text",
        "guard_status": "varchar",
        "guard_mode": "varchar",
        "guard_others_active": "integer",
        "guard_left_after": "integer",
        "guard_waiting_after": "integer",
        "guard_active_delta": "integer",
        "guard_resolved_delta": "integer",
        "guard_waiting_delta": "integer",
        "guard_live_delta": "integer",
        "checkpoint": "text",
        "updated_at": "timestamptz",
        "events": "text",
        **_TAKE_TYPES,
    },
    column_types={"taken_queued_at": t.step_runs.c.queued_at.type},
)


# an item arrival: a map item's success that only counts (core.mapping's ITEM_ARRIVAL holds on
# the locked row; its values are the `guard_*` parameters): its run recorded, the map's counts
# moved on in the execution's row, its event written; otherwise nothing is written
_COUNTS = "locked.maps -> :step"
_COUNT = "CAST({counts} ->> '{name}' AS int)"
_S, _F, _N, _T, _C = (
    _COUNT.format(counts=_COUNTS, name=n) for n in ("succeeded", "failed", "running", "total", "cancelled")
)
RECORD_ITEM_ARRIVAL = Prepared(
    "wfe_record_item_arrival",
    f"""
    WITH {LOCK.format(locked_if="")},
    countable AS (
        SELECT locked.id FROM locked
        WHERE locked.status = :guard_status AND {_COUNTS} IS NOT NULL
          AND {_T} - {_S} - {_F} - COALESCE({_C}, 0) - {_N} = :guard_pending
          AND {_T} - ({_S} + :guard_succeeded_delta) - {_F} >= :guard_left_after
    ),
    {RECORD.format(gate="countable")},
    counted AS (
        UPDATE {E} AS x SET updated_at = :updated_at,
            maps = jsonb_set(locked.maps, ARRAY[:step], {_COUNTS} || jsonb_build_object(
                CAST(:succeeded_key AS text), {_S} + :guard_succeeded_delta,
                CAST(:running_key AS text), {_N} + :guard_running_delta))
        FROM locked
        WHERE x.id = locked.id AND EXISTS (SELECT 1 FROM finished)
    ),
    {_COUNTED_TAIL}
    """,  # noqa: S608 - table names only; every value is a bound parameter
    {
        **RECORD_TYPES,
        **_TAKE_TYPES,
        "step": "text",
        "succeeded_key": "text",
        "running_key": "text",
        "guard_status": "varchar",
        "guard_pending": "integer",
        "guard_left_after": "integer",
        "guard_succeeded_delta": "integer",
        "guard_running_delta": "integer",
        "updated_at": "timestamptz",
        "events": "text",
    },
    column_types={"taken_queued_at": t.step_runs.c.queued_at.type},
)


def record_item_arrival(connection: Connection, arrival: Arrival, step: str, take: Take) -> ArrivalAnswer:
    """Record a map item's success that only counts (``arrival.joins`` unused) in one statement
    on an autocommitting connection, then take a carried run as ``take`` says: whether it was
    done (if not, nothing was written), and the run taken."""
    parameters = {
        **_outcome_parameters(arrival, take),
        "step": step,
        "succeeded_key": "succeeded",  # the keys of core.mapping's counts
        "running_key": "running",
        **{f"guard_{f.name}": getattr(ITEM_ARRIVAL, f.name) for f in fields(ITEM_ARRIVAL)},
    }
    row = RECORD_ITEM_ARRIVAL.execute(connection, parameters).first()
    if row is None or not row.applied:
        return GuardFailed()
    return Arrived(_taken(row))


def record_arrival(connection: Connection, arrival: Arrival, take: Take) -> ArrivalAnswer:
    """Record ``arrival`` in one statement on an autocommitting connection, if none of its
    joins becomes due by it, then take a carried run as ``take`` says. Whether it was done (if
    not, nothing was written), and the run taken."""
    parameters = {
        **_outcome_parameters(arrival, take),
        "joins": json.dumps([{"name": name, "degree": degree} for name, degree in arrival.joins.items()]),
        **{f"guard_{f.name}": getattr(ARRIVAL, f.name) for f in fields(ARRIVAL)},
        "checkpoint": as_json(arrival.checkpoint),
    }
    row = RECORD_ARRIVAL.execute(connection, parameters).first()
    if row is None or not row.applied:
        return GuardFailed()
    return Arrived(_taken(row))


def _outcome_parameters(arrival: Arrival, take: Take) -> dict[str, Any]:
    """What both arrival statements are given: the attempt's record, its event, the take."""
    attempt, event = arrival.attempt, arrival.event
    return {
        **record_parameters(arrival.execution_id, arrival.run_id, arrival.worker, attempt),
        "updated_at": attempt["finished_at"],
        "events": json.dumps([{c: event.get(c) for c in EVENT_COLUMNS}], default=datetime.isoformat),
        "take": take.how,
        "task_id": take.task_id,
        "in_place_reason": take.reason,
    }


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
