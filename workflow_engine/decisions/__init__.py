"""What happens to an execution, decided on plain data: no I/O, no store, no broker.

A decision is made on a :class:`~workflow_engine.decisions.unit.Unit` from the facts at hand
(:mod:`~workflow_engine.decisions.facts`): what a step's outcome does
(:func:`~workflow_engine.decisions.steps.after_attempt`), a timer, a lost or timed-out attempt
(:mod:`~workflow_engine.decisions.steps`), an operator's verb
(:mod:`~workflow_engine.decisions.control`), a map or workflow step
(:mod:`~workflow_engine.decisions.maps`), a retry (:mod:`~workflow_engine.decisions.attempts`),
a wait (:mod:`~workflow_engine.decisions.waiting`), and how each new run reaches a worker
(:mod:`~workflow_engine.decisions.delivery`). The services of
:mod:`workflow_engine.coordinator` load what a decision needs, apply it and publish it.
"""
