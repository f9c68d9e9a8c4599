"""A run stores only its own input, on real processes (a worker and a coordinator, Redis,
PostgreSQL): a chain and a map over a large input leave the step runs' inputs empty, and every
agent is given the execution's input."""

from __future__ import annotations

import base64
import json
import random

import pytest
import sqlalchemy as sa

from tests.integration.conftest import Cluster
from workflow_engine.definitions import WorkflowBuilder
from workflow_engine.store import schema as t

pytestmark = pytest.mark.slow

# some 400 KB that compression does not shrink (a copy stored would take as much)
LARGE = {"n": 5, "customer": "ann", "blob": base64.b64encode(random.Random(7).randbytes(300_000)).decode()}


def stored_input_bytes(cluster: Cluster, execution_id: str) -> int:
    """The bytes the execution's step runs take for their inputs."""
    query = sa.text(
        f"SELECT COALESCE(sum(pg_column_size(input)), 0) FROM {t.step_runs.name} WHERE execution_id = :id"
    )
    with cluster.engine.store.reading() as conn:
        return int(conn.execute(query, {"id": execution_id}).scalar_one())


def test_a_chain_and_a_map_over_a_large_input_store_no_copy_of_it(redis_cluster: Cluster) -> None:
    engine = redis_cluster.engine
    engine.register(
        WorkflowBuilder("big-chain")
        .agent("a", "measure")
        .agent("b", "measure", after="a")
        .agent("c", "measure", after="b")
    )
    engine.register(
        WorkflowBuilder("big-map")
        .agent("source", "lister")
        .map("each", "steps.source.items", agent="measure", after="source")
        .agent("after", "measure", after="each")
    )
    whole = len(json.dumps(LARGE))
    for workflow, agents in (("big-chain", 3), ("big-map", 7)):
        view = engine.start(workflow, input_data=LARGE)
        final = redis_cluster.wait(view.id)
        assert final.status == "completed", final
        logs = engine.logs(view.id)
        attempts = [r for r in logs if r["step_type"] == "agent"]
        assert len(attempts) == agents
        assert all(r["input_data"] == LARGE for r in attempts)
        measured = [r["output_data"] for r in attempts if r["step_name"] != "source"]  # (the lister's)
        assert measured == [{"input_chars": whole, "customer": "ann"}] * (agents - (workflow == "big-map"))
        stored = stored_input_bytes(redis_cluster, view.id)
        assert stored < 1_000, f"{workflow}: the step runs' inputs take {stored} bytes"  # (one copy: ~400 KB)
