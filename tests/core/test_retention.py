"""Purge options, pure: ages and the statuses an execution may be purged in."""

from __future__ import annotations

from datetime import timedelta

import pytest

from workflow_engine.core.retention import PURGEABLE, parse_age, purgeable


@pytest.mark.parametrize(
    ("text", "age"),
    [
        ("30d", timedelta(days=30)),
        ("12h", timedelta(hours=12)),
        ("90m", timedelta(minutes=90)),
        (" 5 s", timedelta(seconds=5)),
        ("2w", timedelta(weeks=2)),
    ],
)
def test_ages(text: str, age: timedelta) -> None:
    assert parse_age(text) == age


@pytest.mark.parametrize("text", ["30", "d", "1.5d", "-1d", "30y", "", "99999999w"])
def test_a_bad_age_says_what_an_age_is(text: str) -> None:
    with pytest.raises(ValueError, match=r"not an age|more than"):
        parse_age(text)


def test_only_ended_statuses_are_purgeable() -> None:
    assert purgeable(None) == PURGEABLE == ("cancelled", "completed", "failed")
    assert purgeable(["failed", " cancelled", "failed"]) == ("failed", "cancelled")
    for wrong in (["running"], ["completed", "waiting"], ["paused"], [""]):
        with pytest.raises(ValueError, match="only ended executions"):
            purgeable(wrong)
