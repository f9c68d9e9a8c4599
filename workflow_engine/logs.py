"""Logging for the engine's processes: text, or JSON lines with execution and step on each."""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

from workflow_engine.core.secrets import hide

CONTEXT_FIELDS = ("execution_id", "step", "attempt", "workflow", "worker")
# what could start a line of its own, or hide one: C0 and C1 controls, DEL, the Unicode line breaks
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")

_context: ContextVar[Mapping[str, Any]] = ContextVar("wfe_log_context", default=MappingProxyType({}))
_hidden: ContextVar[Mapping[str, Any]] = ContextVar("wfe_log_hidden", default=MappingProxyType({}))


def printable(text: str) -> str:
    """``text`` on one line: control characters (CR, LF, ESC...) written as escapes (``\\n``),
    so that nothing a client sends can forge a line of a log or of the audit."""
    return _CONTROL.sub(lambda found: found.group().encode("unicode_escape").decode("ascii"), text)


@contextmanager
def about_step(execution_id: str, step: str, attempt: int, workflow: str | None) -> Iterator[None]:
    """Every log line written inside names the step attempt it is about."""
    fields = {"execution_id": execution_id, "step": step, "attempt": attempt, "workflow": workflow or None}
    token = _context.set({**_context.get(), **fields})
    try:
        yield
    finally:
        _context.reset(token)


@contextmanager
def hiding(texts: Mapping[str, Any]) -> Iterator[None]:
    """Every log line written inside has each of ``texts`` (secret values, gathered as the step
    runs) replaced by ``***``."""
    _hiding_records()
    token = _hidden.set(texts)
    try:
        yield
    finally:
        _hidden.reset(token)


_made = logging.getLogRecordFactory()


def _hidden_record(*args: Any, **kwargs: Any) -> logging.LogRecord:
    """A log record with the secret texts of the step it is written in hidden, whichever
    handler writes it (ours, Celery's, a test's)."""
    record = _made(*args, **kwargs)
    texts = _hidden.get()
    if texts:
        message = record.getMessage()
        shown = hide(message, texts)
        if shown != message:
            record.msg, record.args = shown, None
        if record.exc_info:
            record.exc_text = hide(logging.Formatter().formatException(record.exc_info), texts)
    return record


def _hiding_records() -> None:
    if logging.getLogRecordFactory() is not _hidden_record:
        logging.setLogRecordFactory(_hidden_record)


class ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        for name, value in _context.get().items():
            if getattr(record, name, None) is None:
                setattr(record, name, value)
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        document: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "process": record.process,
        }
        for name in CONTEXT_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                document[name] = value
        if record.exc_info:
            document["exception"] = record.exc_text or self.formatException(record.exc_info)
        return json.dumps(document, default=str)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s%(context)s")

    def format(self, record: logging.LogRecord) -> str:
        context = [
            f"{name}={getattr(record, name)}" for name in CONTEXT_FIELDS if getattr(record, name, None)
        ]
        record.context = f" [{' '.join(context)}]" if context else ""
        return super().format(record)

    def formatMessage(self, record: logging.LogRecord) -> str:
        """The message on one line whatever it quotes (a traceback below it stays as it is)."""
        record.message = printable(record.message)
        return super().formatMessage(record)


def configure(level: str = "INFO", fmt: str = "text") -> None:
    """Send every log line to stderr in ``fmt``; called once by each process's entry point."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level.upper())
    logging.captureWarnings(True)  # warnings too, in the same format
