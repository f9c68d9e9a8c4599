"""Settings and process options a user can get wrong: one line that says what to write, never a
traceback or an internal error."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import services

ROOT = Path(__file__).resolve().parents[2]


def wfe(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "workflow_engine", *args],
        capture_output=True,
        text=True,
        env={
            **services.environment_without_settings(),
            "WFE_DATABASE_URL": f"sqlite:///{tmp_path / 'wfe.db'}",
            **env,
        },
        cwd=tmp_path,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("env", "args", "says"),
    [
        (
            {"WFE_DATABASE_URL": "mysql://root@127.0.0.1/test"},
            ["list"],
            "WFE_DATABASE_URL: database URLs of the form mysql://",
        ),
        (
            {"WFE_DATABASE_URL": "not a url"},
            ["db", "upgrade"],
            "WFE_DATABASE_URL: the database URL cannot be read",
        ),
        (
            {"WFE_DATABASE_URL": "postgresql+asyncpg://u@h/db"},
            ["api"],
            "postgresql+asyncpg:// are not supported",
        ),
        ({"WFE_BROKER_URL": "foo://bar"}, ["worker"], "WFE_BROKER_URL: no broker transport for foo://"),
        (
            {"WFE_BROKER_URL": "localhost:6379"},
            ["coordinator", "--once"],
            "WFE_BROKER_URL: no broker transport",
        ),
        ({"WFE_RESULT_BACKEND": "nonsense://x"}, ["worker"], "WFE_RESULT_BACKEND: no Celery result backend"),
        ({"WFE_LOG_LEVEL": "LOUD"}, ["coordinator", "--once"], "WFE_LOG_LEVEL: one of DEBUG, INFO"),
        (
            {"WFE_BROKER_TRANSPORT_OPTIONS": "{not json"},
            ["list"],
            "WFE_BROKER_TRANSPORT_OPTIONS: not valid JSON",
        ),
        ({"WFE_API_PORT": "99999"}, ["api"], "WFE_API_PORT"),
        ({}, ["worker", "--queues", "bad queue!"], "'bad queue!': a queue name is"),
        ({}, ["worker", "--loglevel", "LOUD"], "'--loglevel'"),
    ],
)
def test_a_setting_that_cannot_work_is_one_line_naming_it(
    tmp_path: Path, env: dict[str, str], args: list[str], says: str
) -> None:
    result = wfe(tmp_path, *args, **env)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert says in lines[0] and lines[0].startswith("wfe: error: "), lines[0]
    assert "internal error" not in lines[0] and "Traceback" not in result.stderr


def test_a_refused_url_does_not_show_its_password(tmp_path: Path) -> None:
    result = wfe(tmp_path, "list", WFE_DATABASE_URL="mysql://root:hunter2@127.0.0.1/test")
    assert result.returncode != 0 and "hunter2" not in result.stderr


@pytest.mark.parametrize(
    "url", ["postgresql+psycopg2://u@h/db", "postgres://u@h/db", "sqlite:///x.db", "sqlite://"]
)
def test_the_accepted_forms_pass_the_settings(tmp_path: Path, url: str) -> None:
    from workflow_engine.settings import Settings

    assert Settings(database_url=url).database_url == url


def test_db_upgrade_migrates_the_database_its_env_file_names_and_says_which(tmp_path: Path) -> None:
    """`wfe --env-file F db upgrade` reads F: it migrates F's database, not the embedded default,
    and its first line names that database."""
    (tmp_path / "deploy.env").write_text(f"WFE_DATABASE_URL=sqlite:///{tmp_path / 'named.db'}\n")
    result = wfe_from(tmp_path, "--env-file", "deploy.env", "db", "upgrade")
    assert result.returncode == 0, result.stderr
    first = result.stdout.splitlines()[0]
    assert first == f"database sqlite:///{tmp_path / 'named.db'} (settings from deploy.env)", first
    assert (tmp_path / "named.db").exists() and not (tmp_path / "wfe.db").exists()


def wfe_from(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`wfe` in a shell with no WFE_ setting at all: what it knows comes from files."""
    return subprocess.run(
        [sys.executable, "-m", "workflow_engine", *args],
        capture_output=True,
        text=True,
        env={**services.environment_without_settings(), **env},
        cwd=tmp_path,
        timeout=60,
        check=False,
    )


def test_every_command_reads_wfe_env_where_it_runs_and_the_environment_wins(tmp_path: Path) -> None:
    (tmp_path / "wfe.env").write_text("WFE_API_PORT=8123\nWFE_QUEUE_PREFIX=fromfile\n")
    shown = json.loads(wfe_from(tmp_path, "settings", "show", "--json").stdout)
    assert shown["env_file"] == "wfe.env"
    assert shown["settings"]["WFE_API_PORT"] == 8123 and shown["settings"]["WFE_QUEUE_PREFIX"] == "fromfile"
    over = json.loads(wfe_from(tmp_path, "settings", "show", "--json", WFE_API_PORT="9000").stdout)
    assert over["settings"]["WFE_API_PORT"] == 9000 and over["settings"]["WFE_QUEUE_PREFIX"] == "fromfile"
    (tmp_path / "other.env").write_text("WFE_API_PORT=8456\n")
    named = json.loads(wfe_from(tmp_path, "settings", "show", "--json", WFE_ENV_FILE="other.env").stdout)
    assert named["env_file"] == "other.env" and named["settings"]["WFE_API_PORT"] == 8456


def test_a_missing_env_file_is_one_line(tmp_path: Path) -> None:
    result = wfe_from(tmp_path, "--env-file", "nowhere.env", "list")
    assert result.returncode != 0 and result.stderr == "wfe: error: env file nowhere.env: no such file\n"


@pytest.mark.store  # an empty database made on PostgreSQL
def test_the_database_line_masks_the_password(pg_databases: object, tmp_path: Path) -> None:
    import sqlalchemy as sa

    empty = f"{pg_databases.prefix}_empty"  # type: ignore[attr-defined]
    with pg_databases.admin.connect() as conn:  # type: ignore[attr-defined]
        conn.exec_driver_sql(f'CREATE DATABASE "{empty}"')
    pg_databases.created.append(empty)  # type: ignore[attr-defined]
    url = sa.make_url(pg_databases.url(empty)).set(password="hunter2")  # type: ignore[attr-defined]
    (tmp_path / "wfe.env").write_text(f"WFE_DATABASE_URL={url.render_as_string(hide_password=False)}\n")
    result = wfe_from(tmp_path, "db", "upgrade")
    assert result.returncode == 0, result.stderr
    first = result.stdout.splitlines()[0]
    assert first.startswith("database postgresql://") and ":***@" in first and empty in first, first
    assert "hunter2" not in result.stdout + result.stderr


@pytest.mark.parametrize("process", ["worker", "coordinator", "api"])
def test_a_process_first_says_its_database_and_broker_masked(tmp_path: Path, process: str) -> None:
    (tmp_path / "wfe.env").write_text(
        "WFE_DATABASE_URL=postgresql://u:hunter2@127.0.0.1:1/x\nWFE_BROKER_URL=redis://:hunter3@127.0.0.1:1/0\n"
    )
    result = wfe_from(tmp_path, process)  # no database there: it stops at once
    assert result.returncode != 0
    first = (result.stderr + result.stdout).splitlines()[0]
    assert "database postgresql://u:***@127.0.0.1:1/x (settings from wfe.env)" in first, first
    assert "broker redis://:**@127.0.0.1:1/0" in first, first
    assert "hunter2" not in result.stderr + result.stdout and "hunter3" not in result.stderr + result.stdout
