"""What data the engine stores: JSON that every database and every reader can take back.

Checked before anything is written (execution input and metadata, human task data, step
outputs and checkpoints, definitions), so that a value accepted once can always be read again:
nested at most :data:`MAX_DEPTH` levels (the API and the JSON encoders serialise far deeper,
but not without bound), numbers finite (PostgreSQL's JSONB has no NaN or Infinity, and
``1e309`` reads as Infinity), strings that are valid Unicode (a lone surrogate such as
``"\\ud800"`` has no UTF-8 form), keys that are strings, and at most ``max_nodes`` values in
all when a limit is given (a YAML file of anchors expands a few hundred bytes into millions).
The walk is iterative: no input can exhaust the interpreter's recursion limit.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from workflow_engine.errors import Problem

MAX_DEPTH = 64
# what a reader accepts: the engine nests stored values a few levels deeper (an execution's
# output holds each final step's under its name), and every encoder takes far more than this
READ_DEPTH = MAX_DEPTH + 8
# what no stored string may hold: a NUL (PostgreSQL stores none in text or JSONB), or a
# surrogate (alone, it has no UTF-8 form)
_NOT_STORABLE = re.compile("[\x00\ud800-\udfff]")


def _where(path: tuple[str | int, ...]) -> str:
    return "/".join(str(p) for p in path) or "(root)"


def payload_problem(value: Any, max_depth: int = MAX_DEPTH, max_nodes: int | None = None) -> Problem | None:
    """The first reason ``value`` cannot be stored, with where it is; None if it can."""
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(value, ())]
    seen = 0
    while stack:
        item, path = stack.pop()
        seen += 1
        if max_nodes is not None and seen > max_nodes:
            return Problem("(root)", f"more than {max_nodes} values in all (expanded)")
        if len(path) > max_depth:
            return Problem(_where(path[:max_depth]), f"nested more than {max_depth} levels deep")
        if item is None or isinstance(item, (bool, int)):
            continue
        if isinstance(item, float):
            if not math.isfinite(item):
                return Problem(_where(path), f"{item} is not a number JSON can store (finite numbers only)")
        elif isinstance(item, str):
            if _NOT_STORABLE.search(item):
                return Problem(_where(path), "a string with a NUL or a lone surrogate (not storable Unicode)")
        elif isinstance(item, Mapping):
            for key, child in item.items():
                if not isinstance(key, str):
                    return Problem(_where(path), f"keys must be strings, not {type(key).__name__}")
                if _NOT_STORABLE.search(key):
                    return Problem(
                        _where(path), "a key with a NUL or a lone surrogate (not storable Unicode)"
                    )
                stack.append((child, (*path, key)))
        elif isinstance(item, (list, tuple)):
            stack.extend((child, (*path, index)) for index, child in enumerate(item))
        else:
            return Problem(_where(path), f"a {type(item).__name__} is not JSON")
    return None


def output_problem(what: str, size: int, limit: int) -> str | None:
    """Why a step's ``what`` (output, checkpoint) of ``size`` bytes is not stored, or None."""
    if limit and size > limit:
        return f"the {what} takes {size} bytes as JSON; at most {limit} are stored (WFE_MAX_OUTPUT_BYTES)"
    return None
