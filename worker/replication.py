"""Replicas: the receiver answers 200 only after enough replicas have the record (to be
written; a no-op until then)."""

from __future__ import annotations

import redis


def confirm(client: redis.Redis) -> None:
    """Return once the writes made so far on ``client`` are on enough replicas; raise when they
    are not in time. No replicas are required yet."""
