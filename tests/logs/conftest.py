"""Fixtures for the log tests: a Redis of their own (the session fixture shared with the pipeline
tests, instantiated again for this directory)."""

from __future__ import annotations

from tests.pipeline.conftest import redis_server

__all__ = ["redis_server"]
