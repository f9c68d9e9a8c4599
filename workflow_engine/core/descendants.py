"""How many child executions one top-level start may make: the tree's allowance is fixed when
its first child starts (``WFE_MAX_DESCENDANTS``), and each child, grandchild, ... takes one.

The depth limit alone bounds a tree only by K^depth (two workflows whose maps start each other,
K items a level); this bounds it by a number. The store keeps the count on one row per tree and
applies :func:`may_start` as a guarded increment, so that concurrent starts cannot pass it.
"""

from __future__ import annotations

CODE = "DESCENDANT_LIMIT"
KIND = "descendant_limit"


def may_start(started: int, room: int) -> bool:
    """Whether a tree that has started ``started`` children of its ``room`` may start one more."""
    return started < room


def refusal(root_id: str, room: int) -> str:
    """Why a child was not started: its tree has used its allowance."""
    return (
        f"{CODE}: execution {root_id} and its children have started {room} child execution(s), "
        f"the most one top-level execution may (WFE_MAX_DESCENDANTS)"
    )
