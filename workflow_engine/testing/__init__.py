"""Prove a workflow before it runs: the engine in process, agents mocked, time virtual.

See :class:`~workflow_engine.testing.harness.Harness` for the Python API and
:func:`~workflow_engine.testing.cases.run_cases` for a definition's own ``tests:``.
"""

from workflow_engine.testing.cases import CaseResult, run_cases
from workflow_engine.testing.harness import Harness, Run
from workflow_engine.testing.mocks import mocked

__all__ = ["CaseResult", "Harness", "Run", "mocked", "run_cases"]
