"""Redis memory per message over time: does state stay flat as messages go by?

Runs messages through a record's whole life against a real redis-server (AOF on, as the service
runs it): accepted, published, begun, finished with a cursor and two handler-memory entries
(what was sent, what was confirmed), as a Dotcom send and poll keep. Record and memory TTLs are
shortened to a few seconds so that "months later" is a few seconds later. Redis ``used_memory``
is measured after 10,000 messages and after 50,000, each time once everything written has aged
past its TTL. Handler memory is kept many names to a hash, in buckets of time whose expiry is
set when they open and never pushed back (``worker.store.kept``), so the two are the same; with
one TTL per hash renewed by every write (a design before), the second would hold five times the
entries. ``benchmarks.shipment_memory`` measures what one shipment costs.

    python -m benchmarks.memory [--first 10000] [--then 50000] [--ttl 5]
"""

from __future__ import annotations

import argparse
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

from tests.support.lifecycle import live_once
from tests.support.stack import RedisServer
from worker.pipeline.runtime import redis_client
from worker.store.bundle import Store
from worker.store.record import Timing


def one_message(db: Store) -> None:
    number = f"H{uuid.uuid4().int % 10**11:011d}"
    live_once(
        db,
        [
            ("sent", number, {"order_number": "R805661123", "shipping_method": "UPS Ground"}),
            ("confirmed", f"{number}/0202100001/01", {"tracking": "1ZV2X5140300000003"}),
        ],
    )


def run(db: Store, count: int, threads: int = 8) -> float:
    started = time.monotonic()
    with ThreadPoolExecutor(threads) as pool:
        for _ in pool.map(lambda _: one_message(db), range(count)):
            pass
    return count / (time.monotonic() - started)


def aged_memory(server: RedisServer, ttl: int) -> tuple[int, int]:
    time.sleep(ttl + 3)  # past every TTL; Redis's active expiry reclaims them meanwhile
    client = server.client()
    return int(client.info("memory")["used_memory"]), int(client.dbsize())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--first", type=int, default=10_000)
    parser.add_argument("--then", type=int, default=50_000)
    parser.add_argument("--ttl", type=int, default=5)
    args = parser.parse_args()
    server = RedisServer().start()
    try:
        db = Store.on(
            redis_client(server.url),
            Timing(record_ttl_seconds=args.ttl, memory_ttl_seconds=args.ttl),
        )
        empty = int(server.client().info("memory")["used_memory"])
        rate = run(db, args.first)
        first, first_keys = aged_memory(server, args.ttl)
        rate_then = run(db, args.then - args.first)
        then, then_keys = aged_memory(server, args.ttl)
    finally:
        server.stop()
    mib = 1024 * 1024
    print(f"redis used_memory, entries aged past a {args.ttl} s TTL")
    print(f"empty                      {empty / mib:7.2f} MiB")
    print(f"after {args.first:>6} messages      {first / mib:7.2f} MiB   {first_keys} keys")
    print(f"after {args.then:>6} messages      {then / mib:7.2f} MiB   {then_keys} keys")
    print(f"growth from {args.first} to {args.then}: {(then - first) / 1024:+.1f} KiB")
    print(f"({rate:.0f} and {rate_then:.0f} messages/s through the record's life, 8 threads)")


if __name__ == "__main__":
    main()
