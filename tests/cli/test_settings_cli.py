"""Settings and process options a user can get wrong: one line that says what to write, never a
traceback or an internal error."""

from __future__ import annotations

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
