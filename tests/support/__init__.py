"""Test-only pieces: a test integration, local HTTP servers standing in for a provider and the
hub, and process management for the real pipeline (redis-server, gunicorn, Celery)."""
