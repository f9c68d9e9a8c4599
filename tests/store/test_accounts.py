"""Users' administration and what a token needs checked, on every store: a disabled user's
schedules paused with why, every token of a user revoked at once, a login's family revoked, a
user who owns something kept, and successful logins counted by the login brake."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from workflow_engine import users
from workflow_engine.errors import AuthenticationFailed, Conflict, PermissionDenied, TooManyAttempts
from workflow_engine.settings import Settings
from workflow_engine.store import schema as t
from workflow_engine.store.repository import Store

PASSWORD = "a long enough password"


def claims(store: Store, name: str, family: str = "f" * 32, generation: int | None = None) -> dict[str, Any]:
    user = store.get_user(name)
    gen = users.generation(store, user.id) if generation is None else generation
    return {"sub": str(user.id), "gen": gen, "fam": family}


def schedule(store: Store, name: str, owner: str) -> None:
    with store.transaction() as tx:
        values = {
            "name": name,
            "owner_id": store.get_user(owner).id,
            "workflow": "w",
            "every": 60,
            "timezone": "UTC",
            "overlap": "skip",
            "catchup_window": 0,
            "paused": False,
            "created_at": tx.now,
            "updated_at": tx.now,
            "next_fire_at": tx.now,
        }
        tx.execute(sa.insert(t.schedules).values(values))


def test_disabling_revokes_every_token_and_pauses_schedules_with_why(store: Store) -> None:
    users.create_user(store, "root", PASSWORD, "admin")
    users.create_user(store, "dora", PASSWORD, "operator")
    schedule(store, "nightly", "dora")
    before = claims(store, "dora")
    assert users.token_user(store, before).username == "dora"
    info = users.set_disabled(store, "dora", True, "admin root")
    assert info.disabled and info.paused_schedules == ("nightly",)
    with pytest.raises(AuthenticationFailed):
        users.token_user(store, before)
    with pytest.raises(PermissionDenied, match="disabled"):
        users.may_start(store, store.get_user("dora").id)
    users.set_disabled(store, "dora", False, "admin root")
    with pytest.raises(AuthenticationFailed, match="revoked"):
        users.token_user(store, before)  # enabled again: the old generation stays refused
    assert users.token_user(store, claims(store, "dora")).username == "dora"
    with store.reading() as db:
        change = db.execute(sa.select(t.schedule_changes)).first()
    assert change is not None and change.action == "paused" and change.actor == "admin root"
    assert "disabled" in change.details["reason"]


def test_a_revoked_family_refuses_its_tokens_only(store: Store) -> None:
    users.create_user(store, "max", PASSWORD, "operator")
    stolen, other = claims(store, "max", "a" * 32), claims(store, "max", "b" * 32)
    users.revoke_family(store, "a" * 32, int(stolen["sub"]), store.clock.now())
    with pytest.raises(AuthenticationFailed, match="revoked"):
        users.token_user(store, stolen)
    assert users.token_user(store, other).username == "max"
    users.revoke_family(store, "a" * 32, int(stolen["sub"]), store.clock.now())  # twice: no change


def test_the_last_admin_stays_and_an_owner_is_not_deleted(store: Store) -> None:
    users.create_user(store, "root", PASSWORD, "admin")
    users.create_user(store, "fay", PASSWORD, "operator")
    schedule(store, "fay-hourly", "fay")
    with pytest.raises(Conflict, match="last active admin"):
        users.set_role(store, "root", "viewer", "command line")
    with pytest.raises(Conflict, match="disable"):
        users.delete_user(store, "fay", "command line")
    users.create_user(store, "gus", PASSWORD, "viewer")
    users.delete_user(store, "gus", "command line")
    assert [u.username for u in users.list_users(store)] == ["fay", "root"]


def test_successful_logins_are_counted_and_braked_per_user(store: Store) -> None:
    users.create_user(store, "kim", PASSWORD, "operator")
    brake = users.LoginBrake(store, Settings(login_successes_per_user=2, login_failures_per_user=2))
    for _ in range(2):
        brake.verify(brake.admit("kim", "10.0.0.1"), "kim", PASSWORD)
    with pytest.raises(TooManyAttempts, match="too many logins") as braked:
        brake.admit("kim", "10.0.0.1")
    assert braked.value.retry_after > 0
    # successes are not failures: the failure brake of the user and the address is untouched
    attempt = brake.admit("lee", "10.0.0.1")
    with pytest.raises(AuthenticationFailed):
        brake.verify(attempt, "lee", "wrong")
    brake.admit("lee", "10.0.0.1")
