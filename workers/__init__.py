"""Deployable worker code: agent modules and the module `celery -A` points at."""
