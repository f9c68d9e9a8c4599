"""The `wfe` command."""

from workflow_engine.cli.main import main

__all__ = ["main"]
