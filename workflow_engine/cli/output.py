"""How the command line speaks: one JSON document with --json, rich text otherwise, one line
on stderr for an error."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import click
from rich.console import Console

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_WAITING = 3
EXIT_INTERRUPTED = 130  # Ctrl-C, as shells report it (128 + SIGINT)

json_option = click.option("--json", "as_json", is_flag=True, help="Print one JSON document on stdout.")


def importable_cwd() -> None:
    """Agent modules and workers/ are found from where the command is run, as with celery -A."""
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)


def console() -> Console:
    return Console(highlight=False, soft_wrap=True)


def error_console() -> Console:
    return Console(stderr=True, highlight=False, soft_wrap=True)


def print_json(document: Any) -> None:
    click.echo(json.dumps(document, indent=2, default=str, ensure_ascii=False))


def one_line(message: str) -> str:
    return " ".join(str(message).split())


def fail(message: str, code: int = EXIT_FAILED) -> None:
    """Say what went wrong on one line of stderr and exit with ``code``."""
    click.echo(f"wfe: error: {one_line(message)}", err=True)
    sys.exit(code)
