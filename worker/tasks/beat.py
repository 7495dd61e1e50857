"""Beat's scheduler: celery-redbeat (the schedule and a lock in Redis, so exactly one beat sends
polls however many run), riding out Redis outages instead of exiting.

redbeat extends its lock on every tick; when Redis is away that raises ``ConnectionError`` and
Celery's beat service exits (redbeat#285), leaving polls unsent until a person restarts it. Here
a tick that meets an unavailable Redis tries again shortly; a lock that was lost meanwhile (the
outage outlasted it, or another beat took over) is taken again if it is free, and otherwise this
beat stands by as a second beat does at start-up, taking over when the lock comes free. A beat
that starts while Redis is away (or while Sentinel has no master yet, during a failover) waits
for it instead of exiting.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import redis
from redbeat import RedBeatScheduler

log = logging.getLogger(__name__)
RETRY_SECONDS = 2.0


class Scheduler(RedBeatScheduler):
    _standing_by = False
    _unavailable = False

    def setup_schedule(self) -> None:
        while True:
            try:
                return super().setup_schedule()
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
                log.warning("beat: Redis is unavailable at start (%r); waiting for it", exc)
                time.sleep(RETRY_SECONDS)

    def tick(self, *args: Any, **kwargs: Any) -> float:
        try:
            if self._standing_by and not self._take_lock():
                return RETRY_SECONDS
            interval = super().tick(*args, **kwargs)
        except redis.exceptions.LockNotOwnedError:
            self._standing_by = True
            log.warning("beat: lost the schedule lock; taking it again when it is free")
            return RETRY_SECONDS
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
            if not self._unavailable:
                log.warning(
                    "beat: Redis is unavailable (%r); retrying every %gs", exc, RETRY_SECONDS
                )
            self._unavailable = True
            return RETRY_SECONDS
        if self._unavailable:
            log.warning("beat: Redis is back")
            self._unavailable = False
        return interval

    def _take_lock(self) -> bool:
        if self.lock is None or not self.lock.acquire(blocking=False):
            return False
        log.warning("beat: took the schedule lock again")
        self._standing_by = False
        return True
