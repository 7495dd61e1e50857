"""Pipeline benchmark: receiver intake, and end-to-end throughput per worker pool.

    python -m benchmarks.pipeline [--messages 2000] [--clients 16] [--e2e-messages 200]
                                  [--provider-latency 0.1]

Everything runs on this machine over loopback, with the real pieces: redis-server (AOF on),
gunicorn (its gevent worker, as the Procfile runs it, and gthread to compare), Celery workers
and the Dotcom simulator. It measures

1. intake: concurrent clients posting new ``shipment:ready`` messages (recorded + published,
   no worker running) and then re-posting them (duplicates), messages per second and latency;
2. end to end: the time for a worker to drain a backlog of messages whose provider call takes
   ``--provider-latency`` seconds, with the Procfile's pool (16 threads) against two prefork
   children (Celery's default on a two-core machine).

Quote ratios from one run; absolute figures depend on the machine.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import requests

from benchmarks.hub_messages import DOTCOM_ENV
from tests.support.stack import ROOT, RedisServer, Stack, free_port, wait_until

SAMPLE = json.loads((ROOT / "tests" / "fixtures" / "dotcom" / "shipment_ready.json").read_text())


def message(number: str) -> dict[str, Any]:
    body = copy.deepcopy(SAMPLE)
    body["message_id"] = uuid.uuid4().hex
    body["payload"]["shipment"]["number"] = number
    return body


def post_all(stack: Stack, bodies: list[dict[str, Any]], clients: int) -> tuple[float, list[float]]:
    session = requests.Session()
    session.mount("http://", requests.adapters.HTTPAdapter(pool_maxsize=clients))
    url, headers = f"{stack.url}/dotcom/send_shipment", stack.headers()

    def post(body: dict[str, Any]) -> float:
        started = time.perf_counter()
        response = session.post(url, json=body, headers=headers, timeout=30)
        response.raise_for_status()
        return time.perf_counter() - started

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        latencies = list(pool.map(post, bodies))
    return time.perf_counter() - started, latencies


def describe(name: str, count: int, elapsed: float, latencies: list[float]) -> float:
    rate = count / elapsed
    ordered = sorted(latencies)
    p99 = ordered[int(len(ordered) * 0.99) - 1]
    print(
        f"{name:<22} {rate:8.0f} msg/s   p50 {statistics.median(ordered) * 1000:6.1f} ms"
        f"   p99 {p99 * 1000:6.1f} ms"
    )
    return rate


def drain(
    stack: Stack,
    bodies: list[dict[str, Any]],
    pool: str,
    concurrency: int,
    sim_url: str,
    latency: float,
) -> float:
    """Queue a backlog, start one worker, and time it from ready to the last answer."""
    requests.post(f"{sim_url}/_sim/reset", timeout=5)
    requests.post(
        f"{sim_url}/_sim/faults",
        json={
            "kind": "slow",
            "count": len(bodies),
            "delay_seconds": latency,
            "route": "order",
        },
        timeout=5,
    )
    post_all(stack, bodies, 8)
    worker = stack.start_worker(f"worker-{pool}", pool, concurrency)
    started = time.perf_counter()
    wait_until(lambda: unfinished(stack) == 0, timeout=900, every=0.1)
    elapsed = time.perf_counter() - started
    worker.stop()
    return elapsed


def unfinished(stack: Stack) -> int:
    metrics = requests.get(f"{stack.url}/metrics", timeout=5).text
    line = next(x for x in metrics.splitlines() if x.startswith("shiphub_unfinished_messages "))
    return int(float(line.split()[1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--e2e-messages", type=int, default=200)
    parser.add_argument("--provider-latency", type=float, default=0.1)
    args = parser.parse_args()

    redis_server = RedisServer().start()
    sim_port = free_port()
    sim_url = f"http://127.0.0.1:{sim_port}"
    stack = Stack(
        redis_server,
        {**DOTCOM_ENV, "DOTCOM_API_URL": f"{sim_url}/dcd_api_test/DCDAPIService.svc"},
    )
    try:
        stack.start_simulator("dotcom-simulator", "simulators.dotcom", sim_port)
        wait_until(lambda: requests.get(f"{sim_url}/_sim/health", timeout=1).ok)
        print(f"intake: {args.messages} messages, {args.clients} concurrent clients, no worker")
        for worker_class in ("gthread", "gevent"):  # gevent last: the end-to-end part uses it
            web = stack.start_web(worker_class, name=f"web-{worker_class}")
            run = uuid.uuid4().hex[:6].upper()
            bodies = [message(f"B{run}{i:06d}") for i in range(args.messages)]
            describe(f"new, {worker_class}", len(bodies), *post_all(stack, bodies, args.clients))
            describe(
                f"duplicate, {worker_class}", len(bodies), *post_all(stack, bodies, args.clients)
            )
            stack.redis.client().flushall()
            if worker_class != "gevent":
                web.stop()

        print(
            f"end to end: {args.e2e_messages} messages, provider call "
            f"{args.provider_latency * 1000:.0f} ms"
        )
        rates = {}
        for pool, concurrency in (("threads", 16), ("prefork", 2)):
            run = uuid.uuid4().hex[:6].upper()
            batch = [message(f"E{run}{i:06d}") for i in range(args.e2e_messages)]
            elapsed = drain(stack, batch, pool, concurrency, sim_url, args.provider_latency)
            rates[pool] = len(batch) / elapsed
            print(
                f"{pool + ' x' + str(concurrency):<22} {rates[pool]:8.1f} msg/s   ({elapsed:.1f} s)"
            )
        print(f"threads / prefork: {rates['threads'] / rates['prefork']:.1f}x")
    finally:
        stack.stop()
        redis_server.stop()


if __name__ == "__main__":
    main()
