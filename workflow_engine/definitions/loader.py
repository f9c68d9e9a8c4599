"""Reading definitions from YAML or JSON text and files."""

from __future__ import annotations

import json
from collections.abc import Collection
from pathlib import Path
from typing import Any

import yaml

from workflow_engine.definitions.builder import WorkflowBuilder
from workflow_engine.definitions.model import WorkflowDefinition
from workflow_engine.definitions.validation import load_document, validate_document
from workflow_engine.errors import DefinitionError, Problem

MAX_DOCUMENT_BYTES = 5 * 1024 * 1024


class _StrictLoader(yaml.SafeLoader):
    """Safe YAML that refuses duplicate keys instead of keeping the last one silently."""


def _mapping_without_duplicates(loader: _StrictLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in seen:
            mark = key_node.start_mark
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", mark)
        seen.add(key)
    return loader.construct_mapping(node, deep=True)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_without_duplicates)


def parse_text(text: str, fmt: str = "yaml") -> Any:
    """Parse a document; raise :class:`DefinitionError` with the line and column of a syntax error."""
    if fmt == "json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise DefinitionError([Problem(f"line {exc.lineno} column {exc.colno}", exc.msg)]) from None
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1} column {mark.column + 1}" if mark else "document"
        raise DefinitionError([Problem(where, str(exc.problem or exc.context or "invalid YAML"))]) from None
    except yaml.YAMLError as exc:
        raise DefinitionError([Problem("document", f"invalid YAML: {exc}")]) from None


def read_file(path: str | Path) -> Any:
    """The parsed document in ``path`` (JSON by ``.json`` suffix, YAML otherwise)."""
    file = Path(path)
    try:
        if file.stat().st_size > MAX_DOCUMENT_BYTES:
            raise DefinitionError([Problem("document", "larger than 5 MiB")], str(file))
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise DefinitionError([Problem("", f"cannot read file: {reason}")], str(file)) from None
    try:
        return parse_text(text, "json" if file.suffix.lower() == ".json" else "yaml")
    except DefinitionError as exc:
        raise DefinitionError(exc.problems, str(file)) from None


def load_file(path: str | Path, known_agents: Collection[str] | None = None) -> WorkflowDefinition:
    """Read and validate ``path``; :class:`DefinitionError` lists every problem."""
    return load_document(read_file(path), str(path), known_agents)


def check_file(
    path: str | Path, known_agents: Collection[str] | None = None
) -> tuple[WorkflowDefinition | None, list[Problem]]:
    """Every problem in ``path`` (parse errors included), without raising."""
    try:
        raw = read_file(path)
    except DefinitionError as exc:
        return None, exc.problems
    return validate_document(raw, known_agents)


Source = WorkflowDefinition | WorkflowBuilder | dict[str, Any] | str | Path


def load(source: Source, known_agents: Collection[str] | None = None) -> WorkflowDefinition:
    """A validated definition from a model, a builder, a document, a file path, or YAML/JSON text."""
    if isinstance(source, WorkflowBuilder):
        return load_document(source.document(), source.document()["name"], known_agents)
    if isinstance(source, WorkflowDefinition):
        return load_document(source.document(), source.name, known_agents)
    if isinstance(source, dict):
        return load_document(source, None, known_agents)
    if isinstance(source, Path) or (isinstance(source, str) and "\n" not in source and _is_path(source)):
        return load_file(source, known_agents)
    return load_document(parse_text(str(source)), None, known_agents)


def _is_path(text: str) -> bool:
    return text.endswith((".yaml", ".yml", ".json")) or Path(text).is_file()
