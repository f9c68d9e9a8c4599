"""Hot-path statements prepared once per PostgreSQL session, then executed by name.

The statements of a step's claim and outcome are long CTEs over a dozen columns; parsing and
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
import re
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

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
