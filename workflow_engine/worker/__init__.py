"""The Celery side: the app factory, thin tasks, the dispatcher, and what a worker process holds."""
