"""Celery workers: handle hub messages by calling providers, and answer the hub."""
