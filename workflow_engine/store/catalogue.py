"""Registered workflows listed without their documents: the pages of `GET /workflows`.

A document may be hundreds of kilobytes and a name may have hundreds of versions, so a listing
reads names a page at a time and, for those names, only the columns a listing shows: version,
time, and the latest version's description. The versions listed are those the store's
:meth:`~workflow_engine.store.repository.Store.list_workflows` lists (registered by their name's
owner, of names the caller may see): the same query, fewer columns.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

import sqlalchemy as sa

from workflow_engine.store import schema as t

if TYPE_CHECKING:
    from workflow_engine.store.repository import Store

Order = Literal["name", "newest"]
w = t.workflows


@dataclass(frozen=True, slots=True)
class VersionRow:
    id: int
    name: str
    version: str
    created_at: datetime


def _owned(store: Store, visible_to: int | None, *columns: Any) -> sa.Select[Any]:
    """The store's own query of the versions ``visible_to`` may see, with only ``columns``."""
    return store._owned_versions(visible_to).with_only_columns(*columns)


def names_page(store: Store, visible_to: int | None, limit: int, offset: int, order: Order) -> list[str]:
    """One page of workflow names: by name, or those with the newest version first."""
    query = _owned(store, visible_to, w.c.name).group_by(w.c.name)
    if order == "newest":  # (ids grow with registration: they order versions registered at once)
        query = query.order_by(sa.func.max(w.c.created_at).desc(), sa.func.max(w.c.id).desc(), w.c.name)
    else:
        query = query.order_by(w.c.name)
    with store.reading() as db:
        return [row.name for row in db.execute(query.limit(limit).offset(offset))]


def versions_of(store: Store, names: Sequence[str], visible_to: int | None) -> list[VersionRow]:
    """Every version of ``names`` (no document, no description), in no particular order."""
    if not names:
        return []
    query = _owned(store, visible_to, w.c.id, w.c.name, w.c.version, w.c.created_at)
    with store.reading() as db:
        rows = db.execute(query.where(w.c.name.in_(list(names))))
        return [VersionRow(row.id, row.name, row.version, row.created_at) for row in rows]


def descriptions(store: Store, ids: Sequence[int]) -> dict[int, str]:
    """The description of each version of ``ids``."""
    if not ids:
        return {}
    with store.reading() as db:
        rows = db.execute(sa.select(w.c.id, w.c.description).where(w.c.id.in_(list(ids))))
        return {int(row.id): str(row.description) for row in rows}
