"""What the schedule routes answer besides :class:`~workflow_engine.api.schemas.ScheduleOut`:
its owner and the fire times that started nothing."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from workflow_engine.api.schemas import ScheduleOut


class NotStartedOut(BaseModel):
    """Fire times that started nothing: one, or a run of them (missed, paused) from
    ``scheduled_at`` to ``until``, ``count`` of them (null: more than could be counted)."""

    scheduled_at: datetime
    until: datetime
    count: int | None
    action: str = Field(description="skipped, missed, paused or failed")
    reason: str | None


class ScheduleViewOut(ScheduleOut):
    owner: str | None = Field(
        default=None, description="who the schedule belongs to (names are unique per owner)"
    )
    skipped_fires: list[NotStartedOut] = Field(
        default_factory=list, description="the latest fire times that started nothing, newest first"
    )
