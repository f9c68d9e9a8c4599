"""Error fingerprints, pure: what varies between occurrences is masked, the rest is kept, and the
group id is stable."""

from __future__ import annotations

import pytest

from workflow_engine.core.error_groups import group_id, mask


@pytest.mark.parametrize(
    ("message", "masked"),
    [
        ("upstream 503 for order-42 after 3.5 s", "upstream <n> for <id> after <n> s"),
        ("no such key 'abc/def' in bucket", "no such key <id> in bucket"),
        ('field "email" is required', "field <id> is required"),
        ("run 6a7b8c9d-1234-4abc-8def-0123456789ab failed", "run <id> failed"),
        ("object 1f0e2d3c4b5a6978 gone", "object <id> gone"),
        ("timeout after 30s", "timeout after <n>"),
        ("Connection   refused\n", "Connection refused"),
        (None, ""),
    ],
)
def test_the_variable_parts_of_a_message_are_masked(message: str | None, masked: str) -> None:
    assert mask(message) == masked


def test_two_occurrences_of_one_problem_share_a_group_and_others_do_not() -> None:
    one = group_id("w", "s", "TransientError", "E1", mask("upstream 503 for order-42"))
    two = group_id("w", "s", "TransientError", "E1", mask("upstream 502 for order-77"))
    assert one == two and len(one) == 16
    assert one != group_id("w", "other", "TransientError", "E1", mask("upstream 503 for order-42"))
    assert one != group_id("w", "s", "FatalError", "E1", mask("upstream 503 for order-42"))
    assert one != group_id("w", "s", "TransientError", None, mask("upstream 503 for order-42"))
