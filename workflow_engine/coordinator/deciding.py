"""Making a decision: :func:`decide` runs a decision (a function of a
:class:`~workflow_engine.coordinator.unit.Unit`) from the facts at hand; each time it raises
:class:`~workflow_engine.coordinator.facts.Missing`, the caller's ``load`` reads the facts it
names and the decision starts again on a fresh unit. Pure: the loading and the writing are the
caller's (:mod:`workflow_engine.coordinator.recording`).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any, TypeVar

from workflow_engine.coordinator import delivery, maps
from workflow_engine.coordinator.facts import OUTPUTS, Facts, Missing
from workflow_engine.coordinator.unit import Unit

T = TypeVar("T")


def decide(
    facts: Facts,
    make: Callable[..., Unit],  # of the facts, and rng=
    act: Callable[[Unit], T],
    load: Callable[[Missing], Any],
    seed: int,
) -> tuple[Unit, T]:
    """The unit ``act`` decided on, from ``facts`` and what ``load`` adds, and what it returned.
    Every round draws the same random numbers (``seed``), so a retry's backoff does not change
    with the facts the decision had to ask for. Each round knows more than the one before (the
    second time outputs are asked for, all of them are loaded), so the rounds end."""
    while True:
        unit = make(facts, rng=random.Random(seed))
        try:
            result = act(unit)
            if unit.opening:  # (map and workflow steps opened: coordinator.maps starts them)
                maps.start_opened(unit)
            delivery.conclude(unit)
        except Missing as missing:
            if missing.what == OUTPUTS and facts.outputs_of:
                missing = Missing(OUTPUTS)  # a second time: every output, at once
            known = facts.loaded(missing, load)
            if known == facts:
                raise AssertionError(f"a decision on {facts.record.id} asked again for {missing}") from None
            facts = known
            continue
        return unit, result


def unread(missing: Missing) -> Any:
    """How a decision that cannot read (made outside a transaction) meets a need: it cannot."""
    raise missing
