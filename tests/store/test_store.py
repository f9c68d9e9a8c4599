"""The store contract, run on SQLite and on PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from workflow_engine.definitions import WorkflowBuilder
from workflow_engine.errors import Conflict, DefinitionExists, UserNotFound, WorkflowNotFound
from workflow_engine.store.repository import Store


def definition(name: str = "wf", version: str = "1.0.0", agent: str = "x"):
    return WorkflowBuilder(name, version=version).agent("a", agent).agent("b", "y").build()


def test_registering_the_same_body_twice_changes_nothing(store: Store) -> None:
    first, created = store.register_workflow(definition())
    again, created_again = store.register_workflow(definition())
    assert created and not created_again
    assert again.id == first.id
    assert len(store.list_workflows()) == 1


def test_a_registered_version_is_immutable(store: Store) -> None:
    store.register_workflow(definition())
    with pytest.raises(DefinitionExists, match="immutable"):
        store.register_workflow(definition(agent="other"))
    assert store.get_workflow("wf").document["steps"][0]["agent"] == "x"


def test_latest_version_is_the_highest_semantic_version(store: Store) -> None:
    for version in ("1.9.0", "1.10.0", "1.2.3", "2.0.0-rc.1"):
        store.register_workflow(definition(version=version))
    assert store.get_workflow("wf").version == "2.0.0-rc.1"
    assert store.get_workflow("wf", "1.9.0").version == "1.9.0"
    assert [r.version for r in store.list_workflows()] == ["2.0.0-rc.1", "1.10.0", "1.9.0", "1.2.3"]


def test_unknown_workflow_or_version_is_not_found(store: Store) -> None:
    store.register_workflow(definition())
    with pytest.raises(WorkflowNotFound):
        store.get_workflow("nope")
    with pytest.raises(WorkflowNotFound):
        store.get_workflow("wf", "9.9.9")


def test_workflows_are_visible_to_their_owner_and_system_ones_to_everyone(store: Store) -> None:
    alice = store.create_user("alice", "hash", "operator")
    bob = store.create_user("bob", "hash", "operator")
    store.register_workflow(definition("shared"))
    store.register_workflow(definition("private"), created_by=alice.id)
    assert {r.name for r in store.list_workflows(visible_to=alice.id)} == {"shared", "private"}
    assert {r.name for r in store.list_workflows(visible_to=bob.id)} == {"shared"}
    with pytest.raises(WorkflowNotFound):
        store.get_workflow("private", visible_to=bob.id)


def test_users_are_unique_and_the_system_user_exists_without_a_password(store: Store) -> None:
    system = store.get_user("system")
    assert system.password_hash is None and system.role == "admin"
    assert store.system_user_id() == system.id
    created = store.create_user("carol", "argon2-hash", "viewer")
    assert store.get_user_by_id(created.id).username == "carol"
    with pytest.raises(Conflict, match="exists already"):
        store.create_user("carol", "x", "viewer")
    with pytest.raises(UserNotFound):
        store.get_user("dave")
    with pytest.raises(ValueError, match="role"):
        store.create_user("erin", "x", "superuser")


def test_times_come_back_as_aware_utc(store: Store) -> None:
    before = datetime.now(UTC)
    record, _ = store.register_workflow(definition())
    assert record.created_at.tzinfo is not None
    assert abs((record.created_at - before).total_seconds()) < 60
