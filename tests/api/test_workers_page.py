"""The monitor's workers page: one row per Celery node, its pool processes under it."""

from __future__ import annotations

import re

from tests.api.conftest import Api
from tests.api.test_monitor_pages import signed_in


def test_the_workers_page_shows_one_row_per_node_and_no_pool_process_that_is_gone(api: Api) -> None:
    store, clock = api.harness.store, api.harness.clock
    queues = [api.harness.settings.steps_queue]
    store.beat("worker-10@vm:11", "vm", 11, ["echo"], queues, [], 0)  # a pool process, killed since
    clock.advance(600)
    store.beat("worker-10@vm:10", "vm", 10, ["echo"], queues, [], 2)  # the worker's main process
    store.beat("worker-10@vm:12", "vm", 12, ["echo"], queues, [], 0)  # the pool process replacing it
    store.beat("worker-10@vm:13", "vm", 13, ["echo"], queues, [], 0)
    store.beat("worker-20@vm:20", "vm", 20, ["echo"], queues, [], 4)  # a worker with a thread pool
    client, _ = signed_in(api, "vic")  # a viewer sees the workers too
    page = client.get("/ui/workers")
    assert page.status_code == 200, page.text
    rows = re.findall(r'<tr data-worker="([^"]+)" data-processes="(\d+)">(.*?)</tr>', page.text, re.S)
    assert [(node, count) for node, count, _ in rows] == [("worker-10@vm", "3"), ("worker-20@vm", "1")]
    first = rows[0][2]
    assert "pid 10, 12, 13" in first and "2 at once" in first and "live" in first
