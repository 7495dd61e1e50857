"""gunicorn entry point: ``gunicorn endpoint.wsgi:app``.

Structured logs are set up first (gunicorn's master already did so through ``gunicorn.conf.py``;
doing it again here gives any other WSGI server the same lines)."""

from endpoint.app import create_app
from worker.basics import logs

logs.configure()
app = create_app()
