"""Agents of the benchmark workloads."""

from __future__ import annotations

import time
from typing import Any

from workflow_engine import AgentContext, agent


@agent("bench.noop")
def noop(ctx: AgentContext) -> dict[str, Any]:
    return {"ok": True}


@agent("bench.sleep10")
def sleep10(ctx: AgentContext) -> dict[str, Any]:
    time.sleep(0.01)
    return {"ok": True}


@agent("bench.items")
def items(ctx: AgentContext) -> dict[str, Any]:
    """The list a map runs over: ``config.count`` numbers."""
    return {"items": list(range(int(ctx.config.get("count", 200))))}


@agent("bench.fail")
def fail(ctx: AgentContext) -> dict[str, Any]:
    """Fails for good, with a message that differs by number only (one error group)."""
    from workflow_engine.errors import FatalError

    raise FatalError(f"upstream answered 503 for order {ctx.input.get('n', 0)}")


@agent("bench.keyed")
def keyed(ctx: AgentContext) -> dict[str, Any]:
    """Reads one secret (``input.key``) and writes one (``token``)."""
    return {"token": f"t-{ctx.input['key']}"}
