"""Database URLs: every form a PostgreSQL user writes maps to one driver; the rest are refused."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from workflow_engine.errors import ConfigurationError
from workflow_engine.settings import Settings
from workflow_engine.store.urls import ACCEPTED, database_url, driver


@pytest.mark.parametrize(
    ("written", "meant"),
    [
        ("postgresql://postgres@127.0.0.1:5432/mydb", "postgresql+psycopg://postgres@127.0.0.1:5432/mydb"),
        ("postgres://u:pw@db.example:6543/app", "postgresql+psycopg://u:pw@db.example:6543/app"),
        ("postgresql+psycopg://u@h/app", "postgresql+psycopg://u@h/app"),
        ("postgresql+psycopg2://u:pw@h/app", "postgresql+psycopg2://u:pw@h/app"),
        ("POSTGRESQL://u@h/app", "postgresql+psycopg://u@h/app"),
        (
            "postgresql:///mydb?host=/var/run/postgresql",
            "postgresql+psycopg:///mydb?host=%2Fvar%2Frun%2Fpostgresql",
        ),
        ("sqlite:///wfe.db", "sqlite+pysqlite:///wfe.db"),
        ("sqlite://", "sqlite+pysqlite://"),
    ],
)
def test_every_form_a_user_writes_names_its_driver(written: str, meant: str) -> None:
    assert database_url(written).render_as_string(hide_password=False) == meant


def test_the_plain_forms_mean_psycopg_3_and_the_suffix_keeps_psycopg2() -> None:
    assert driver("postgresql://h/db") == driver("postgres://h/db") == "psycopg"
    assert driver("postgresql+psycopg2://h/db") == "psycopg2"


def test_the_socket_path_and_the_password_survive() -> None:
    url = database_url("postgres://alice:s%40cret@/mydb?host=/var/run/postgresql")
    assert url.password == "s@cret" and url.username == "alice"
    assert url.query == {"host": "/var/run/postgresql"} and url.database == "mydb"


def test_an_unescaped_at_sign_in_the_password_is_refused_without_showing_it() -> None:
    with pytest.raises(ConfigurationError, match="%40") as refused:
        database_url("postgresql://alice:se@cret@127.0.0.1/db")
    assert "cret" not in str(refused.value)


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("mysql://root@localhost/test", "database URLs of the form mysql:// are not supported"),
        ("mysql+pymysql://root@localhost/test", "mysql+pymysql:// are not supported"),
        ("postgresql+asyncpg://u@h/db", "postgresql+asyncpg:// are not supported"),
        ("oracle://u@h/db", "oracle:// are not supported"),
        ("garbage", "cannot be read"),
        ("", "cannot be read"),
        ("://nothing", "cannot be read"),
    ],
)
def test_a_url_that_cannot_work_is_refused_with_the_accepted_forms(url: str, says: str) -> None:
    with pytest.raises(ConfigurationError) as refused:
        database_url(url)
    assert says in str(refused.value) and ACCEPTED in str(refused.value)


def test_settings_refuse_such_a_url_when_they_are_read() -> None:
    with pytest.raises(ValidationError) as refused:
        Settings(database_url="mysql://root:hunter2@localhost/test")
    (error,) = refused.value.errors()
    assert error["loc"] == ("database_url",) and "not supported" in error["msg"]
    assert "hunter2" not in str(refused.value)  # the value is never echoed, not even by pydantic


def test_a_settings_error_never_echoes_a_broker_password() -> None:
    with pytest.raises(ValidationError) as refused:
        Settings(broker_url="aqmp://user:s3cret@rabbit:5672//")
    assert "s3cret" not in str(refused.value) and "aqmp://" in str(refused.value)


@pytest.mark.parametrize(("given", "kept"), [("warn", "WARNING"), ("debug", "DEBUG"), ("Error", "ERROR")])
def test_log_levels_are_read_as_logging_names_them(given: str, kept: str) -> None:
    assert Settings(log_level=given).log_level == kept


@pytest.mark.parametrize("backend", ["redis://h:6379/1", "rpc://", "db+sqlite:///r.db", "pkg.mod:Backend"])
def test_result_backends_celery_accepts_are_accepted(backend: str) -> None:
    assert Settings(result_backend=backend).result_backend == backend
    assert Settings(result_backend="").result_backend is None


@pytest.mark.parametrize(
    ("url", "folder"),
    [
        ("sqlite:////srv/wfe/wfe.db", "/srv/wfe/.wfe.db.broker"),
        ("sqlite+pysqlite:////srv/wfe/wfe.db", "/srv/wfe/.wfe.db.broker"),
        ("SQLITE:////srv/wfe/wfe.db", "/srv/wfe/.wfe.db.broker"),
    ],
)
def test_the_embedded_broker_lives_next_to_the_database_whatever_the_url_form(url: str, folder: str) -> None:
    assert str(Settings(database_url=url).embedded_broker_dir) == folder
