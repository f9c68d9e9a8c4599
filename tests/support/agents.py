"""Agents the integration tests load into real worker processes (WFE_AGENT_MODULES)."""

from __future__ import annotations

import json
import os
import time
from typing import Any

from workflow_engine import AgentContext, FatalError, TransientError, ValidationError, agent


def side_effect(ctx: AgentContext) -> None:
    """Append one line per agent call to the file named in metadata (O_APPEND: atomic lines)."""
    ledger = ctx.metadata.get("ledger")
    if ledger:
        step = ctx.step_name if ctx.index is None else f"{ctx.step_name}[{ctx.index}]"
        line = f"{ctx.execution_id} {step} {ctx.attempt} {os.getpid()} {time.time():.3f}\n"
        fd = os.open(ledger, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line.encode())
        finally:
            os.close(fd)


@agent("echo")
def echo(ctx: AgentContext) -> dict[str, Any]:
    side_effect(ctx)
    pause = float(ctx.config.get("sleep", ctx.metadata.get("sleep", 0)))
    if pause:
        time.sleep(pause)
    return {"step": ctx.step_name, "attempt": ctx.attempt}


@agent("score")
def score(ctx: AgentContext) -> dict[str, Any]:
    side_effect(ctx)
    return {"score": ctx.input["score"]}


@agent("flaky")
def flaky(ctx: AgentContext) -> dict[str, Any]:
    side_effect(ctx)
    if ctx.attempt <= int(ctx.config.get("fail_times", 1)):
        raise TransientError(f"attempt {ctx.attempt} failed on purpose")
    return {"attempts": ctx.attempt}


@agent("fatal")
def fatal(ctx: AgentContext) -> dict[str, Any]:
    side_effect(ctx)
    raise FatalError("cannot go on", code="BROKEN")


@agent("invalid")
def invalid(ctx: AgentContext) -> dict[str, Any]:
    side_effect(ctx)
    if ctx.input.get("fixed"):
        return {"fixed": True}
    raise ValidationError("the title is missing", code="NO_TITLE")


@agent("slow")
def slow(ctx: AgentContext) -> dict[str, Any]:
    """Sleeps in small steps (``config.seconds``), stopping if the step is cancelled."""
    side_effect(ctx)
    deadline = time.monotonic() + float(ctx.config.get("seconds", 30))
    while time.monotonic() < deadline:
        time.sleep(0.1)
        if ctx.config.get("cooperative") and ctx.cancelled:
            return {"stopped": True}
    return {"slept": True}


@agent("stubborn")
def stubborn(ctx: AgentContext) -> dict[str, Any]:
    """Ignores cancellation: only a terminated process stops it."""
    side_effect(ctx)
    time.sleep(float(ctx.config.get("seconds", 30)))
    return {"slept": True}


@agent("once")
def fail_once(ctx: AgentContext) -> dict[str, Any]:
    """Fails fatally the first time it is ever called for a marker file, succeeds afterwards."""
    side_effect(ctx)
    marker = ctx.metadata["marker"]
    if not os.path.exists(marker):
        with open(marker, "w") as handle:
            handle.write(ctx.execution_id)
        raise FatalError("first call fails")
    return {"second": True}


@agent("finisher")
def finisher(ctx: AgentContext) -> dict[str, Any]:
    """Sleeps, then records that it finished: proves whether a stopped step really stopped."""
    time.sleep(float(ctx.config.get("seconds", 4)))
    ledger = ctx.metadata.get("ledger")
    if ledger:
        with open(ledger, "a") as handle:
            handle.write(f"{ctx.execution_id} {ctx.step_name} finished\n")
    return {"finished": True}


@agent("chatty")
def chatty(ctx: AgentContext) -> dict[str, Any]:
    """Logs a line: it must carry the execution id and the step."""
    ctx.log.info("working on %s", ctx.step_name)
    return {"logged": True}


@agent("keyholder")
def keyholder(ctx: AgentContext) -> dict[str, Any]:
    """Reads the secret ``input.key``, logs it and hands it on; with ``config.fail_once`` its
    first attempt fails with the key in the message (and raises with it in a fatal's traceback
    when ``config.fatal``)."""
    key = ctx.input["key"]
    ctx.log.info("using key %s", key)
    if ctx.config.get("fail_once") and ctx.attempt == 1:
        raise TransientError(f"the vendor refused key {key}")
    return {"token": key, "step": ctx.step_name}


@agent("lister")
def lister(ctx: AgentContext) -> dict[str, Any]:
    """A list of ``input.n`` items (0, 1, ...) for a map."""
    side_effect(ctx)
    return {"items": list(range(int(ctx.input.get("n", 3))))}


@agent("mapper")
def mapper(ctx: AgentContext) -> dict[str, Any]:
    """One map item: sleeps ``config.sleep``, gives its item and index back."""
    side_effect(ctx)
    pause = float(ctx.config.get("sleep", 0))
    if pause:
        time.sleep(pause)
    result = {"item": ctx.item, "index": ctx.index}
    if "twice" in ctx.input:  # a mapped input
        result["twice"] = ctx.input["twice"]
    return result


@agent("measure")
def measure(ctx: AgentContext) -> dict[str, Any]:
    """What input it was given, in short: its size as JSON and its ``customer``."""
    side_effect(ctx)
    return {"input_chars": len(json.dumps(ctx.input)), "customer": ctx.input.get("customer")}
