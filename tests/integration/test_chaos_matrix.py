"""The chaos matrix's short subset (`make chaos` runs it all): PostgreSQL stopped and started
mid-run while start requests arrive by message, and a worker cut from PostgreSQL in its own
network namespace; nothing is lost either way."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.chaos.matrix import cases, run_case
from tests.conftest import unavailable

pytestmark = [pytest.mark.slow, pytest.mark.chaos, pytest.mark.long]

EXECUTIONS = 40


def case(word: str, **options: float) -> object:
    return next(c for c in cases(**options) if word in c.name)


@pytest.mark.timeout(420)
def test_a_worker_cut_from_postgresql_loses_nothing(tmp_path: Path) -> None:
    if os.geteuid() != 0 or shutil.which("ip") is None:
        unavailable("network namespaces need root and iproute2's ip")
    row = run_case(case("cut from PostgreSQL", partition_seconds=8), EXECUTIONS, tmp_path)  # type: ignore[arg-type]
    assert row.passed, row
    assert row.statuses == {"completed": EXECUTIONS}


@pytest.mark.timeout(420)
def test_a_postgresql_restart_loses_nothing_and_start_requests_sent_meanwhile_start(tmp_path: Path) -> None:
    """The requests were lost before: the intake task failed on the database and its message
    was acknowledged."""
    row = run_case(case("stopped for", outage_seconds=5), 10, tmp_path)  # type: ignore[arg-type]
    assert row.passed, row
    assert row.statuses == {"completed": 15}  # the 10 started first, and the 5 sent meanwhile
    assert row.tracebacks_logged == 0 and row.outage_lines > 0
