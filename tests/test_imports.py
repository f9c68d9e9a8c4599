"""No import cycle in the package: each layer can be read, tested and replaced on its own."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import workflow_engine
from tests.support.imports import cycles, import_graph, imported_modules
from workflow_engine.core.states import ExecutionMode, ExecutionStatus, StepStatus
from workflow_engine.definitions.model import StepType

PACKAGE = Path(workflow_engine.__file__).parent


def test_the_package_has_no_import_cycle() -> None:
    graph = import_graph(PACKAGE)
    assert graph.get("workflow_engine.engine")
    assert cycles(graph) == []


def test_a_cycle_is_found_through_deferred_relative_and_type_checking_imports(
    tmp_path: Path,
) -> None:
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("")
    (package / "a.py").write_text("from pkg.sub import b\n")
    (package / "sub" / "b.py").write_text("def later():\n    from .. import c\n")
    (package / "c.py").write_text("import pkg.a\n")
    (package / "d.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg import a\n"
    )
    (package / "e.py").write_text("from pkg import d\n")
    graph = import_graph(package)
    assert graph["pkg.d"] == {"pkg.a"} and graph["pkg.e"] == {"pkg.d"}
    assert cycles(graph) == [["pkg.a", "pkg.c", "pkg.sub.b"]]
    (package / "c.py").write_text("import typing\nif typing.TYPE_CHECKING:\n    import pkg.a\n")
    assert cycles(import_graph(package)) == [["pkg.a", "pkg.c", "pkg.sub.b"]]


# what decides: it reads facts and returns changes, so it may reach no I/O; the core it builds on
DECIDERS = sorted(
    f"workflow_engine.{package}.{path.stem}"
    for package in ("decisions", "core")
    for path in (PACKAGE / package).glob("*.py")
    if path.stem != "__init__"
)
PLAIN_STORE = {"workflow_engine.store.records", "workflow_engine.store.urls"}
IO = {"sqlalchemy", "psycopg", "psycopg2", "celery", "kombu", "redis", "httpx", "fastapi"}


def reached(graph: dict[str, set[str]], start: str) -> set[str]:
    seen: set[str] = set()
    stack = [start]
    while stack:
        name = stack.pop()
        if name not in seen:
            seen.add(name)
            stack.extend(graph[name])
    return seen


def test_the_decisions_and_the_core_reach_no_store_broker_or_process() -> None:
    graph = import_graph(PACKAGE)
    allowed = ("workflow_engine.core.", "workflow_engine.definitions.", "workflow_engine.decisions.")
    assert "workflow_engine.decisions.unit" in DECIDERS and "workflow_engine.core.planner" in DECIDERS
    for name in DECIDERS:
        modules = reached(graph, name)
        outside = {
            module
            for module in modules - PLAIN_STORE - {"workflow_engine.errors", "workflow_engine.settings"}
            if not module.startswith(allowed)
        }
        assert outside == set(), name
        io = {
            module: found
            for module in modules
            if (found := {m.split(".")[0] for m in imported_modules(module_path(module), runtime=True)} & IO)
        }
        assert io == {}, name


def module_path(module: str) -> Path:
    relative = Path(*module.split(".")[1:])
    path = PACKAGE / relative.with_suffix(".py")
    return path if path.exists() else PACKAGE / relative / "__init__.py"


def test_sql_is_written_only_in_the_store() -> None:
    outside = {
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if "store" not in path.relative_to(PACKAGE).parts
        and any(name.split(".")[0] == "sqlalchemy" for name in imported_modules(path))
    }
    assert outside == set()


def test_status_and_type_words_in_sql_come_from_the_state_machine() -> None:
    words = {
        f"'{value}'" for enum in (ExecutionStatus, StepStatus, StepType, ExecutionMode) for value in enum
    }
    written = {
        str(path.relative_to(PACKAGE)): [word for word in words if word in path.read_text()]
        for path in (PACKAGE / "store").glob("*.py")
    }
    assert {name: found for name, found in written.items() if found} == {}


def test_the_command_line_loads_no_metrics_library_before_a_worker_sets_its_folder() -> None:
    """prometheus_client reads its multiprocess folder when imported: `wfe worker` sets it
    first, so neither the command line nor the engine it opens may import it on load."""
    loaded = "import sys, workflow_engine.cli.main, workflow_engine.engine"
    probe = f"{loaded}; print('prometheus_client' in sys.modules)"
    found = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert found.stdout.strip() == "False"
