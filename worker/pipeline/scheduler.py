"""The scheduler: every worker process serves Redis's due-time sets on a short tick.

Retries are never broker countdowns (a countdown on Redis must stay below the visibility timeout,
or the waiting message is redelivered beside itself). Instead:

* a message to retry waits in the ``due`` zset; each tick takes what is due (atomically, so two
  workers never both take one) and publishes it;
* an answer to push waits in the ``outbox`` zset; each tick claims what is due and sends a push
  task per claim (``worker.store.outbox``);
* every ``WATCHDOG_INTERVAL_SECONDS`` one worker (a Redis lock decides which) sweeps for lost
  messages (``worker.pipeline.watchdog``);
* until the one-off backfill of the state indexes is done in this Redis, one batch of it
  (``worker.store.backfill``).

So back-off can last as long as the retry budget needs, and retries run as long as any worker
runs, beat or no beat. A worker that dies between taking a due message and publishing it leaves
it to the watchdog. A push claim whose task was not taken by its reclaim time is looked for in
the broker (``worker.pipeline.watchdog.in_broker``): still queued (a backlog), it is left to wait;
lost, it is claimed afresh and its push task sent again. Each tick reads the broker afresh.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

from worker.integrations import registry
from worker.pipeline.delivery import PUSH_QUEUE, SendPush, push_task_name
from worker.pipeline.intake import Publish
from worker.pipeline.watchdog import BrokerView, LookAtBroker, in_broker, sweep
from worker.store import replication
from worker.store.backfill import StateBackfill
from worker.store.bundle import Store
from worker.store.outbox import Claimed, Outbox
from worker.store.schema import SWEEP_LOCK

log = logging.getLogger(__name__)

TICK_SECONDS = 0.5


@dataclass
class Scheduler:
    db: Store
    outbox: Outbox
    publish: Publish
    send_push: SendPush
    watchdog_interval_seconds: float
    look: LookAtBroker  # a fresh view of the broker's queues (worker.tasks.broker), each tick
    backfill: StateBackfill = field(init=False)

    def __post_init__(self) -> None:
        self.backfill = StateBackfill(self.db.redis)

    def tick(self, now: float | None = None) -> dict[str, int]:
        """Publish due retries and start due pushes; sweep when it is this worker's turn."""
        now = time.time() if now is None else now
        broker = self.look()
        done = {"retries": self.publish_due(now), "pushes": self.push_due(now, broker)}
        if self.db.redis.set(
            SWEEP_LOCK, "1", nx=True, px=int(self.watchdog_interval_seconds * 1000)
        ):
            found = sweep(self.db, self.publish, broker, now)
            done["republished"] = len(found.republished)
        self.backfill.step()  # last: a step that fails holds up nothing above
        return done

    def publish_due(self, now: float) -> int:
        """Publish every due retry to its integration's queue: one of an integration this
        process does not run is handed on to the workers that do, never dropped."""
        published = 0
        for integration_name, message_id in self.db.attempts.claim_due(now):
            record = self.db.messages.get(integration_name, message_id)
            route = registry.route_for(
                integration_name, record.fields.get("message") if record else None
            )
            if route is None:
                continue  # its record expired meanwhile: nothing is left to run
            try:
                self.publish(route, message_id, now)
            except Exception as exc:
                log.warning(
                    "could not publish %s/%s (%r); next tick",
                    integration_name,
                    message_id,
                    exc,
                    extra={"message_id": message_id, "integration": integration_name},
                )
                self.db.attempts.defer(integration_name, message_id, now + 1)
                continue
            published += 1
        return published

    def push_due(self, now: float, broker: BrokerView) -> int:
        """Start a push of every due answer, once replicas have every answer written so far
        (``REDIS_MIN_REPLICAS_ACKED``: one wait covers the whole tick); a claim whose push task
        is still in the broker is left to it, one whose task is lost is sent again."""
        if not replication.replicated(self.outbox.redis, "answers due to be pushed"):
            return 0
        claims = self.outbox.claim_due(now)
        started = sum(self._send(claimed, now) for claimed in claims.fresh)
        deadline = self.db.timing.queued_deadline_seconds
        for sent in claims.sent:
            name = push_task_name(sent)
            if in_broker(broker, PUSH_QUEUE, name, sent.claimed_at, now, deadline):
                self.outbox.still_queued(sent, now)
                continue
            again = self.outbox.reclaim(sent, now)
            if again is not None:
                log.warning(
                    "the push task of %s/%s is no longer in the broker; sent again",
                    sent.integration,
                    sent.message_id,
                    extra={"message_id": sent.message_id, "integration": sent.integration},
                )
                started += self._send(again, now)
        return started

    def _send(self, claimed: Claimed, now: float) -> bool:
        try:
            self.send_push(claimed)
        except Exception as exc:
            log.warning("could not start a push (%r); next tick", exc)
            self.outbox.make_due(claimed.integration, claimed.message_id, now + 1)
            return False
        return True

    def run(self, stop: threading.Event) -> None:
        """Tick until ``stop`` is set; nothing a tick meets (Redis away, say) stops the loop. A
        failing spell is logged when it starts and when it ends, not twice a second."""
        failing_since: float | None = None
        while not stop.wait(TICK_SECONDS):
            try:
                self.tick()
            except Exception as exc:
                if failing_since is None:
                    failing_since = time.monotonic()
                    log.warning("scheduler ticks are failing: %r; retrying every tick", exc)
                continue
            if failing_since is not None:
                log.warning(
                    "scheduler ticks work again after %.0fs", time.monotonic() - failing_since
                )
                failing_since = None
