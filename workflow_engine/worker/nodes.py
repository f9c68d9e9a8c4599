"""Worker nodes as their heartbeats report them.

A Celery node (``worker-4242@vm``, the name Flower and ``celery inspect`` show) is one worker:
its main process and, with a prefork pool, its pool processes, each of which records a heartbeat
of its own named ``<node>:<pid>``. Operators think in nodes, so the monitor and ``wfe workers``
show one per node; a pool process that is gone (replaced after a crash) no longer counts.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from workflow_engine.store.records import WorkerRecord


def node_of(record: WorkerRecord) -> str:
    """The node a heartbeat record belongs to: its id less the process's pid."""
    node, _, pid = record.id.rpartition(":")
    return node if node and pid == str(record.pid) else record.id


@dataclass(frozen=True, slots=True)
class WorkerNode:
    name: str
    hostname: str
    live: bool  # some process of it has beaten within the staleness bound
    pids: list[int]  # its live processes (a silent node has none)
    capacity: int  # steps it runs at once (a silent node: what it last reported)
    agents: list[str]
    queues: list[str]
    started_at: datetime
    last_seen: datetime

    def as_dict(self) -> dict[str, Any]:
        return {
            "node": self.name,
            "hostname": self.hostname,
            "state": "live" if self.live else "silent",
            "processes": len(self.pids),
            "pids": self.pids,
            "capacity": self.capacity,
            "agents": self.agents,
            "queues": self.queues,
            "started_at": self.started_at.isoformat(),
            "last_heartbeat": self.last_seen.isoformat(),
        }


def nodes(records: Iterable[WorkerRecord], now: datetime, stale_after: float) -> list[WorkerNode]:
    """One :class:`WorkerNode` per node, live ones first, then by name. A live node is described by
    its live processes only; a silent one (all of them stale) by what its last processes
    reported (not by those gone before them)."""
    grouped: dict[str, list[WorkerRecord]] = {}
    for record in records:
        grouped.setdefault(node_of(record), []).append(record)
    found = []
    for name, members in grouped.items():
        live = [r for r in members if (now - r.last_seen).total_seconds() <= stale_after]
        last = max(r.last_seen for r in members)
        current = live or [r for r in members if (last - r.last_seen).total_seconds() <= stale_after]
        found.append(
            WorkerNode(
                name=name,
                hostname=current[0].hostname,
                live=bool(live),
                pids=sorted(r.pid for r in live),
                capacity=sum(r.slots for r in current),
                agents=sorted({a for r in current for a in r.agents}),
                queues=sorted({q for r in current for q in r.queues}),
                started_at=min(r.started_at for r in current),
                last_seen=last,
            )
        )
    return sorted(found, key=lambda n: (not n.live, n.name))
