"""gunicorn entry point: ``gunicorn endpoint.wsgi:app``."""

from endpoint.app import create_app

app = create_app()
