"""Property-based fuzzing of every operation in the OpenAPI schema (schemathesis): no input,
authenticated or not, may produce a server error."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from tests.api.conftest import APPROVAL, HELLO, TYPED, Api

EXAMPLES_PER_OPERATION = 25
BUDGET_SECONDS = 120


def fuzz(operation: Any, headers: dict[str, str], who: str) -> Callable[[], None]:
    """A hypothesis test sending generated requests for ``operation`` as ``who``."""

    @given(case=operation.as_strategy())
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def no_server_error(case: Any) -> None:
        response = case.call(headers={**(case.headers or {}), **headers})
        where = (operation.label, who, response.status_code, response.text[:300])
        assert response.status_code < 500, where
        if response.status_code >= 400:
            assert "detail" in response.json(), where

    return no_server_error  # type: ignore[no-any-return]


@pytest.mark.slow
def test_no_generated_request_gets_a_server_error(api_factory: Any) -> None:
    api: Api = api_factory(backend="sqlite")
    for definition in (HELLO, TYPED, APPROVAL):
        api.register(definition)
    api.start("hello")
    schema = schemathesis.openapi.from_asgi("/api/openapi.json", api.client.app)
    began = time.monotonic()
    checked = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.path.endswith("/events"):
            continue  # a stream; its 404 and auth paths are covered by the other tests
        for who in ("root", "vic", "anonymous"):
            headers = api.headers(who) if who != "anonymous" else {}
            fuzz(operation, headers, who)()
            checked += 1
        assert time.monotonic() - began < BUDGET_SECONDS, "fuzzing ran past its time budget"
    assert checked >= 60
