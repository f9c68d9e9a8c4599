"""Parsed definitions by workflow id: registered versions are immutable, so cache them."""

from __future__ import annotations

import threading
from collections import OrderedDict

from workflow_engine.definitions.model import WorkflowDefinition
from workflow_engine.definitions.validation import load_document
from workflow_engine.store.repository import Store


class DefinitionCache:
    def __init__(self, store: Store, size: int = 256) -> None:
        self.store = store
        self.size = size
        self._items: OrderedDict[int, WorkflowDefinition] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, workflow_id: int) -> WorkflowDefinition:
        with self._lock:
            found = self._items.get(workflow_id)
            if found is not None:
                self._items.move_to_end(workflow_id)
                return found
        record = self.store.get_workflow_by_id(workflow_id)
        definition = load_document(record.document, f"{record.name}@{record.version}", stored=True)
        with self._lock:
            self._items[workflow_id] = definition
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return definition
