"""No import cycle in the package: each layer can be read, tested and replaced on its own."""

from __future__ import annotations

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
