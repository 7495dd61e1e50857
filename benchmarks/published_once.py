"""Tasks published per piece of work under a backlog: per push, per handler message, per retry.

    python -m benchmarks.published_once [--messages 20000] [--failing 1000] [--clients 16]
                                        [--provider-latency 0] [--deadline SECONDS]
                                        [--pushes-after]

Builds a backlog of Dotcom ``shipment:ready`` messages (posted to the receiver with no worker
running), then starts one worker as the Procfile runs it (threads pool, 16) and lets it drain
the backlog: every message handled, every answer pushed to a hub (``tests/support/servers.py``'s,
answering at once). The first ``--failing`` calls to the Dotcom simulator answer 503, so that
many messages are retried once (scheduled in Redis, published when due). Everything runs with
the service's defaults: a task not started within ``QUEUED_DEADLINE_SECONDS`` (60 s; ``--deadline``
to change it) is looked for in the broker, and the backlog takes longer than that to drain.
With ``--pushes-after`` the worker takes the ``dotcom`` queue only (``-Q dotcom``) and a second
one the ``hub`` queue once every message is handled, so that every push task waits in its queue
for the whole drain (one worker taking both queues serves them in turn: push tasks wait little).

What was published is counted as Redis sees it (``tests/support/published.py``): every push onto
the ``dotcom`` queue (the intake's, a due retry's, a republish by the watchdog, a restore by
kombu) and onto the ``hub`` queue (push tasks). The figures:

* push tasks per push: pushes onto ``hub`` / answers delivered;
* handler tasks per message: (messages + republished by the watchdog) / messages, where
  republished is the watchdog's own count (``shiphub_messages{outcome="republished"}``); the
  broker's count is checked against it: every push onto ``dotcom`` is an intake, a due retry or
  a republish;
* tasks per scheduled retry: (pushes onto ``dotcom`` - messages - republished) / retries
  scheduled (``shiphub_messages{outcome="retrying"}``).
"""

from __future__ import annotations

import argparse
import time
import uuid
from dataclasses import dataclass

import requests

from benchmarks.hub_messages import DOTCOM_ENV
from benchmarks.pipeline import message, post_all
from tests.support.published import Published
from tests.support.servers import HubServer
from tests.support.stack import RedisServer, Stack, free_port, wait_until
from worker.store.bundle import Store

HUB_TOKEN = "benchmark-hub-token"
HUB_STORE = "benchmark-store"


@dataclass(frozen=True)
class PublishedOnce:
    """What one run counted (``measure``)."""

    messages: int
    drained_in: float
    delivered: int  # answers pushed to the hub
    push_tasks: int  # pushes onto the hub queue
    handler_tasks: int  # pushes onto the dotcom queue
    retries: int  # retries scheduled
    republished: int  # republished by the watchdog as lost

    @property
    def per_push(self) -> float:
        return self.push_tasks / max(self.delivered, 1)

    @property
    def per_message(self) -> float:
        return (self.messages + self.republished) / self.messages

    @property
    def retry_tasks(self) -> int:
        return self.handler_tasks - self.messages - self.republished

    @property
    def per_retry(self) -> float | None:
        return self.retry_tasks / self.retries if self.retries else None

    def lines(self) -> list[str]:
        rows = [
            f"drained in {self.drained_in:.0f} s (threads, 16)",
            f"{'':<28}{'work':>8}{'tasks':>8}{'per piece':>11}",
            f"{'pushes':<28}{self.delivered:>8}{self.push_tasks:>8}{self.per_push:>11.3f}",
        ]
        first = self.messages + self.republished
        per_message = f"{self.per_message:.3f}"
        rows.append(f"{'handler messages':<28}{self.messages:>8}{first:>8}{per_message:>11}")
        per_retry = "-" if self.per_retry is None else f"{self.per_retry:.3f}"
        retried = f"{self.retries:>8}{self.retry_tasks:>8}{per_retry:>11}"
        rows.append(f"{'scheduled retries':<28}{retried}")
        rows.append(f"republished by the watchdog as lost: {self.republished}")
        rows.append(
            f"(tasks on the dotcom queue: {self.handler_tasks}, "
            f"on the hub queue: {self.push_tasks})"
        )
        return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--failing", type=int, default=1_000, help="calls answered 503 first")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--provider-latency", type=float, default=0.0)
    parser.add_argument("--deadline", type=float, default=None, help="QUEUED_DEADLINE_SECONDS")
    parser.add_argument(
        "--pushes-after", action="store_true", help="push tasks wait until the handlers are done"
    )
    args = parser.parse_args()
    found = measure(
        args.messages,
        args.failing,
        args.clients,
        args.provider_latency,
        args.deadline,
        args.pushes_after,
    )
    for line in found.lines():
        print(line)


def measure(
    messages: int = 20_000,
    failing: int = 1_000,
    clients: int = 16,
    provider_latency: float = 0.0,
    deadline: float | None = None,
    pushes_after: bool = False,
) -> PublishedOnce:
    """The backlog of the module's docstring, drained; what was published per piece of work."""
    redis_server = RedisServer().start()
    published = Published(redis_server.client(), "dotcom", "hub")
    hub = HubServer(HUB_TOKEN, HUB_STORE)
    sim_port = free_port()
    sim_url = f"http://127.0.0.1:{sim_port}"
    stack = Stack(
        redis_server,
        {
            **DOTCOM_ENV,
            "DOTCOM_API_URL": f"{sim_url}/dcd_api_test/DCDAPIService.svc",
            # a create answered 503 may have landed: its retry waits for that, a few seconds here
            "DOTCOM_READ_TIMEOUT_SECONDS": "5",
            "DOTCOM_LATE_LANDING_SECONDS": "1",
            "HUB_PUSH_URL": f"{hub.url}/push",
            "HUB_ACCESS_TOKEN": HUB_TOKEN,
            "HUB_STORE": HUB_STORE,
            "QUEUED_DEADLINE_SECONDS": None if deadline is None else str(deadline),
            # the service's own defaults, not the test harness's short ones
            "BROKER_VISIBILITY_TIMEOUT_SECONDS": None,
            "TASK_TIME_LIMIT_SECONDS": None,
            "RETRY_BASE_SECONDS": None,
            "RETRY_MAX_SECONDS": None,
            "HUB_PUSH_RETRY_MAX_SECONDS": None,
            "TASK_MAX_ATTEMPTS": None,
        },
    )
    try:
        stack.start_simulator("dotcom-simulator", "simulators.dotcom", sim_port)
        wait_until(lambda: requests.get(f"{sim_url}/_sim/health", timeout=1).ok)
        faults = f"{sim_url}/_sim/faults"
        if failing:
            fault = {"kind": "http_503", "route": "order", "count": failing}
            requests.post(faults, json=fault, timeout=5).raise_for_status()
        if provider_latency:
            slow = {"kind": "slow", "route": "order", "count": 10 * messages}
            slow["delay_seconds"] = provider_latency
            requests.post(faults, json=slow, timeout=5).raise_for_status()
        stack.start_web()
        run = uuid.uuid4().hex[:6].upper()
        bodies = [message(f"P{run}{i:06d}") for i in range(messages)]
        posted_in, _ = post_all(stack, bodies, clients)
        print(f"backlog: {len(bodies)} messages posted in {posted_in:.0f} s, no worker running")

        db = Store.on(redis_server.client())
        started = time.monotonic()
        if pushes_after:
            stack.start_worker("handlers", "threads", 16, queues="dotcom")
            wait_until(lambda: db.listings.sizes()["unfinished_messages"] == 0, 7200, 1.0)
            print(f"handled in {time.monotonic() - started:.0f} s; the pushes' worker starts")
            stack.start_worker("pushes", "threads", 16, queues="hub")
        else:
            stack.start_worker("worker", "threads", 16)  # the Procfile's pool and concurrency
        wait_until(lambda: drained(db), timeout=7200, every=1.0)
        drained_in = time.monotonic() - started
        published.settled()
        stats = db.listings.stats()
        return PublishedOnce(
            messages=messages,
            drained_in=drained_in,
            delivered=stats["deliveries_delivered"],
            push_tasks=published.of("hub"),
            handler_tasks=published.of("dotcom"),
            retries=stats["messages_retrying"],
            republished=stats["messages_republished"],
        )
    finally:
        published.stop()
        stack.stop()
        hub.close()
        redis_server.stop()


def drained(db: Store) -> bool:
    sizes = db.listings.sizes()
    return sizes["unfinished_messages"] == 0 and sizes["outbox_pending"] == 0


if __name__ == "__main__":
    main()
