"""`wfe api` over HTTPS with a certificate and key of the test's own (self-signed, made here):
a client that trusts that certificate gets answers; plain HTTP on the same port gets none."""

from __future__ import annotations

import contextlib
import ssl
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.conftest import ROOT
from tests.integration.test_api_server import free_port
from tests.support import services
from tests.support.certificates import self_signed
from tests.support.polling import poll
from workflow_engine.store import migrate

pytestmark = pytest.mark.slow


def test_wfe_api_serves_https_with_its_certificate_and_refuses_plain_http(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    url = f"sqlite:///{tmp_path / 'wfe.db'}"
    migrate.upgrade(url)
    port = free_port()
    env = {
        **services.environment_without_settings(),
        "WFE_DATABASE_URL": url,
        "WFE_API_TLS_CERT": str(cert),
        "WFE_API_TLS_KEY": str(key),
    }
    with (tmp_path / "api.log").open("wb") as log:
        api = subprocess.Popen(
            [sys.executable, "-m", "workflow_engine", "api", "--port", str(port)],
            env=env,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    trusted = ssl.create_default_context(cafile=str(cert))

    def health() -> httpx.Response | None:
        try:
            return httpx.get(f"https://127.0.0.1:{port}/api/v1/health", verify=trusted, timeout=2)
        except httpx.TransportError:
            assert api.poll() is None, (tmp_path / "api.log").read_text()
            return None

    try:
        answer = poll(
            health, 60, "the API to answer over TLS", interval=0.2, explain=(tmp_path / "api.log").read_text
        )
        assert answer.status_code == 200 and answer.json()["database"] == "ok"
        with pytest.raises(httpx.TransportError):
            httpx.get(f"https://127.0.0.1:{port}/api/v1/health", timeout=2)  # not trusted by default
        plain = None
        with contextlib.suppress(httpx.TransportError):
            plain = httpx.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=2)
        assert plain is None or plain.status_code >= 400
    finally:
        api.terminate()
        api.wait(15)
