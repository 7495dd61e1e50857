"""The Redis primary killed (``kill -9``) while messages are posted and handled: the sentinels
promote the replica, every process (receiver, worker, beat) follows the new master by itself,
and with ``REDIS_MIN_REPLICAS_ACKED=1`` nothing answered 200 is lost, while without it what was
acknowledged in the last moments before the kill (the replica paused behind, to make that window
wide enough to see) is lost.

Two receivers share one worker and one Redis: one waits for a replica (``WAIT``) before it
answers 200, one does not. The same kill hits both. The posters behave like the hub: a message
answered 503 (or cut off) is posted again until it is answered 200.
"""

from __future__ import annotations

import signal
import threading
import time
from dataclasses import dataclass, field

import requests

from tests.pipeline.test_pipeline import order_message
from tests.sentinel.conftest import HUB_STORE, HUB_TOKEN, MASTER, SentinelGroup
from tests.support.servers import HubServer, ProviderServer
from tests.support.stack import Stack, wait_until


@dataclass
class Posting:
    """What one receiver was told: the ids answered 200 (and when), and how many posts were
    refused or cut off on the way."""

    stack: Stack
    accepted: dict[str, float] = field(default_factory=dict)
    refused: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def post_until(self, stop: threading.Event) -> None:
        while not stop.is_set():
            body = order_message()
            while not stop.is_set():  # as the hub does: again until it is taken
                try:
                    taken = self.stack.post("/acme/send_order", body).status_code == 200
                except requests.RequestException:
                    taken = False
                with self.lock:
                    if taken:
                        self.accepted[body["message_id"]] = time.monotonic()
                    else:
                        self.refused += 1
                time.sleep(0.05 if taken else 0.2)
                if taken:
                    break

    def outcome(self, message_id: str, hub: HubServer) -> str:
        """lost (no record), recorded, handled (succeeded) or pushed (succeeded and at the hub)."""
        found = requests.get(
            f"{self.stack.url}/messages/acme/{message_id}", headers=self.stack.headers(), timeout=10
        )
        if found.status_code == 404:
            return "lost"
        found.raise_for_status()
        if found.json()["status"] != "succeeded":
            return "recorded"
        return "pushed" if hub.received(message_id) else "handled"


def test_a_killed_primary_loses_nothing_answered_200_when_a_replica_must_have_it(
    group: SentinelGroup, provider: ProviderServer, hub: HubServer
) -> None:
    env: dict[str, str | None] = {
        "REDIS_URL": group.url,
        "REDIS_SENTINEL_MASTER": MASTER,
        "ACME_API_URL": provider.url,
        "ACME_API_KEY": ProviderServer.API_KEY,
        "HUB_PUSH_URL": f"{hub.url}/push",
        "HUB_ACCESS_TOKEN": HUB_TOKEN,
        "HUB_STORE": HUB_STORE,
        "POLLS": "acme.tracking=2",
        "LEASE_SECONDS": "5",
        "WATCHDOG_INTERVAL_SECONDS": "2",
        "TASK_MAX_ATTEMPTS": None,  # retried for as long as the outage takes
    }
    waits = Stack(group, {**env, "REDIS_MIN_REPLICAS_ACKED": "1"})  # type: ignore[arg-type]
    does_not = Stack(group, env)  # type: ignore[arg-type]
    try:
        waits.start_web()
        does_not.start_web()
        waits.start_worker()
        waits.start_beat()
        safe, fast = Posting(waits), Posting(does_not)
        stop = threading.Event()
        posters = [threading.Thread(target=p.post_until, args=(stop,)) for p in (safe, fast) * 2]
        for poster in posters:
            poster.start()
        try:
            beat = waits.services["beat"]
            wait_until(lambda: beat.running() and "Acquired lock" in beat.output(), timeout=30)
            time.sleep(3)
            old_master = group.master_port()
            assert group.replica.process is not None and old_master == group.primary.port
            # The replica falls behind (paused), then the primary dies: what it acknowledged
            # meanwhile exists nowhere else, the window a real failover has, made wide enough
            # to see.
            group.replica.process.send_signal(signal.SIGSTOP)
            time.sleep(1.5)
            group.primary.kill()
            killed = time.monotonic()
            group.replica.process.send_signal(signal.SIGCONT)
            wait_until(lambda: group.master_port() != old_master, timeout=30)
            failed_over = time.monotonic()
            group.primary.start()  # back, and the sentinels make it the new master's replica
            wait_until(group.replicated, timeout=60)
            time.sleep(4)
        finally:
            stop.set()
            for poster in posters:
                poster.join()

        for name, service in {**waits.services, **does_not.services}.items():
            assert service.alive(), f"{name} exited:\n{service.output()[-3000:]}"
        for posting in (safe, fast):  # posted before, during and after the failover
            assert min(posting.accepted.values()) < killed
            assert max(posting.accepted.values()) > failed_over
            assert posting.refused > 0
        # Answered 200 while a replica had to have it: handled and pushed.
        for message_id in safe.accepted:
            waits.wait_status("acme", message_id, "succeeded", timeout=120)
            try:
                hub.wait_for(message_id, timeout=60)
            except AssertionError as exc:
                raise AssertionError(f"{exc}: {waits.record('acme', message_id)}") from None
        # Without it: what was acknowledged just before the kill may be gone with the primary.
        wait_until(
            lambda: all(fast.outcome(m, hub) in ("lost", "pushed") for m in fast.accepted),
            timeout=60,
        )
        polls = len(provider.polled_since)  # beat schedules polls on the new master
        wait_until(lambda: len(provider.polled_since) > polls, timeout=60)
        counts = {name: _counted(p, hub) for name, p in (("with WAIT", safe), ("without", fast))}
        print(f"\nfailover after {failed_over - killed:.1f} s; {counts}")
        # Without WAIT, messages answered 200 in the window are gone: the case above is real.
        assert counts["without"]["lost"] > 0
        # The worker has the setting too (it handles both receivers' messages): a push waits
        # until a replica has the answer it tells. A message finished on the old primary just
        # before the kill, whose finish the replica never got, is handled again after the
        # failover, but only that second answer reaches the hub. (Without the wait both may: the
        # same message pushed under two delivery ids, 2 to 21 of them per run.)
        assert sum(c["pushed under two delivery ids"] for c in counts.values()) == 0
    except BaseException:
        print(waits.logs(), does_not.logs())
        raise
    finally:
        waits.stop()
        does_not.stop()


def _counted(posting: Posting, hub: HubServer) -> dict[str, int]:
    outcomes = [posting.outcome(m, hub) for m in posting.accepted]
    return {
        "accepted": len(outcomes),
        "refused or cut off": posting.refused,
        "recorded": sum(o != "lost" for o in outcomes),
        "handled": sum(o in ("handled", "pushed") for o in outcomes),
        "pushed": outcomes.count("pushed"),
        "lost": outcomes.count("lost"),
        "pushed under two delivery ids": sum(
            len({p["delivery_id"] for p in hub.pushes_of(m)}) > 1 for m in posting.accepted
        ),
    }
