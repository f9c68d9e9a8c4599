"""TLS in transit to both servers, with a certificate the test makes: a PostgreSQL that accepts
only TLS connections (``hostssl``; plain ones rejected) and a Redis that listens on a TLS port
alone. A real worker and coordinator run a workflow that carries a secret over both, verifying
the servers' certificate (``sslmode=verify-full``, ``ssl_cert_reqs=required``)."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import kombu.exceptions
import psycopg
import pytest
import redis
import sqlalchemy as sa

from tests.conftest import unavailable
from tests.integration.conftest import FAST, running_cluster
from tests.integration.test_api_server import free_port
from tests.support import services
from tests.support.certificates import self_signed
from tests.support.polling import poll
from workflow_engine.definitions import WorkflowBuilder
from workflow_engine.errors import StoreError
from workflow_engine.secrets import new_key
from workflow_engine.settings import Settings
from workflow_engine.store import migrate
from workflow_engine.store.urls import database_url
from workflow_engine.worker.app import create_celery_app

pytestmark = [pytest.mark.slow, pytest.mark.long]

PG_BIN = str(Path(services.PG_CTL).parent) if services.PG_CTL else None


def _as_server_user(command: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: as root, run its programs as the ``postgres`` user."""
    if os.geteuid() != 0:
        return command
    runuser = shutil.which("runuser")
    if runuser is None:
        unavailable("running as root and no runuser to start PostgreSQL as the postgres user")
    return [str(runuser), "-u", "postgres", "--", *command]


@pytest.fixture(scope="module")
def tls_folder() -> Iterator[Path]:
    """A folder the server users can read (pytest's own tmp folders are the test user's alone)
    with a self-signed certificate for 127.0.0.1 and its key."""
    folder = Path(tempfile.mkdtemp(prefix="wfe-tls-"))
    folder.chmod(0o755)
    cert, key = self_signed(folder)
    cert.chmod(0o644)
    key.chmod(0o600)
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres")
        shutil.chown(key, "postgres")
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def tls_postgres(tls_folder: Path) -> Iterator[tuple[str, int]]:
    """A throwaway PostgreSQL server that takes TLS connections only: its URL and port."""
    if PG_BIN is None:
        unavailable("no PostgreSQL server programs (the Debian package postgresql) to start one")
    data, port = tls_folder / "pg", free_port()
    subprocess.run(
        _as_server_user([f"{PG_BIN}/initdb", "-D", str(data), "-U", "postgres", "-A", "trust", "-E", "UTF8"]),
        check=True,
        capture_output=True,
    )
    (data / "pg_hba.conf").write_text(
        "local all all trust\nhostssl all all 127.0.0.1/32 trust\nhostnossl all all 127.0.0.1/32 reject\n"
    )
    options = (
        f"-p {port} -k {tls_folder} -c listen_addresses=127.0.0.1 -c ssl=on -c fsync=off "
        f"-c ssl_cert_file={tls_folder / 'cert.pem'} -c ssl_key_file={tls_folder / 'key.pem'}"
    )
    pg_ctl = [f"{PG_BIN}/pg_ctl", "-D", str(data), "-l", str(tls_folder / "pg.log"), "-w"]
    subprocess.run(_as_server_user([*pg_ctl, "-o", options, "start"]), check=True, capture_output=True)
    try:
        root = quote(str(tls_folder / "cert.pem"), safe="")
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres?sslmode=verify-full&sslrootcert={root}", port
    finally:
        subprocess.run(_as_server_user([*pg_ctl, "-m", "immediate", "stop"]), capture_output=True)


@pytest.fixture(scope="module")
def tls_redis(tls_folder: Path) -> Iterator[str]:
    """A throwaway Redis with a TLS port and no plain one: its ``rediss://`` URL."""
    if services.REDIS_SERVER is None:
        unavailable("no redis-server (the Debian package redis-server) to start one")
    cert, port = tls_folder / "cert.pem", free_port()
    with (tls_folder / "redis.log").open("wb") as log:
        server = subprocess.Popen(
            [
                str(services.REDIS_SERVER),
                *("--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1"),
                *("--tls-cert-file", str(cert), "--tls-key-file", str(tls_folder / "key.pem")),
                *("--tls-ca-cert-file", str(cert), "--tls-auth-clients", "no"),
                *("--save", "", "--appendonly", "no", "--dir", str(tls_folder)),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"rediss://127.0.0.1:{port}/0?ssl_cert_reqs=required&ssl_ca_certs={quote(str(cert), safe='')}"
    try:
        client = redis.Redis.from_url(url)

        def answers() -> bool:
            assert server.poll() is None, (tls_folder / "redis.log").read_text()
            with contextlib.suppress(redis.ConnectionError):
                return bool(client.ping())
            return False

        poll(answers, 30, "the TLS Redis to answer")
        client.close()
        yield url
    finally:
        server.terminate()
        server.wait(10)


def test_plain_and_unverified_connections_are_refused(tls_postgres: tuple[str, int], tls_redis: str) -> None:
    """The servers the next test uses speak TLS only, and a client that cannot verify their
    certificate does not get in: so what the engine did there, it did over verified TLS."""
    url, port = tls_postgres
    with pytest.raises(psycopg.OperationalError, match=r"no encryption|rejects connection"):
        psycopg.connect(f"postgresql://postgres@127.0.0.1:{port}/postgres?sslmode=disable", connect_timeout=5)
    with pytest.raises(psycopg.OperationalError, match=r"certificate|root"):
        psycopg.connect(
            f"postgresql://postgres@127.0.0.1:{port}/postgres?sslmode=verify-full&sslrootcert=system",
            connect_timeout=5,
        )
    with psycopg.connect(url, connect_timeout=5) as connection:
        assert connection.info.pgconn.ssl_in_use
    port_of_redis = int(tls_redis.split(":")[2].split("/")[0])
    with pytest.raises(redis.ConnectionError):
        redis.Redis(port=port_of_redis, socket_timeout=3).ping()  # plain Redis protocol
    with pytest.raises(redis.ConnectionError, match="certificate verify failed"):
        redis.Redis.from_url(f"rediss://127.0.0.1:{port_of_redis}/0?ssl_cert_reqs=required").ping()


@pytest.mark.parametrize("scheme", ["postgresql", "postgresql+psycopg2"])
def test_both_drivers_connect_over_verified_tls(
    tls_postgres: tuple[str, int], scheme: str, tmp_path: Path
) -> None:
    """The URL's ``sslmode`` and ``sslrootcert`` reach the driver: with another certificate as
    the root, the engine does not connect at all."""
    url, _ = tls_postgres
    stranger, _ = self_signed(tmp_path)
    wrong = url.split("&sslrootcert=")[0] + f"&sslrootcert={quote(str(stranger), safe='')}"
    with pytest.raises(StoreError, match="certificate verify failed"):
        migrate.upgrade(Settings(database_url=wrong.replace("postgresql://", f"{scheme}://", 1)).database_url)
    settings = Settings(database_url=url.replace("postgresql://", f"{scheme}://", 1))
    migrate.upgrade(settings.database_url)
    engine = sa.create_engine(database_url(settings.database_url))
    try:
        with engine.connect() as connection:
            ssl = connection.execute(sa.text("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"))
            assert ssl.scalar() is True
    finally:
        engine.dispose()


def test_the_broker_connection_verifies_the_redis_certificate(tls_redis: str, tmp_path: Path) -> None:
    """The ``rediss://`` URL's CA file reaches kombu: with another certificate, no connection."""
    stranger, _ = self_signed(tmp_path)
    wrong = tls_redis.split("&ssl_ca_certs=")[0] + f"&ssl_ca_certs={quote(str(stranger), safe='')}"
    for url, connects in ((wrong, False), (tls_redis, True)):
        app = create_celery_app(Settings(broker_url=url))
        with app.connection_for_write() as connection:
            if connects:
                connection.ensure_connection(max_retries=1)
                assert connection.connected
            else:
                with pytest.raises(kombu.exceptions.OperationalError, match="certificate verify failed"):
                    connection.ensure_connection(max_retries=1)


def test_a_workflow_with_a_secret_runs_over_tls_to_postgresql_and_redis(
    tls_postgres: tuple[str, int], tls_redis: str, tmp_path: Path
) -> None:
    url, _ = tls_postgres
    tag = uuid.uuid4().hex[:8]
    settings = Settings(
        database_url=url,
        broker_url=tls_redis,
        queue_prefix=f"t{tag}",
        intake_queue=f"t{tag}.intake",
        encryption_keys=new_key(),
        **FAST,
    )
    migrate.upgrade(settings.database_url)
    secret = f"sk-{uuid.uuid4().hex}"
    with running_cluster(settings, tmp_path) as cluster:
        cluster.engine.register(
            WorkflowBuilder("over-tls")
            .agent("one", "keyholder")
            .agent("two", "keyholder", after="one")
            .human("check", after="two")
            .agent("three", "keyholder", after="check")
            .secrets("input.key")
        )
        execution = cluster.engine.start("over-tls", {"key": secret}).id
        assert cluster.wait(execution).status == "waiting"
        cluster.engine.complete_human_task(execution, "check", {"ok": True}, user_id="tester")
        final = cluster.wait(execution)
        assert final.status == "completed", cluster.dump()
        assert [s.output["token"] for s in final.steps if s.name != "check"] == ["***"] * 3
        with cluster.engine.store.engine.connect() as connection:
            plain: Any = connection.execute(
                sa.text(
                    "SELECT count(*) FILTER (WHERE NOT s.ssl), count(*) FROM pg_stat_activity a "
                    "JOIN pg_stat_ssl s USING (pid) WHERE a.backend_type = 'client backend'"
                )
            ).one()
        assert plain[0] == 0 and plain[1] >= 3  # this process's, the worker's, the coordinator's
