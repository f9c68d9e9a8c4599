"""Demo agents for the document-generation pipeline (config/workflows/ib-generation.json) and
the review workflow (config/workflows/ib-review.yaml).

They simulate work with short sleeps. The writer writes each section the composer lists, one
map item per section; it is rate-limited on its first attempt at the second section, so a demo
run shows a transient error retried with backoff.
"""

from __future__ import annotations

import time
from typing import Any

from workflow_engine import AgentContext, TransientError, ValidationError, agent

WORK_SECONDS = 0.3


def _work(ctx: AgentContext) -> None:
    time.sleep(float(ctx.metadata.get("work_seconds", WORK_SECONDS)))


@agent("regdata")
def enrich(ctx: AgentContext) -> dict[str, Any]:
    _work(ctx)
    project = ctx.input.get("project_id", "demo")
    return {"project_id": project, "records": 12, "sources": ["ema", "fda"]}


@agent("composer")
def compose(ctx: AgentContext) -> dict[str, Any]:
    _work(ctx)
    records = ctx.steps["enrich"]["records"]
    return {"sections": ["summary", "pharmacology", "risks"], "records_used": records}


@agent("writer")
def write(ctx: AgentContext) -> dict[str, Any]:
    _work(ctx)
    if ctx.attempt == 1 and ctx.index in (None, 1) and not ctx.metadata.get("no_flakes"):
        raise TransientError("language model rate limit", code="RATE_LIMIT")
    section = ctx.input.get("section") or ctx.config.get("section", "document")
    return {"section": section, "words": 1800, "idempotency_key": ctx.idempotency_key}


@agent("validator")
def validate(ctx: AgentContext) -> dict[str, Any]:
    _work(ctx)
    if ctx.input.get("document_type") == "invalid":
        raise ValidationError("document type 'invalid' is not supported", code="BAD_TYPE")
    return {"valid": True, "warnings": 0}


@agent("assembler")
def assemble(ctx: AgentContext) -> dict[str, Any]:
    _work(ctx)
    return {"pages": 42}


@agent("export")
def export(ctx: AgentContext) -> dict[str, Any]:
    _work(ctx)
    return {
        "files": [f"{ctx.input.get('project_id', 'demo')}.pdf", f"{ctx.input.get('project_id', 'demo')}.docx"]
    }


@agent("scorer")
def score(ctx: AgentContext) -> dict[str, Any]:
    _work(ctx)
    return {"score": int(ctx.input.get("quality", 90))}


@agent("notifier")
def notify(ctx: AgentContext) -> dict[str, Any]:
    _work(ctx)
    return {"notified": ctx.input.get("author", "author@example.com")}
