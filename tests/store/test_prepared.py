"""Statements prepared per PostgreSQL session: numbering, typing, and what a session keeps."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import sqlalchemy as sa

from workflow_engine.store.database import create_engine
from workflow_engine.store.postgres import Prepared

PG_SCHEMES = ["postgresql", "postgresql+psycopg2"]


@pytest.mark.unit
def test_parameters_are_numbered_in_order_of_first_use_and_each_is_typed() -> None:
    statement = Prepared(
        "wfe_test_numbering",
        "SELECT CAST(:b AS text) || :a || :b || '::literal' WHERE :a <> ''",
        {"a": "text", "b": "integer"},
    )
    assert statement.parameters == ("b", "a")
    assert statement.definition == (
        "PREPARE wfe_test_numbering (integer, text) AS "
        "SELECT CAST($1 AS text) || $2 || $1 || '::literal' WHERE $2 <> ''"
    )


@pytest.mark.unit
def test_a_parameter_without_a_type_is_refused_when_the_statement_is_built() -> None:
    with pytest.raises(ValueError, match="no type for b"):
        Prepared("wfe_test_untyped", "SELECT :a, :b", {"a": "text"})


ADD = Prepared("wfe_test_add", "SELECT CAST(:x AS integer) + :y AS total", {"x": "integer", "y": "integer"})


def prepared_names(connection: sa.Connection) -> set[str]:
    rows = connection.exec_driver_sql("SELECT name FROM pg_prepared_statements").scalars()
    return set(rows)


@pytest.mark.parametrize("scheme", PG_SCHEMES)
def test_a_statement_is_prepared_once_per_session_and_outlives_a_rollback(
    new_database_url: Callable[[str], str], scheme: str
) -> None:
    engine = create_engine(new_database_url(scheme), pool_size=1)
    try:
        with engine.connect() as connection:
            with connection.begin() as transaction:
                assert ADD.execute(connection, {"x": 2, "y": 3}).scalar_one() == 5
                transaction.rollback()
            assert prepared_names(connection) == {"wfe_test_add"}
            # prepared already: running it again sends no second PREPARE (which would fail)
            assert ADD.execute(connection, {"x": 4, "y": 5}).scalar_one() == 9
            connection.rollback()
        with engine.connect() as connection:  # the same pooled session: still prepared
            assert ADD.execute(connection, {"x": 1, "y": 1}).scalar_one() == 2
            connection.rollback()
            connection.invalidate()  # a new session is prepared afresh
        with engine.connect() as connection:
            assert ADD.execute(connection, {"x": 10, "y": -3}).scalar_one() == 7
            assert prepared_names(connection) == {"wfe_test_add"}
            connection.rollback()
    finally:
        engine.dispose()


@pytest.mark.parametrize("scheme", PG_SCHEMES)
def test_the_transaction_can_open_and_commit_in_the_same_round_trip(
    new_database_url: Callable[[str], str], scheme: str
) -> None:
    engine = create_engine(new_database_url(scheme), isolation_level="AUTOCOMMIT")
    insert = Prepared(
        "wfe_test_insert", "INSERT INTO wfe_test_rows (value) VALUES (:value)", {"value": "integer"}
    )
    try:
        with engine.connect() as connection:
            connection.exec_driver_sql("CREATE TABLE wfe_test_rows (value integer)")
            insert.execute(connection, {"value": 1}, begin=True, commit=True)
            insert.execute(connection, {"value": 2}, begin=True)
            connection.exec_driver_sql("ROLLBACK")
            values = connection.exec_driver_sql("SELECT value FROM wfe_test_rows").scalars().all()
        assert values == [1]
    finally:
        engine.dispose()
