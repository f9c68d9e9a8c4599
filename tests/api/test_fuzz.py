"""Property-based fuzzing of every operation in the OpenAPI schema (schemathesis), on SQLite and
PostgreSQL: no input, authenticated or not, may produce a server error."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from tests.api.conftest import APPROVAL, HELLO, TYPED, Api

# who calls, how many requests each operation gets, and in which mode: the admin reaches every
# route's logic, so gets most; a viewer and an anonymous caller are refused early
CALLERS = (
    ("root", GenerationMode.POSITIVE, 20),
    ("root", GenerationMode.NEGATIVE, 10),
    ("vic", GenerationMode.POSITIVE, 6),
    ("anonymous", GenerationMode.POSITIVE, 3),
)
# the run is bounded by the example counts above (about 30 s a backend here); the timeout only
# catches a hang, with room for a loaded machine
TIMEOUT_SECONDS = 225


def fuzz(
    operation: Any, mode: GenerationMode, examples: int, headers: dict[str, str], who: str
) -> Callable[[], None]:
    """A hypothesis test sending generated requests for ``operation`` as ``who``."""

    @given(case=operation.as_strategy(mode))
    @settings(max_examples=examples, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    def no_server_error(case: Any) -> None:
        response = case.call(headers={**(case.headers or {}), **headers})
        where = (operation.label, who, mode.value, response.status_code, response.text[:300])
        assert response.status_code < 500, where
        if response.status_code >= 400:
            assert "detail" in response.json(), where

    return no_server_error  # type: ignore[no-any-return]


@pytest.mark.slow
@pytest.mark.timeout(TIMEOUT_SECONDS)
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_no_generated_request_gets_a_server_error(api_factory: Callable[..., Api], backend: str) -> None:
    api = api_factory(backend=backend)
    for definition in (HELLO, TYPED, APPROVAL):
        api.register(definition)
    api.start("hello")
    schema = schemathesis.openapi.from_asgi("/api/openapi.json", api.client.app)
    checked = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.path.endswith("/events"):
            continue  # a stream; its 404, auth and Last-Event-ID paths are covered by the other tests
        if operation.path.endswith("/logout-all"):
            continue  # (it would revoke the callers' tokens: every later operation answered 401)
        for who, mode, examples in CALLERS:
            headers = api.headers(who) if who != "anonymous" else {}
            try:
                fuzz(operation, mode, examples, headers, who)()
            except Unsatisfiable:
                assert mode is GenerationMode.NEGATIVE, operation.label
                continue  # nothing in this operation can be made invalid
            checked += 1
    assert checked >= 80
