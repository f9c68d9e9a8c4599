"""Agents of the quota tests, loaded into real worker processes (WFE_AGENT_MODULES)."""

from __future__ import annotations

from typing import Any

from workflow_engine import AgentContext, agent


@agent("bulky")
def bulky(ctx: AgentContext) -> dict[str, Any]:
    """An output of ``input.size`` characters."""
    return {"text": "x" * int(ctx.input.get("size", 10))}
