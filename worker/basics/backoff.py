"""When to try again: jittered exponential back-off inside a time budget.

One policy shape for handlers and pushes alike. Retries are scheduled in Redis (see
``worker.pipeline.scheduler``), not as broker countdowns, so a back-off may be as long as the budget
needs and is not tied to the broker's visibility timeout.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class RetryPolicy:
    base_seconds: float
    max_seconds: float
    for_seconds: float  # the budget: no attempt starts later than this after the first one
    max_attempts: int | None = None  # only limits when set

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Back-off after ``attempt`` failed: base x 2^(attempt-1), capped, jittered to a random
        50-100 % (so retries after an outage do not all return at once), at least the other
        side's Retry-After, never above the cap."""
        exponential = min(self.max_seconds, self.base_seconds * 2 ** max(0, attempt - 1))
        delay = exponential * random.uniform(0.5, 1.0)
        if retry_after is not None:
            delay = max(delay, retry_after)
        return min(delay, self.max_seconds)

    def next_attempt_at(
        self,
        attempt: int,
        since: float,
        now: float,
        retry_after: float | None = None,
        not_before: float | None = None,
    ) -> float | None:
        """When attempt ``attempt + 1`` should start, or None when the budget is spent: the time
        budget from ``since`` (the first attempt) or, when set, the number of attempts. The last
        retry is pulled in to the end of the budget rather than skipped. ``not_before`` (seconds
        from now) is a floor above the cap: an attempt earlier than that would only wait again.
        """
        if self.max_attempts is not None and attempt >= self.max_attempts:
            return None
        ends = since + self.for_seconds
        if now >= ends:
            return None
        delay = max(self.delay(attempt, retry_after), not_before or 0.0)
        return min(now + delay, max(ends, now + (not_before or 0.0)))
