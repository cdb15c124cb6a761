"""cca worker: Celery tasks that run the real `claude` CLI, one agent per pool slot."""
