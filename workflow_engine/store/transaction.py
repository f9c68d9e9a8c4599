"""Writes inside one transaction: the coordinator's unit of work."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection


def insert_ignoring_conflicts(
    connection: Connection, table: sa.Table, values: dict[str, Any], conflict_columns: Sequence[str]
) -> bool:
    """INSERT unless a row with the same ``conflict_columns`` exists; True when inserted."""
    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(table).values(values).on_conflict_do_nothing(index_elements=list(conflict_columns))
    return connection.execute(statement).rowcount == 1


class Tx:
    """One open transaction and the time it started at (every row it writes uses that time)."""

    def __init__(self, connection: Connection, now: datetime) -> None:
        self.connection = connection
        self.now = now

    @property
    def postgres(self) -> bool:
        return self.connection.dialect.name == "postgresql"
