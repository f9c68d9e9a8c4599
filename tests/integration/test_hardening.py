"""What a hostile or careless user can do to a running `wfe api` (real worker, coordinator,
Redis and PostgreSQL): each finding of the hardening review, reproduced over HTTP."""

from __future__ import annotations

import json
import statistics
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.integration.conftest import ledger_lines
from tests.integration.test_api_server import PASSWORD, Server, server, wfe_command
from tests.support.polling import poll
from workflow_engine.core.payloads import MAX_DEPTH
from workflow_engine.store import schema as t

__all__ = ["server"]  # the module's own `wfe api`, cluster and users (alice, bob, vic, root)
pytestmark = [pytest.mark.slow, pytest.mark.long]


def nested(depth: int, leaf: Any = 1) -> Any:
    value = leaf
    for _ in range(depth):
        value = {"a": value}
    return value


def human_then(name: str, when: str, data_schema: dict[str, Any] | None = None) -> dict[str, Any]:
    """approve (human) → done, along an edge with ``when``."""
    approve: dict[str, Any] = {"name": "approve", "type": "human"}
    if data_schema is not None:
        approve["input_schema"] = data_schema
    return {
        "name": name,
        "version": "1.0.0",
        "steps": [approve, {"name": "done", "agent": "echo"}],
        "edges": [{"from": "approve", "to": "done", "when": when}],
    }


def wait_for_status(
    server: Server, execution_id: str, statuses: set[str], user: str = "alice"
) -> dict[str, Any]:
    """The execution's view (with its steps) once its status is one of ``statuses``."""

    def reached() -> dict[str, Any] | None:
        view = server.get(f"/executions/{execution_id}?include_steps=true", user).json()
        return dict(view) if view["status"] in statuses else None

    return poll(reached, 30, f"{execution_id} to reach {sorted(statuses)}", interval=0.05)


class HealthProbe:
    """Polls /health from a thread while something else runs; the slowest answer, against the
    median of an idle minute's worth of answers taken first."""

    def __init__(self, base: str) -> None:
        self.http = httpx.Client(base_url=base, timeout=60)
        self.idle = statistics.median(self._once() for _ in range(20))
        self.slowest = 0.0
        self.answers = 0  # how many /health answers the thread has had
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _once(self) -> float:
        began = time.perf_counter()
        assert self.http.get("/health").status_code == 200
        return time.perf_counter() - began

    def _run(self) -> None:
        while not self._stop.is_set():
            self.slowest = max(self.slowest, self._once())
            self.answers += 1
            self._stop.wait(0.01)

    def __enter__(self) -> HealthProbe:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self.http.close()

    @property
    def ratio(self) -> float:
        return self.slowest / self.idle


# a stall the fixes remove is thousands of times an idle answer (6.7 s against about 2 ms); a
# busy API that still answers stays within a few dozen, and within a few hundred on a machine
# whose cores are taken by something else
STALL_RATIO = 1000


def while_probing(server: Server, action: Callable[[], httpx.Response]) -> tuple[httpx.Response, float]:
    with HealthProbe(str(server.http.base_url)) as probe:
        response = action()
        before = probe.answers
        # one more /health answered after the action's: one the action held up is counted
        poll(lambda: probe.answers > before, 30, "a /health answer after the action's", interval=0.01)
    return response, probe.ratio


# High 1: workflow names belong to someone


@pytest.fixture(scope="module")
def deployed(server: Server, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A workflow registered by the deployment (the CLI), as `wfe register` does."""
    path = tmp_path_factory.mktemp("deployed") / "shared-review.yaml"
    path.write_text("name: shared-review\nversion: 1.0.0\nsteps:\n  - {name: a, agent: echo}\n")
    registered = wfe_command(server.cluster.settings, "register", str(path))
    assert registered.returncode == 0, registered.stderr
    return "shared-review"


def test_an_operator_cannot_add_a_version_to_the_deployment_s_workflow(server: Server, deployed: str) -> None:
    hijack = {"name": deployed, "version": "9.0.0", "steps": [{"name": "a", "agent": "echo"}]}
    refused = server.post("/workflows", "alice", json=hijack)
    assert refused.status_code == 409 and "belongs to another owner" in refused.json()["detail"]
    latest = server.get(f"/workflows/{deployed}", "root").json()
    assert latest["latest_version"] == "1.0.0" and latest["versions"] == ["1.0.0"]
    started = server.post("/executions", "root", json={"workflow": deployed})
    assert started.status_code == 202
    view = server.get(f"/executions/{started.json()['execution_id']}", "root").json()
    assert view["version"] == "1.0.0"


def test_the_deployment_path_runs_only_the_deployment_s_workflows(server: Server) -> None:
    server.register({"name": "alices-own", "version": "1.0.0", "steps": [{"name": "a", "agent": "echo"}]})
    submitted = wfe_command(server.cluster.settings, "submit", "alices-own")
    assert submitted.returncode != 0 and "not found" in submitted.stderr, submitted.stderr


def test_another_user_s_name_is_refused_alike_whatever_is_registered_under_it(server: Server) -> None:
    private = {"name": "bobs-secret", "version": "1.0.0", "steps": [{"name": "a", "agent": "echo"}]}
    server.register(private, user="bob")
    answers = [
        server.post("/workflows", "alice", json=body)
        for body in (private, {**private, "description": "other"}, {**private, "version": "2.0.0"})
    ]
    assert [a.status_code for a in answers] == [409, 409, 409]
    assert len({a.json()["detail"] for a in answers}) == 1
    assert server.get("/workflows/bobs-secret", "alice").status_code == 404
    # bob goes on adding versions to his own name
    assert server.post("/workflows", "bob", json={**private, "version": "1.1.0"}).status_code == 201


# High 2: one request must not block the API for everyone


def test_a_catastrophic_pattern_neither_stalls_the_api_nor_answers_5xx(server: Server) -> None:
    server.register(
        {
            "name": "patterned",
            "version": "1.0.0",
            "steps": [{"name": "a", "agent": "echo"}],
            "input_schema": {
                "type": "object",
                "properties": {"x": {"type": "string", "pattern": "^(a|a)*$"}},
            },
        }
    )
    evil = {"workflow": "patterned", "input_data": {"x": "a" * 40 + "!"}}
    response, ratio = while_probing(server, lambda: server.post("/executions", "alice", json=evil))
    assert response.status_code == 422, response.text
    assert "could not be checked" in response.text
    assert ratio < STALL_RATIO, ratio
    fine = server.post("/executions", "alice", json={"workflow": "patterned", "input_data": {"x": "aaa"}})
    assert fine.status_code == 202


def test_a_condition_over_a_huge_completion_neither_stalls_nor_keeps_the_execution_waiting(
    server: Server,
) -> None:
    reads = " + ".join(["len(str(steps.approve.big))"] * 20)
    server.register(human_then("huge-cond", f"{reads} > 0"))
    execution = server.start("huge-cond")
    wait_for_status(server, execution, {"waiting"})
    data = {"big": ["x" * 90] * 9_000}  # about 900 KB
    response, ratio = while_probing(
        server,
        lambda: server.post(f"/executions/{execution}/steps/approve/complete", "alice", json={"data": data}),
    )
    assert response.status_code == 200, response.text
    assert ratio < STALL_RATIO, ratio
    final = wait_for_status(server, execution, {"failed", "completed"})
    assert final["status"] == "failed" and "evaluation budget" in json.dumps(final["error"])


# Medium 3: data that could be written but never read again


@pytest.mark.parametrize("field", ["input_data", "metadata"])
def test_data_nested_past_the_limit_is_refused_at_write_time(server: Server, field: str) -> None:
    server.register({"name": "deep", "version": "1.0.0", "steps": [{"name": "a", "agent": "echo"}]})
    for depth in (MAX_DEPTH + 1, 300, 900):
        refused = server.post("/executions", "alice", json={"workflow": "deep", field: nested(depth)})
        assert refused.status_code == 422, (depth, refused.text)
    accepted = server.post("/executions", "alice", json={"workflow": "deep", field: nested(MAX_DEPTH - 2)})
    assert accepted.status_code == 202, accepted.text
    assert server.get("/executions?limit=100", "root").status_code == 200
    view = server.get(f"/executions/{accepted.json()['execution_id']}", "alice")
    assert view.status_code == 200


def test_completion_data_nested_past_the_limit_is_refused_and_the_step_still_waits(server: Server) -> None:
    server.register(human_then("deep-human", "True"))
    execution = server.start("deep-human")
    wait_for_status(server, execution, {"waiting"})
    refused = server.post(
        f"/executions/{execution}/steps/approve/complete", "alice", json={"data": nested(500)}
    )
    assert refused.status_code == 422
    assert wait_for_status(server, execution, {"waiting"})["status"] == "waiting"
    assert server.get("/executions", "root").status_code == 200


def test_the_deepest_data_accepted_reads_back_in_the_execution_s_output(server: Server) -> None:
    one_step = {"name": "deep-sink", "version": "1.0.0", "steps": [{"name": "approve", "type": "human"}]}
    server.register(one_step)
    execution = server.start("deep-sink")
    wait_for_status(server, execution, {"waiting"})
    deepest = nested(MAX_DEPTH)
    done = server.post(f"/executions/{execution}/steps/approve/complete", "alice", json={"data": deepest})
    assert done.status_code == 200, done.text
    final = wait_for_status(server, execution, {"completed"})
    # the execution's output holds the step's: one level deeper than anything written
    assert final["output"] == {"approve": deepest}


def test_a_row_stored_before_the_limits_never_breaks_a_view_or_a_listing(server: Server) -> None:
    server.register({"name": "deep", "version": "1.0.0", "steps": [{"name": "a", "agent": "echo"}]})
    execution = server.start("deep")
    wait_for_status(server, execution, {"completed"})
    executions = t.executions
    with server.cluster.engine.store.transaction() as tx:  # what an older release accepted
        tx.execute(sa.update(executions).where(executions.c.id == execution).values(input=nested(300)))
    listing = server.get("/executions?limit=200", "root")
    assert listing.status_code == 200, listing.text[:300]
    view = server.get(f"/executions/{execution}?include_steps=true", "alice")
    assert view.status_code == 200 and "cannot be shown" in view.json()["input_data"]["unreadable"]


# Medium 4: expression type errors


def test_an_expression_known_to_fail_is_refused_at_registration(server: Server) -> None:
    refused = server.post("/workflows", "alice", json=human_then("bad-dict", "{[1]: 2}"))
    assert refused.status_code == 422 and "cannot be a dict key" in refused.text


def test_an_expression_failing_after_a_human_step_fails_the_step_once(server: Server) -> None:
    server.register(human_then("bad-lookup", "input[input.l] == 1"))
    execution = server.start("bad-lookup", input_data={"l": [1]})
    wait_for_status(server, execution, {"waiting"})
    completed = server.post(f"/executions/{execution}/steps/approve/complete", "alice", json={"data": {}})
    assert completed.status_code == 200, completed.text
    final = wait_for_status(server, execution, {"failed", "completed"})
    assert final["status"] == "failed" and "cannot look up a list" in json.dumps(final["error"])


def test_an_expression_failing_after_an_agent_step_fails_it_once_on_a_real_worker(
    server: Server, tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger.txt"
    server.register(
        {
            "name": "bad-after-agent",
            "version": "1.0.0",
            "steps": [{"name": "a", "agent": "echo"}, {"name": "b", "agent": "echo"}],
            "edges": [{"from": "a", "to": "b", "when": "{input.l: 1} == {}"}],
        }
    )
    execution = server.start("bad-after-agent", input_data={"l": [1]}, metadata={"ledger": str(ledger)})
    final = wait_for_status(server, execution, {"failed", "completed"})
    assert final["status"] == "failed" and "cannot be a dict key" in json.dumps(final["error"])
    assert [line[1:3] for line in ledger_lines(ledger)] == [["a", "1"]]  # once: no worker crash, no rerun
    steps = {s["name"]: s for s in final["steps"]}
    assert steps["a"]["attempts"] == 1


# Low 6, 7, 9: numbers, strings, nesting and keys the database cannot store, or that mean two things


@pytest.mark.parametrize(
    "body",
    [
        b'{"workflow": "deep", "input_data": {"x": NaN}}',
        b'{"workflow": "deep", "input_data": {"x": Infinity}}',
        b'{"workflow": "deep", "input_data": {"x": 1e309}}',
        b'{"workflow": "deep", "input_data": {"x": "\\ud800"}}',
        b'{"workflow": "deep", "metadata": {"\\udfff": 1}}',
        b'{"workflow": "deep", "workflow": "other"}',
        b'{"workflow": "deep", "input_data": {"a": 1, "a": 2}}',
    ],
)
def test_values_the_database_cannot_store_and_ambiguous_keys_are_422(server: Server, body: bytes) -> None:
    server.register({"name": "deep", "version": "1.0.0", "steps": [{"name": "a", "agent": "echo"}]})
    response = server.http.post(
        "/api/v1/executions",
        content=body,
        headers={**server.auth("alice"), "content-type": "application/json"},
    )
    assert response.status_code == 422, response.text
    assert response.json()["detail"]


@pytest.mark.parametrize(
    "definition",
    [
        {
            "name": "cfg-nan",
            "version": "1.0.0",
            "steps": [{"name": "a", "agent": "echo", "config": {"x": float("inf")}}],
        },
        {
            "name": "cfg-deep",
            "version": "1.0.0",
            "steps": [{"name": "a", "agent": "echo", "config": nested(900)}],
        },
        {
            "name": "schema-deep",
            "version": "1.0.0",
            "steps": [{"name": "a", "agent": "echo"}],
            "input_schema": {"type": "object", "properties": {"x": nested(500, {"type": "array"})}},
        },
    ],
)
def test_definitions_that_cannot_be_stored_are_422(server: Server, definition: dict[str, Any]) -> None:
    body = json.dumps(definition, allow_nan=True).encode()
    response = server.http.post(
        "/api/v1/workflows",
        content=body,
        headers={**server.auth("alice"), "content-type": "application/json"},
    )
    assert response.status_code == 422, response.text[:300]


# Low 8: token subjects


@pytest.mark.parametrize("subject", ["²", "9" * 5000, "-1", "1 ", ""])
def test_a_signed_token_with_a_strange_subject_is_401(server: Server, subject: str) -> None:
    claims = {
        "sub": subject,
        "type": "access",
        "iat": int(time.time()),
        "exp": int(time.time()) + 60,
        "role": "admin",
    }
    token = jwt.encode(claims, server.cluster.settings.jwt_secret.get_secret_value(), algorithm="HS256")
    response = server.http.get("/api/v1/executions", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401, response.text


# Low 10: redirects


def test_no_redirect_is_built_from_the_host_header(server: Server) -> None:
    response = server.http.get("/api/v1/workflows/", headers={**server.auth("alice"), "Host": "evil.example"})
    assert "evil.example" not in response.headers.get("location", "")
    # the path with a slash added is served as the path itself
    assert response.status_code == 200, response.text
    assert response.json() == server.get("/workflows", "alice").json()


# Low 11: YAML anchors


def test_a_definition_of_anchors_that_expands_past_the_limit_is_refused(
    server: Server, tmp_path: Path
) -> None:
    lines = [
        "name: laughs",
        "version: 1.0.0",
        'a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]',
    ]
    for level in range(1, 9):
        lines.append(f"a{level}: &a{level} [{', '.join([f'*a{level - 1}'] * 9)}]")
    lines += ["steps:", "  - {name: a, agent: echo, config: {laughs: *a8}}"]
    path = tmp_path / "laughs.yaml"
    path.write_text("\n".join(lines) + "\n")
    assert path.stat().st_size < 1000
    began = time.monotonic()
    registered = wfe_command(server.cluster.settings, "register", str(path))
    assert registered.returncode != 0
    assert "values in all" in registered.stderr and len(registered.stderr.strip().splitlines()) == 1
    assert time.monotonic() - began < 60
    assert server.get("/workflows/laughs", "root").status_code == 404


# Everything at once: random data and expressions at registration, start and completion


def _json_values() -> st.SearchStrategy[Any]:
    leaves = (
        st.none()
        | st.booleans()
        | st.integers(min_value=-(10**30), max_value=10**30)
        | st.floats(allow_nan=True, allow_infinity=True)
        | st.sampled_from([1e309, -1e309, 10**400])
        | st.text(alphabet=st.characters(codec=None, exclude_categories=("Cc",)), max_size=12)
        | st.sampled_from(["\ud800", "x\udfffy", "\u2028", "²", "{{", "input.x"])
    )
    shallow = st.recursive(
        leaves,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
        max_leaves=25,
    )
    return shallow | st.builds(nested, st.integers(min_value=0, max_value=400), shallow)


_EXPRESSIONS = st.lists(
    st.sampled_from(
        [
            "input.x",
            "input[input.k]",
            "{input.k: 1}",
            "[1, 2]",
            "{}",
            "1e308 * 10",
            "len(str(input))",
            "steps.approve",
            "metadata",
            "==",
            "in",
            "+",
            "*",
            "and",
            "not",
            "(",
            ")",
            "min(",
            "get(input, ",
            "'a'",
            "1",
            "0",
            "-",
            "//",
            "%",
            "str(",
            "int(",
            "round(",
            "True",
            "None",
            ",",
        ]
    ),
    min_size=1,
    max_size=8,
).map(" ".join)


def _post_json(server: Server, path: str, body: Any, user: str = "alice") -> httpx.Response:
    content = json.dumps(body, allow_nan=True).encode()
    headers = {**server.auth(user), "content-type": "application/json"}
    return server.http.post(f"/api/v1{path}", content=content, headers=headers)


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(
    value=_json_values(), expression=_EXPRESSIONS, where=st.sampled_from(["config", "input", "meta", "data"])
)
def test_random_data_and_expressions_never_answer_5xx_nor_stall_the_api(
    server: Server, value: Any, expression: str, where: str
) -> None:
    name = "fuzzed"
    server.post("/workflows", "alice", json=human_then(name, "True"))  # registered once; 409 after
    with HealthProbe(str(server.http.base_url)) as probe:
        answers = [
            _post_json(
                server,
                "/workflows",
                {
                    **human_then(f"fz-{abs(hash((expression, where))) % 10**8}", expression),
                    **({"description": "x"} if where != "config" else {}),
                    "steps": [
                        {"name": "approve", "type": "human"},
                        {"name": "done", "agent": "echo", "config": {"v": value}},
                    ],
                },
            ),
            _post_json(
                server,
                "/executions",
                {
                    "workflow": name,
                    "input_data": {"x": value} if where == "input" else {},
                    "metadata": {"m": value} if where == "meta" else {},
                },
            ),
        ]
        started = server.post("/executions", "alice", json={"workflow": name, "input_data": {"x": 1}})
        if started.status_code == 202:
            execution = started.json()["execution_id"]
            wait_for_status(server, execution, {"waiting"})
            answers.append(
                _post_json(server, f"/executions/{execution}/steps/approve/complete", {"data": {"v": value}})
            )
    assert all(a.status_code < 500 for a in answers), [(a.status_code, a.text[:200]) for a in answers]
    assert probe.ratio < STALL_RATIO, probe.ratio


# Medium 5: login has a brake (last: the address brake holds for the rest of the window)


def test_failed_logins_for_a_user_are_braked_with_retry_after(server: Server) -> None:
    for _ in range(server.cluster.settings.login_failures_per_user):
        wrong = server.http.post("/api/v1/auth/token", data={"username": "vic", "password": "wrong"})
        assert wrong.status_code == 401
    braked = server.http.post("/api/v1/auth/token", data={"username": "vic", "password": PASSWORD})
    assert braked.status_code == 429, braked.text
    assert 0 < int(braked.headers["retry-after"]) <= server.cluster.settings.login_window
    assert (
        server.http.post("/api/v1/auth/token", data={"username": "bob", "password": PASSWORD}).status_code
        == 200
    )


def _parallel_logins(server: Server, count: int, credentials: Callable[[int], dict[str, str]]) -> list[int]:
    """The answers to ``count`` logins sent at once, each on a connection of its own."""
    base = str(server.http.base_url)
    results: list[int] = []

    def login(index: int) -> None:
        with httpx.Client(base_url=base, timeout=60) as http:
            results.append(http.post("/api/v1/auth/token", data=credentials(index)).status_code)

    threads = [threading.Thread(target=login, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == count
    return results


def test_parallel_guesses_at_one_user_cannot_race_past_the_brake(server: Server) -> None:
    limit = server.cluster.settings.login_failures_per_user
    results = _parallel_logins(server, limit * 4, lambda i: {"username": "racer", "password": f"guess-{i}"})
    assert set(results) <= {401, 429}
    # every attempt is counted before its password is checked: no more than the limit are tried
    assert 0 < results.count(401) <= limit, results


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded-x", "multipart/mixed", ""]
)
def test_a_login_body_is_checked_as_json_whatever_its_content_type(server: Server, content_type: str) -> None:
    for body, says in (
        ("[" * 100_000, "nested more than"),
        (f'{{"username": "a", "username": "b", "password": "{PASSWORD}"}}', "appears twice"),
        ('{"username": "a\\u0000b", "password": "x"}', "NUL characters"),
    ):
        headers = {"content-type": content_type} if content_type else {}
        answer = server.http.post("/api/v1/auth/token", content=body, headers=headers)
        assert answer.status_code == 422 and says in answer.text, (content_type, body[:40], answer.text)


def test_parallel_logins_do_not_pass_the_address_brake(server: Server) -> None:
    limit = server.cluster.settings.login_failures_per_address
    results = _parallel_logins(server, limit + 12, lambda i: {"username": f"nobody{i}", "password": "x"})
    assert set(results) <= {401, 429}
    assert results.count(401) <= limit  # never more wrong passwords checked than the brake allows
    # the API still answers while the brake holds (how many hashes run at once is held to the
    # hashing slots in tests/api/test_auth.py, where it can be counted)
    assert server.http.get("/health").status_code == 200
    # a login refused for want of a hashing slot checked no password and counts for nothing, so
    # under load the burst may leave the address short of its limit: the next few reach it
    answers = []
    for index in range(limit + 1):
        after = server.http.post("/api/v1/auth/token", data={"username": f"someone{index}", "password": "x"})
        answers.append(after.status_code)
        if after.status_code == 429:
            break
    assert answers[-1] == 429 and int(after.headers["retry-after"]) > 0, answers
    assert results.count(401) + answers.count(401) <= limit


def test_an_expression_giving_nan_or_an_infinity_fails_its_step_in_one_clear_error(server: Server) -> None:
    """A map item's input computed as an infinity (or NaN) is no JSON value: the step fails
    with that reason; nothing non-finite reaches the database, and no worker is lost over it."""
    server.register(
        {
            "name": "non-finite",
            "version": "1.0.0",
            "steps": [
                {
                    "name": "m",
                    "type": "map",
                    "items": "input['xs']",
                    "agent": "echo",
                    "input": {"v": "item * 1e308"},
                }
            ],
        }
    )
    execution = server.start("non-finite", input_data={"xs": [10]})
    view = wait_for_status(server, execution, {"failed", "completed"})
    assert view["status"] == "failed", view
    assert "NaN or an infinity" in json.dumps(view["error"]), view["error"]
    logs = server.get(f"/executions/{execution}/logs").json()
    assert not any("worker" in json.dumps(entry.get("error") or {}).lower() for entry in logs), logs
