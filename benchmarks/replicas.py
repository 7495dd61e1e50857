"""What the replica setting costs: receiver intake against a primary with one replica, with and
without ``REDIS_MIN_REPLICAS_ACKED=1`` (a 200 only once the replica has the record: ``WAIT``).

    python -m benchmarks.replicas [--messages 2000] [--clients 16] [--rounds 2]

Everything runs on this machine over loopback: redis-server (AOF on) and its replica
(``--replicaof``), one gunicorn process (gevent, as the Procfile runs it), no worker. Each round
posts new ``shipment:ready`` messages and then the same again (duplicates), first without the
setting and then with it, each with a receiver of its own; rounds alternate so that a noisy
machine weighs on both alike. The same measurement as ``benchmarks.pipeline``'s intake. Then the
setting's own cost without HTTP: one client writing records, with and without ``confirm``.
"""

from __future__ import annotations

import argparse
import time
import uuid

from benchmarks.pipeline import describe, message, post_all
from tests.sentinel.nodes import RedisNode
from tests.support.stack import Stack, wait_until
from worker.pipeline.runtime import redis_client
from worker.store.replication import confirm


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()

    primary = RedisNode().start()
    replica = RedisNode("--replicaof", "127.0.0.1", str(primary.port)).start()
    rates: dict[str, list[float]] = {"off": [], "on": []}
    try:
        wait_until(lambda: replica.client().info("replication")["master_link_status"] == "up")
        print(
            f"intake: {args.messages} messages, {args.clients} concurrent clients, no worker, "
            "a primary and one replica"
        )
        for round_ in range(args.rounds):
            for setting, replicas in (("off", "0"), ("on", "1")):
                rates[setting].append(_intake(primary, replicas, args, f"{setting} {round_}"))
        off, on = (sum(rates[s]) / len(rates[s]) for s in ("off", "on"))
        print(f"new messages with WAIT / without: {on / off:.2f}")
        _one_client(primary, args.messages)
    finally:
        replica.stop()
        primary.stop()


def _one_client(primary: RedisNode, count: int) -> None:
    """The setting's own cost, without HTTP: one client writing a record-sized hash, alone and
    followed by ``confirm`` (one more round trip, and the replica's acknowledgement)."""
    client = redis_client(primary.url)
    body = {"body": "x" * 1500, "status": "received"}
    for label, replicas in (("write", 0), ("write + confirm", 1)):
        latencies = []
        started = time.perf_counter()
        for n in range(count):
            begun = time.perf_counter()
            client.hset(f"bench:{label}:{n}", mapping=body)
            confirm(client, replicas=replicas, timeout_seconds=1)
            latencies.append(time.perf_counter() - begun)
        describe(f"one client, {label}", count, time.perf_counter() - started, latencies)
    client.flushall()


def _intake(primary: RedisNode, replicas: str, args: argparse.Namespace, label: str) -> float:
    """One receiver with ``REDIS_MIN_REPLICAS_ACKED=replicas``: new messages, then duplicates;
    the rate of new ones."""
    stack = Stack(
        primary,  # type: ignore[arg-type]
        {
            "SHIPHUB_INTEGRATION_MODULES": "",
            "DOTCOM_API_URL": "http://127.0.0.1:9/dcd_api_test/DCDAPIService.svc",
            "DOTCOM_API_KEY": "demo-api-key",
            "DOTCOM_PASSWORD": "demo-password",
            "DOTCOM_SHIPPING_LOOKUP": '[{"Standard": "03"}]',
            "REDIS_MIN_REPLICAS_ACKED": replicas,
        },
    )
    try:
        stack.start_web()
        run = uuid.uuid4().hex[:6].upper()
        bodies = [message(f"R{run}{i:06d}") for i in range(args.messages)]
        rate = describe(f"new, WAIT {label}", len(bodies), *post_all(stack, bodies, args.clients))
        describe(f"duplicate, WAIT {label}", len(bodies), *post_all(stack, bodies, args.clients))
        primary.client().flushall()
        return rate
    finally:
        stack.stop()


if __name__ == "__main__":
    main()
