"""What changed between two versions of a workflow, and whether the change breaks anything.

A change breaks when an execution or a caller of the old version could not carry on with the
new one: a step removed or given another type (an execution that has run it could not be moved
to the new version), or an input schema that accepts less than before (a caller's input that was
good would be refused). Steps and edges added, an agent replaced, or a schema that accepts more
are reported and break nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from workflow_engine.definitions.model import WorkflowDefinition

# bounds a schema may set: a higher lower bound, or a lower upper bound, accepts less
_LOWER_BOUNDS = ("minimum", "exclusiveMinimum", "minLength", "minItems", "minProperties")
_UPPER_BOUNDS = ("maximum", "exclusiveMaximum", "maxLength", "maxItems", "maxProperties")


@dataclass(frozen=True)
class Change:
    kind: str  # step added|removed|retyped|agent, edge added|removed, input narrowed|widened
    subject: str
    detail: str
    breaking: bool

    def line(self) -> str:
        return f"{self.kind} {self.subject}: {self.detail}{' (breaking)' if self.breaking else ''}"

    def document(self) -> dict[str, Any]:
        return {"kind": self.kind, "subject": self.subject, "detail": self.detail, "breaking": self.breaking}


def compare(old: WorkflowDefinition, new: WorkflowDefinition) -> list[Change]:
    """Every change from ``old`` to ``new``: steps, then edges, then the input schema."""
    changes: list[Change] = []
    before, after = old.steps_by_name, new.steps_by_name
    for name, step in after.items():
        if name not in before:
            changes.append(Change("step added", name, f"a new {step.type.value} step", False))
    for name, step in before.items():
        if name not in after:
            changes.append(Change("step removed", name, f"the {step.type.value} step is gone", True))
            continue
        now = after[name]
        if now.type is not step.type:
            changes.append(Change("step retyped", name, f"{step.type.value} → {now.type.value}", True))
        elif (now.served_as, now.workflow) != (step.served_as, step.workflow):
            was, becomes = step.served_as or step.workflow, now.served_as or now.workflow
            changes.append(Change("step runs", name, f"{was} → {becomes}", False))
    old_edges = {(e.source, e.target, e.when) for e in old.flow}
    new_edges = {(e.source, e.target, e.when) for e in new.flow}
    for kind, edges in (("edge added", new_edges - old_edges), ("edge removed", old_edges - new_edges)):
        for source, target, when in sorted(edges, key=lambda e: (e[0], e[1], e[2] or "")):
            changes.append(Change(kind, f"{source} → {target}", f"when {when}" if when else "always", False))
    for narrowed, where, detail in schema_changes(old.input_schema, new.input_schema, "input"):
        kind = "input narrowed" if narrowed else "input widened"
        changes.append(Change(kind, where, detail, narrowed))
    return changes


def migration_problems(old: WorkflowDefinition, new: WorkflowDefinition, ran: Iterable[str]) -> list[str]:
    """Why an execution of ``old`` that has run (or is running) the steps ``ran`` cannot move to
    ``new``: each such step must be there, with the same type."""
    problems = []
    for name in sorted(set(ran)):
        step = old.steps_by_name.get(name)
        there = new.steps_by_name.get(name)
        if there is None:
            problems.append(f"step {name!r} has run and version {new.version} has no such step")
        elif step is not None and there.type is not step.type:
            problems.append(
                f"step {name!r} has run as a {step.type.value} step and is a {there.type.value} step"
                f" in version {new.version}"
            )
    return problems


def breaking(changes: list[Change]) -> list[Change]:
    return [change for change in changes if change.breaking]


def schema_changes(old: Any, new: Any, where: str) -> list[tuple[bool, str, str]]:
    """How the JSON Schema ``new`` accepts less (True) or more (False) than ``old``, as
    (narrowed, where, what): types, required properties, properties, enums, bounds and
    ``additionalProperties``, recursively into properties and items."""
    if old == new:
        return []
    if not isinstance(old, Mapping) or not old:
        return [(True, where, "now checked by a schema")] if isinstance(new, Mapping) and new else []
    if not isinstance(new, Mapping) or not new:
        return [(False, where, "no longer checked by a schema")]
    found: list[tuple[bool, str, str]] = []
    found += _types(old, new, where)
    old_required, new_required = set(old.get("required", ())), set(new.get("required", ()))
    found += [(True, f"{where}.{n}", "now required") for n in sorted(new_required - old_required)]
    found += [(False, f"{where}.{n}", "no longer required") for n in sorted(old_required - new_required)]
    old_props, new_props = old.get("properties") or {}, new.get("properties") or {}
    closed_before, closed_after = (
        old.get("additionalProperties") is False,
        new.get("additionalProperties") is False,
    )
    for name in sorted(set(old_props) | set(new_props)):
        if name not in new_props:
            if closed_after:
                found.append((True, f"{where}.{name}", "no longer accepted"))
        elif name not in old_props:
            if closed_before or name not in new_required:
                found.append((False, f"{where}.{name}", "a new property"))
        else:
            found += schema_changes(old_props[name], new_props[name], f"{where}.{name}")
    if closed_after and not closed_before:
        found.append((True, where, "no longer accepts other properties"))
    elif closed_before and not closed_after:
        found.append((False, where, "now accepts other properties"))
    found += _enum(old, new, where)
    found += _bounds(old, new, where)
    if "items" in old or "items" in new:
        found += schema_changes(old.get("items"), new.get("items"), f"{where}[]")
    return found


def _type_set(schema: Mapping[str, Any]) -> set[str] | None:
    given = schema.get("type")
    if given is None:
        return None
    types = {given} if isinstance(given, str) else set(given)
    return types | {"integer"} if "number" in types else types


def _types(old: Mapping[str, Any], new: Mapping[str, Any], where: str) -> list[tuple[bool, str, str]]:
    before, after = _type_set(old), _type_set(new)
    if before == after:
        return []
    described = f"type {old.get('type', 'any')} → {new.get('type', 'any')}"
    if after is None:
        return [(False, where, described)]
    if before is None or not before <= after:
        return [(True, where, described)]
    return [(False, where, described)]


def _enum(old: Mapping[str, Any], new: Mapping[str, Any], where: str) -> list[tuple[bool, str, str]]:
    before, after = old.get("enum"), new.get("enum")
    if before == after:
        return []
    if after is None:
        return [(False, where, "any value, no longer an enumeration")]
    if before is None:
        return [(True, where, f"now one of {after}")]
    dropped = [value for value in before if value not in after]
    added = [value for value in after if value not in before]
    found = [(True, where, f"no longer accepts {dropped}")] if dropped else []
    return found + ([(False, where, f"now also accepts {added}")] if added else [])


def _bounds(old: Mapping[str, Any], new: Mapping[str, Any], where: str) -> list[tuple[bool, str, str]]:
    found = []
    for key in (*_LOWER_BOUNDS, *_UPPER_BOUNDS):
        before, after = old.get(key), new.get(key)
        if before == after or isinstance(before, bool) or isinstance(after, bool):
            continue
        lower = key in _LOWER_BOUNDS
        if before is None or after is None:
            narrowed = before is None  # a bound added accepts less, one removed more
        else:
            narrowed = after > before if lower else after < before
        found.append((narrowed, where, f"{key} {_shown(before)} → {_shown(after)}"))
    return found


def _shown(bound: Any) -> str:
    return "none" if bound is None else str(bound)
