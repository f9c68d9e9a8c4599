"""Tokens, every bad-token case, roles, and the production secret check."""

from __future__ import annotations

import base64
import json
import threading
import warnings
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
from jwt.warnings import InsecureKeyLengthWarning

from tests.api.conftest import HELLO, PASSWORD, Api
from tests.conftest import ROOT
from workflow_engine.api.app import create_app
from workflow_engine.api.auth import Tokens
from workflow_engine.clock import FixedClock
from workflow_engine.errors import ConfigurationError
from workflow_engine.settings import EXAMPLE_JWT_SECRET, Settings


def test_token_from_a_password_form_or_json_then_refresh(api: Api) -> None:
    form = api.client.post(
        "/api/v1/auth/token", data={"username": "alice", "password": PASSWORD, "grant_type": "password"}
    )
    as_json = api.client.post("/api/v1/auth/token", json={"username": "alice", "password": PASSWORD})
    assert form.status_code == as_json.status_code == 200
    pair = as_json.json()
    assert pair["token_type"] == "bearer" and pair["expires_in"] == 900
    refreshed = api.client.post("/api/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    assert refreshed.status_code == 200
    fresh = refreshed.json()["access_token"]
    assert (
        api.client.get("/api/v1/executions", headers={"Authorization": f"Bearer {fresh}"}).status_code == 200
    )


def test_wrong_credentials_are_401_with_the_same_message_for_unknown_users(api: Api) -> None:
    wrong = api.client.post("/api/v1/auth/token", json={"username": "alice", "password": "nope"})
    unknown = api.client.post("/api/v1/auth/token", json={"username": "nobody", "password": "nope"})
    system = api.client.post("/api/v1/auth/token", json={"username": "system", "password": ""})
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json() == {"detail": "wrong username or password"}
    assert system.status_code in (401, 422)


def test_malformed_token_requests_are_422(api: Api) -> None:
    for body in ({"username": "alice"}, {"username": 1, "password": []}, [1, 2]):
        assert api.client.post("/api/v1/auth/token", json=body).status_code == 422
    broken = api.client.post(
        "/api/v1/auth/token", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert broken.status_code == 422 and "detail" in broken.json()


def _b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def bad_tokens(api: Api) -> dict[str, str]:
    good = api.tokens["alice"]
    header, _, signature = good.split(".")
    claims = jwt.decode(good, options={"verify_signature": False})
    now = datetime.now(UTC)
    expired = Tokens(api.harness.settings, FixedClock(now - timedelta(hours=2)))
    refresh = api.client.post("/api/v1/auth/token", json={"username": "alice", "password": PASSWORD}).json()
    secret = api.harness.settings.jwt_secret.get_secret_value()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InsecureKeyLengthWarning)  # the point of the HS512 case
        hs512 = jwt.encode(claims, secret, algorithm="HS512")
    return {
        "other key": jwt.encode(
            claims, "another-secret-entirely-another-secret-0123456789", algorithm="HS256"
        ),
        "altered": ".".join([header, _b64({**claims, "role": "admin", "sub": "1"}), signature]),
        "expired": expired.issue(api.harness.store.get_user("alice")).access_token,
        "alg none": ".".join([_b64({"alg": "none", "typ": "JWT"}), _b64(claims), ""]),
        "hs512": hs512,
        "refresh as access": refresh["refresh_token"],
        "garbage": "not-a-token",
    }


@pytest.mark.parametrize(
    "case", ["other key", "altered", "expired", "alg none", "hs512", "refresh as access", "garbage"]
)
def test_every_bad_token_is_rejected_with_401(api: Api, case: str) -> None:
    token = bad_tokens(api)[case]
    response = api.client.get("/api/v1/executions", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401, (case, response.text)
    assert response.headers["www-authenticate"] == "Bearer" and "detail" in response.json()


def test_missing_or_non_bearer_authorization_is_401(api: Api) -> None:
    assert api.client.get("/api/v1/executions").status_code == 401
    basic = api.client.get("/api/v1/executions", headers={"Authorization": "Basic YWxpY2U6cHc="})
    assert basic.status_code == 401


def test_an_access_token_cannot_refresh(api: Api) -> None:
    response = api.client.post("/api/v1/auth/refresh", json={"refresh_token": api.tokens["alice"]})
    assert response.status_code == 401


def test_health_and_docs_need_no_token(api: Api) -> None:
    assert api.client.get("/health").json() == {"status": "ok", "database": "ok"}
    assert api.client.get("/api/v1/health").status_code == 200
    assert api.client.get("/api/docs").status_code == 200
    assert "/api/v1/executions" in api.client.get("/api/openapi.json").json()["paths"]


def test_viewer_reads_but_may_not_change_anything(api: Api) -> None:
    api.register(HELLO)
    assert api.post("/workflows", "vic", json={**HELLO, "version": "2.0.0"}).status_code == 403
    assert api.post("/executions", "vic", json={"workflow": "hello"}).status_code == 403
    assert api.get("/executions", "vic").json()["total"] == 0
    execution = api.start("hello")
    assert api.post(f"/executions/{execution}/cancel", "vic").status_code in (403, 404)
    assert api.get("/workflows", "vic").status_code == 200


def test_operators_see_only_their_own_executions_and_workflows(api: Api) -> None:
    api.register(HELLO, "alice")
    mine = api.start("hello", "alice")
    assert api.get(f"/executions/{mine}", "bob").status_code == 404
    assert api.get(f"/executions/{mine}/logs", "bob").status_code == 404
    assert api.get(f"/executions/{mine}/events", "bob").status_code == 404
    assert api.post(f"/executions/{mine}/cancel", "bob").status_code == 404
    assert api.get("/workflows/hello", "bob").status_code == 404
    assert api.post("/executions", "bob", json={"workflow": "hello"}).status_code == 404
    assert api.get("/executions", "bob").json()["total"] == 0
    assert api.get(f"/executions/{mine}", "alice").status_code == 200
    assert api.get(f"/executions/{mine}", "root").status_code == 200  # admins see everything
    assert api.get("/executions", "root").json()["total"] == 1


def test_workflows_registered_by_the_deployment_are_visible_to_everyone(api: Api) -> None:
    api.engine.register(HELLO)  # as the CLI would: owned by the system
    assert [w["name"] for w in api.get("/workflows", "bob").json()] == ["hello"]
    assert api.post("/executions", "bob", json={"workflow": "hello"}).status_code == 202


def test_production_refuses_the_default_or_a_short_secret(tmp_path: object) -> None:
    with pytest.raises(ConfigurationError, match="WFE_JWT_SECRET"):
        create_app(Settings(environment="production", database_url="sqlite://"))
    with pytest.raises(ConfigurationError):
        create_app(Settings(environment="production", jwt_secret="short", database_url="sqlite://"))


def test_production_refuses_the_placeholder_secrets_of_the_example_env_file(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    example = ROOT / "config" / "wfe.env.example"
    for line in example.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            monkeypatch.setenv(key.strip(), value.strip())
    monkeypatch.setenv("WFE_DATABASE_URL", "sqlite://")  # never reached: the check comes first
    assert Settings().environment == "production"
    assert Settings().jwt_secret.get_secret_value() == EXAMPLE_JWT_SECRET
    with pytest.raises(ConfigurationError, match="WFE_JWT_SECRET"):
        create_app(Settings())
    monkeypatch.setenv("WFE_JWT_SECRET", "Replace-With-your-own-secret-0123456789abcdef")
    with pytest.raises(ConfigurationError, match="WFE_JWT_SECRET"):
        create_app(Settings())
    monkeypatch.setenv("WFE_JWT_SECRET", "a-real-secret-nobody-has-seen-0123456789abcdef")
    with pytest.raises(ConfigurationError, match="WFE_METRICS_TOKEN"):
        create_app(Settings())


def test_parallel_logins_check_no_more_passwords_at_once_than_the_hashing_slots(
    api_factory: Callable[..., Api],
) -> None:
    api = api_factory(login_hashing_slots=2, login_failures_per_address=100)
    logins = api.client.app.state.logins  # type: ignore[attr-defined]
    checking = {"now": 0, "most": 0, "all": 0}
    guard = threading.Lock()
    verify = logins.verify

    def counted(*args: Any) -> Any:
        with guard:
            checking["now"] += 1
            checking["all"] += 1
            checking["most"] = max(checking["most"], checking["now"])
        try:
            return verify(*args)
        finally:
            with guard:
                checking["now"] -= 1

    logins.verify = counted
    answers: list[int] = []

    def login(index: int) -> None:
        form = {"username": f"nobody{index}", "password": "x"}
        answers.append(api.client.post("/api/v1/auth/token", data=form).status_code)

    threads = [threading.Thread(target=login, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert set(answers) <= {401, 429} and len(answers) == 8
    assert checking["all"] == answers.count(401) > 0
    assert checking["most"] <= 2, checking
