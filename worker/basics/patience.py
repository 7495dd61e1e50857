"""Riding out a short Redis outage (a restart takes seconds): a state change that meets a Redis
error is tried again for a while rather than left to a recovery that takes a minute."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

import redis

log = logging.getLogger(__name__)
T = TypeVar("T")


def patiently(change: Callable[[], T], for_seconds: float, what: str) -> T:
    """``change()``, tried again after a Redis error (0.25 s, doubling to 2 s between tries) for
    up to ``for_seconds``; then the error is raised."""
    gives_up = time.monotonic() + for_seconds
    pause = 0.25
    while True:
        try:
            return change()
        except redis.RedisError as exc:
            if time.monotonic() + pause > gives_up:
                raise
            log.warning("%s: Redis is unavailable (%s); trying again", what, exc)
            time.sleep(pause)
            pause = min(pause * 2, 2.0)
