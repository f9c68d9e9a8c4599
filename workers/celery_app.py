"""The Celery app for `celery -A workers.celery_app ...` (Flower, inspect, a custom worker).

`wfe worker` and `wfe coordinator` build the same app; this module exists for Celery's own
command line, which needs a module-level app.
"""

from workflow_engine.settings import Settings
from workflow_engine.worker.app import create_celery_app

app = create_celery_app(Settings())
