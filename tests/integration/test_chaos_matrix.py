"""The chaos matrix's short subset (`make chaos` runs it all): PostgreSQL restarted mid-run,
and a worker cut from PostgreSQL in its own network namespace; nothing is lost either way."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.chaos.matrix import cases, run_case
from tests.conftest import unavailable

pytestmark = [pytest.mark.slow, pytest.mark.chaos]

EXECUTIONS = 40


def case(word: str, **options: float) -> object:
    return next(c for c in cases(**options) if word in c.name)


@pytest.mark.timeout(420)
def test_a_postgresql_restart_mid_run_loses_nothing(tmp_path: Path) -> None:
    row = run_case(case("restarted (pg_ctl"), EXECUTIONS, tmp_path)  # type: ignore[arg-type]
    assert row.passed, row
    assert row.statuses == {"completed": EXECUTIONS}


@pytest.mark.timeout(420)
def test_a_worker_cut_from_postgresql_loses_nothing(tmp_path: Path) -> None:
    if os.geteuid() != 0 or shutil.which("ip") is None:
        unavailable("network namespaces need root and iproute2's ip")
    row = run_case(case("cut from PostgreSQL", partition_seconds=10), EXECUTIONS, tmp_path)  # type: ignore[arg-type]
    assert row.passed, row
    assert row.statuses == {"completed": EXECUTIONS}
