"""Redis memory per Dotcom shipment: while its messages' records live, and once they expired.

    python -m benchmarks.shipment_memory [--shipments 2000] [--record-ttl 180]
                                         [--listpack-value 256]

The real pieces on a Redis of their own (AOF on, ``hash-max-listpack-value`` as given, 256 as
docs/deployment.md asks; 64 is Redis's default): receiver, one worker (16 threads), the Dotcom
simulator (orders ship at once) and a hub that takes the pushes. Each shipment is sent
(``send_shipment``, a UUID message id as the hub's) and confirmed by polls (``tracking``) until
every release was confirmed: what a shipment costs in real handling. Measured with ``MEMORY
USAGE`` summed over the keys, by family (``shiphub:msg`` records, ``shiphub:once`` marks,
``shiphub:kept`` handler memory...), and as ``used_memory_dataset``: once everything is pushed
(the records live), then once ``RECORD_TTL_SECONDS`` (shortened to ``--record-ttl``) has passed.
Handler memory keeps its default retention. The operators' list of the latest 1,000 messages
(``shiphub:recent``) has a fixed size and is left out.

Then the steady state at the default retention: handler memory lives ``HANDLER_MEMORY_TTL_SECONDS``
(180 days) and at most one bucket more (a sixth of it), 195 days on average; a record lives
``RECORD_TTL_SECONDS`` (7 days) after its answer was pushed.
"""

from __future__ import annotations

import argparse
import json
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import redis
import requests

from benchmarks.polls import keep_alive
from tests.support.servers import HubServer
from tests.support.simulators import SimulatorProcess
from tests.support.stack import ROOT, RedisServer, Stack, wait_until
from worker.integrations.dotcom.mapping import dotcom_time
from worker.store.schema import KEPT_BUCKETS, OUTBOX

FIXTURES = ROOT / "tests" / "fixtures" / "dotcom"
HUB_TOKEN, HUB_STORE = "memory-hub-token", "memory-store"
FIXED_SIZE = {"shiphub:recent"}
DAY = 24 * 3600
RETENTION_DAYS = 180
RECORD_DAYS = 7
# An entry is kept for the retention and up to one bucket more: on average half a bucket more.
KEPT_DAYS = RETENTION_DAYS * (1 + 0.5 / KEPT_BUCKETS)
DAILY = (10_000, 100_000, 1_000_000)


def shipment(number: str) -> dict[str, Any]:
    body = json.loads((FIXTURES / "shipment_ready.json").read_text())
    body["message_id"] = str(uuid.uuid4())
    sample = body["payload"]["shipment"]
    sample["number"] = number
    sample["order_number"] = f"R{uuid.uuid4().int % 10**9:09d}"
    sample["shipping_method"] = "UPS Ground (USD)"
    return body


def poll(since: str) -> dict[str, Any]:
    body = json.loads((FIXTURES / "shipment_results_poll.json").read_text())
    body["message_id"] = str(uuid.uuid4())
    body["payload"]["parameters"] = [{"name": "dotcom.last_polling_datetime", "value": since}]
    return body


def by_family(client: redis.Redis) -> Counter[str]:
    """``MEMORY USAGE`` (every element counted) summed by key family (its first two parts)."""
    sizes: Counter[str] = Counter()
    for key in client.scan_iter(count=1000):
        if key not in FIXED_SIZE:
            sizes[":".join(key.split(":")[:2])] += client.memory_usage(key, samples=0) or 0
    return sizes


def used_memory(client: redis.Redis) -> int:
    """Redis's ``used_memory_dataset``: ``used_memory`` less its overhead (client buffers, the
    AOF buffer, the key tables' own size), which does not scale with the keys."""
    return int(client.info("memory")["used_memory_dataset"])


def records_left(client: redis.Redis) -> bool:
    return any(client.scan_iter("shiphub:msg:*", count=1000)) or any(
        client.scan_iter("shiphub:once:*", count=1000)
    )


def run(count: int, record_ttl: int, listpack_value: int) -> dict[str, Any]:
    server = RedisServer().start()
    server.client().config_set("hash-max-listpack-value", listpack_value)
    sim = SimulatorProcess(
        "simulators.dotcom", {"DOTCOM_SIM_SHIP_AFTER": "0", "DOTCOM_SIM_VISIBLE_AFTER": "0"}
    )
    hub = keep_alive(HubServer(HUB_TOKEN, HUB_STORE))
    stack = Stack(
        server,
        {
            "SHIPHUB_INTEGRATION_MODULES": "",
            "DOTCOM_API_URL": f"{sim.url}/dcd_api_test/DCDAPIService.svc",
            "DOTCOM_API_KEY": "demo-api-key",
            "DOTCOM_PASSWORD": "demo-password",
            "DOTCOM_SHIPPING_LOOKUP": '[{"UPS Ground (USD)": "03"}]',
            "DOTCOM_POLL_LAG_SECONDS": "1",
            "TASK_TIME_LIMIT_SECONDS": "60",  # a poll of thousands, on a busy machine
            "BROKER_VISIBILITY_TIMEOUT_SECONDS": "300",
            "RECORD_TTL_SECONDS": str(record_ttl),
            "HUB_PUSH_URL": f"{hub.url}/push",
            "HUB_ACCESS_TOKEN": HUB_TOKEN,
            "HUB_STORE": HUB_STORE,
        },
    )
    client = server.client()
    session = requests.Session()
    session.mount("http://", requests.adapters.HTTPAdapter(pool_maxsize=16))
    since = dotcom_time(datetime.now(UTC) - timedelta(hours=1), UTC)

    def post(service: str, body: dict[str, Any]) -> dict[str, Any]:
        headers = stack.headers(**{"X-Hub-Wait": "60"})
        url = f"{stack.url}/dotcom/{service}"
        response = session.post(url, json=body, headers=headers, timeout=90)
        response.raise_for_status()
        return response.json()

    try:
        stack.start_web()
        stack.start_worker("worker-memory", "threads", 16)
        post("tracking", poll(since))  # the store's cursor and counters exist before
        wait_until(
            lambda: client.zcard(OUTBOX) == 0 and not records_left(client),
            timeout=record_ttl + 120,
            every=1,
        )
        empty, empty_used = by_family(client), used_memory(client)
        numbers = [f"H{uuid.uuid4().int % 10**11:011d}" for _ in range(count)]
        started = time.monotonic()
        with ThreadPoolExecutor(16) as pool:
            list(pool.map(lambda n: post("send_shipment", shipment(n)), numbers))
        confirmed = 0
        polls = 0
        while confirmed < count:
            confirmed += len(post("tracking", poll(since))["messages"])
            polls += 1
        wait_until(lambda: client.zcard(OUTBOX) == 0, timeout=600)
        handled = time.monotonic() - started
        live, live_used = by_family(client), used_memory(client)
        wait_until(lambda: not records_left(client), timeout=record_ttl + 600, every=1)
        time.sleep(2)  # Redis's active expiry: the last records' keys
        aged, aged_used = by_family(client), used_memory(client)
        encodings = Counter(
            client.object("encoding", k) for k in client.scan_iter("shiphub:kept:*", count=1000)
        )
    finally:
        stack.stop()
        sim.stop()
        hub.close()
        server.stop()
    return {
        "count": count,
        "polls": polls,
        "handled": handled,
        "took_longer": handled > record_ttl,
        "live": live - empty,
        "aged": aged - empty,
        "live_used": live_used - empty_used,
        "aged_used": aged_used - empty_used,
        "encodings": encodings,
    }


def table(after: float, live_extra: float) -> list[str]:
    gib = 1024**3
    rows = [
        f"{'shipments a day':>16} {'handler memory':>15} {'records':>10} {'total':>10}",
    ]
    for daily in DAILY:
        kept = after * daily * KEPT_DAYS / gib
        records = live_extra * daily * RECORD_DAYS / gib
        rows.append(
            f"{daily:>16,} {kept:>11.1f} GiB {records:>6.1f} GiB {kept + records:>6.1f} GiB"
        )
    return rows


def per_shipment(got: dict[str, Any]) -> tuple[float, float]:
    """Bytes a shipment costs (``MEMORY USAGE``) while its records live, and once they expired."""
    n = got["count"]
    return sum(got["live"].values()) / n, sum(got["aged"].values()) / n


def lines(got: dict[str, Any], record_ttl: int, listpack_value: int) -> list[str]:
    """What ``run`` measured, as ``main`` prints it."""
    n = got["count"]
    live, aged = got["live"], got["aged"]
    whole, after = per_shipment(got)
    rows = [
        f"{n} Dotcom shipments sent and confirmed ({got['polls']} polls) in {got['handled']:.0f} s;"
        f" hash-max-listpack-value {listpack_value}",
        "while the records live (MEMORY USAGE per shipment, by key family):",
    ]
    rows += [f"  {family:<28} {size / n:8.0f} B" for family, size in live.most_common() if size > 0]
    rows.append(
        f"  {'all':<28} {whole:8.0f} B   (used_memory_dataset {got['live_used'] / n:.0f} B)"
    )
    rows.append(f"once the records expired (RECORD_TTL_SECONDS={record_ttl}):")
    rows += [f"  {family:<28} {size / n:8.0f} B" for family, size in aged.most_common() if size > 0]
    rows.append(
        f"  {'all':<28} {after:8.0f} B   (used_memory_dataset {got['aged_used'] / n:.0f} B)"
    )
    rows.append(f"  handler memory's hashes by encoding: {dict(got['encodings'])}")
    if got["took_longer"]:
        rows.append("  !!!!! handling took longer than the record TTL: raise --record-ttl")
    live_extra = whole - after
    rows.append(
        f"\nsteady state at the default retention: handler memory {after:.0f} B a shipment for "
        f"{KEPT_DAYS:.0f} days on average, records {live_extra:.0f} B for {RECORD_DAYS} days"
    )
    return rows + table(after, live_extra)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shipments", type=int, default=2000)
    parser.add_argument("--record-ttl", type=int, default=180)
    parser.add_argument("--listpack-value", type=int, default=256)
    args = parser.parse_args()
    got = run(args.shipments, args.record_ttl, args.listpack_value)
    for row in lines(got, args.record_ttl, args.listpack_value):
        print(row)


if __name__ == "__main__":
    main()
