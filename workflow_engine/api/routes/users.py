"""Users, for admins: list, disable or enable, change the role, set a password, revoke every
token, delete (one who owns nothing). The command line's `wfe users` calls the same functions."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from workflow_engine import users
from workflow_engine.api.deps import EngineDep, User
from workflow_engine.api.schemas import ErrorOut, Strict
from workflow_engine.errors import InputError, Problem
from workflow_engine.users import UserInfo

router = APIRouter(prefix="/users", tags=["users"])
ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorOut} for code in (401, 403, 404, 409, 422)}
Username = Annotated[str, Path(min_length=1, max_length=150)]


class UserOut(BaseModel):
    username: str
    role: str
    disabled: bool
    created_at: datetime
    paused_schedules: list[str] = Field(description="the schedules this change paused")

    @classmethod
    def of(cls, info: UserInfo) -> UserOut:
        return cls.model_validate(info.as_dict())


class UserChange(Strict):
    """What to change: ``disabled`` and/or ``role``."""

    disabled: bool | None = None
    role: Literal["admin", "operator", "viewer"] | None = None


class PasswordChange(Strict):
    password: str = Field(min_length=1, max_length=1024)


def _actor(user: Any) -> str:
    return f"admin {user.username}"


@router.get("", response_model=list[UserOut], responses=ERRORS)
async def listing(user: User, engine: EngineDep) -> list[UserOut]:
    """Every user, by name, with their role and whether they are disabled."""
    user.require("admin")
    return [UserOut.of(info) for info in await run_in_threadpool(users.list_users, engine.store)]


@router.patch("/{username}", response_model=UserOut, responses=ERRORS)
async def change(user: User, engine: EngineDep, username: Username, body: UserChange) -> UserOut:
    """Disable or enable a user, or change their role. A disabled user's tokens are refused at
    once; a disabled user's or a viewer's schedules are paused (listed in the answer)."""
    user.require("admin")
    if body.disabled is None and body.role is None:
        raise InputError("user change", [Problem("body", "give disabled, role, or both")])
    paused: list[str] = []
    info = None
    if body.role is not None:
        info = await run_in_threadpool(users.set_role, engine.store, username, body.role, _actor(user))
        paused += info.paused_schedules
    if body.disabled is not None:
        info = await run_in_threadpool(
            users.set_disabled, engine.store, username, body.disabled, _actor(user)
        )
        paused += info.paused_schedules
    assert info is not None
    return UserOut.of(UserInfo(info.username, info.role, info.disabled, info.created_at, tuple(paused)))


@router.post("/{username}/password", response_model=UserOut, responses=ERRORS)
async def password(user: User, engine: EngineDep, username: Username, body: PasswordChange) -> UserOut:
    """Set a user's password; every token issued before is refused from now on."""
    user.require("admin")
    info = await run_in_threadpool(users.set_password, engine.store, username, body.password, _actor(user))
    return UserOut.of(info)


@router.post("/{username}/revoke", response_model=UserOut, responses=ERRORS)
async def revoke(user: User, engine: EngineDep, username: Username) -> UserOut:
    """Log a user out everywhere: every access and refresh token of theirs is refused."""
    user.require("admin")
    return UserOut.of(await run_in_threadpool(users.revoke_tokens, engine.store, username, _actor(user)))


@router.delete("/{username}", status_code=204, responses=ERRORS)
async def delete(user: User, engine: EngineDep, username: Username) -> Response:
    """Delete a user who owns nothing; one who owns executions, workflows or schedules is refused
    (409): disable them instead."""
    user.require("admin")
    await run_in_threadpool(users.delete_user, engine.store, username, _actor(user))
    return Response(status_code=204)
