"""Celery tasks the integration tests load into real worker processes (WFE_TASK_MODULES), as a
Celery user's own module defines them: on the user's own app."""

from __future__ import annotations

from typing import Any

from celery import Celery

shop = Celery("shop", set_as_current=False)


@shop.task(name="shop.add")
def add(x: int, y: int) -> int:
    return x + y


@shop.task(name="shop.receipt", bind=True, max_retries=3)
def receipt(self: Any, total: int, currency: str = "EUR") -> dict[str, Any]:
    """Asks to be retried once, a second later, then answers with what its request says."""
    if self.request.retries == 0:
        raise self.retry(countdown=1)
    return {"total": total, "currency": currency, "id": self.request.id, "retries": self.request.retries}
