"""The store contract, run on SQLite and on PostgreSQL."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from workflow_engine.definitions import WorkflowBuilder
from workflow_engine.errors import Conflict, DefinitionExists, NameTaken, UserNotFound, WorkflowNotFound
from workflow_engine.store import schema as t
from workflow_engine.store.logins import LoginFailures
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


def test_a_name_belongs_to_whoever_registered_its_first_version(store: Store) -> None:
    alice = store.create_user("alice", "hash", "operator").id
    bob = store.create_user("bob", "hash", "operator").id
    store.register_workflow(definition("shared"))  # the deployment's
    store.register_workflow(definition("mine"), created_by=alice)
    for name, intruder in (("shared", alice), ("mine", bob), ("mine", None)):
        with pytest.raises(NameTaken):
            store.register_workflow(definition(name, "9.0.0"), created_by=intruder)
        with pytest.raises(NameTaken):  # the same body as the owner's: the same answer
            store.register_workflow(definition(name), created_by=intruder)
    assert store.register_workflow(definition("mine", "1.1.0"), created_by=alice)[1]
    assert store.get_workflow("shared").version == "1.0.0"
    assert [r.version for r in store.list_workflows(name="mine")] == ["1.1.0", "1.0.0"]


def test_latest_is_chosen_among_the_owner_s_versions_only(store: Store) -> None:
    """Versions registered under another user's name before names were owned (migration 0005
    gives each name to its oldest version's author) never run."""
    alice = store.create_user("alice", "hash", "operator").id
    store.register_workflow(definition("legacy"))
    with store.transaction() as tx:  # what an older release let an operator write
        tx.execute(
            sa.insert(t.workflows).values(
                name="legacy",
                version="9.0.0",
                description="",
                document=definition("legacy", "9.0.0").document(),
                digest="x",
                created_by=alice,
                created_at=datetime.now(UTC),
            )
        )
    assert store.get_workflow("legacy").version == "1.0.0"
    assert store.get_workflow("legacy", visible_to=alice).version == "1.0.0"
    assert [r.version for r in store.list_workflows()] == ["1.0.0"]
    with pytest.raises(WorkflowNotFound):
        store.get_workflow("legacy", "9.0.0")


def test_failed_logins_are_counted_by_user_and_address_and_forgotten_after_the_window(store: Store) -> None:
    failures = LoginFailures(store)
    window = store.clock.now() - timedelta(minutes=5)
    for user, address in (("vic", "10.0.0.1"), ("vic", "10.0.0.2"), ("eve", "10.0.0.1")):
        failures.note(user, address, since=window)
    noted = failures.note("vic", "10.0.0.1", since=window)
    assert len(noted.by_user) == 2 and len(noted.by_address) == 2 and noted.by_user == sorted(noted.by_user)
    failures.succeed(noted.attempt, "vic")  # vic's right password: vic's failures are forgotten
    later = failures.note("vic", "10.0.0.1", since=window)
    assert (later.by_user, later.by_address) == ([], noted.by_address[1:])
    failures.forget(later.attempt)  # refused before its password was checked: it counts for nothing
    failures.note("zed", "10.0.0.9", since=store.clock.now() + timedelta(minutes=1))
    last = failures.note("eve", "10.0.0.1", since=window)
    assert (last.by_user, last.by_address) == ([], [])


def test_attempts_noted_at_once_each_count_all_those_before_them(store: Store) -> None:
    failures = LoginFailures(store)
    window = store.clock.now() - timedelta(minutes=5)
    with ThreadPoolExecutor(max_workers=8) as pool:
        counts = sorted(pool.map(lambda _: len(failures.note("mob", "10.0.0.5", window).by_user), range(16)))
    assert counts == list(range(16))  # no two attempts missed each other
