"""Agents that hand a secret on changed (inside text, as a key, as a number, in a checkpoint, in
an error's code and message, in a traceback): what the engine must mask wherever it shows."""

from __future__ import annotations

from typing import Any

from workflow_engine import AgentContext, TransientError, agent


class VendorRefused(Exception):
    """Not one of ours: a worker logs it with its traceback."""


@agent("leak_return")
def leak_return(ctx: AgentContext) -> dict[str, Any]:
    key, pin = ctx.input["key"], ctx.input["pin"]
    ctx.save_checkpoint({"note": f"half way with {key}", key: pin})
    ctx.log.info("calling with Bearer %s and pin %s", key, pin)
    return {"header": f"Bearer {key}", key: "as a key", "count": pin, "deep": [[{"k": f"x{key}y"}]]}


@agent("leak_raise")
def leak_raise(ctx: AgentContext) -> dict[str, Any]:
    key, pin = ctx.input["key"], ctx.input["pin"]
    if ctx.attempt == 1:
        raise TransientError(f"the vendor refused {key}", code=f"E{pin}")
    raise VendorRefused(f"still refused: {key} (pin {pin})")
