"""Waiting benchmark: whether the waits we impose (a provider's pace, a batch gathering) take
worker threads from other integrations, and how ecomdash batches with the default threads.

    python -m benchmarks.waiting [--dotcom 600] [--spectrum 150] [--ecomdash 1000]
                                 [--burst 500] [--threads 16]

Runs the real pieces on loopback (redis-server, gunicorn, one Celery worker of ``--threads``
threads as the Procfile runs it, the Dotcom, Spectrum and ecomdash simulators, a hub for the
pushes), every integration at its default settings, and prints

1. ecomdash alone: ``--burst`` confirmations of one account posted at once: the
   ``submitTrackingInfo`` calls they went out in, the time until every message was answered,
   429s and the most calls at once;
2. Dotcom alone: the time for ``--dotcom`` shipments posted at once to be answered;
3. the same Dotcom shipments posted right after ``--spectrum`` Spectrum confirmations (paced at
   90 a minute: they wait for their pace) and ``--ecomdash`` ecomdash confirmations (gathering
   in batches): their drain time and its ratio to the time alone; then how long the Spectrum
   and ecomdash confirmations took, and ecomdash's calls.

Quote ratios from one run; absolute figures depend on the machine.
"""

from __future__ import annotations

import argparse
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import requests

from benchmarks.hub_messages import DOTCOM_ENV
from benchmarks.pipeline import message as dotcom_message
from tests.ecomdash.conftest import EcomdashSimulator, ecomdash_env
from tests.ecomdash.conftest import confirm_message as ecomdash_confirmation
from tests.pipeline.conftest import HUB_STORE, HUB_TOKEN
from tests.spectrum.conftest import (
    SpectrumSimulator,
    purchase_order,
    recipe_set,
    spectrum_env,
)
from tests.spectrum.conftest import confirm_message as spectrum_confirmation
from tests.support.published import Published
from tests.support.servers import HubServer
from tests.support.stack import RedisServer, Stack, free_port, wait_until
from worker.integrations.registry import HUB_QUEUE

FINAL = {"succeeded", "failed", "dead"}
DOTCOM, SPECTRUM, ECOMDASH = "dotcom", "spectrum", "ecomdash"


def post_all(stack: Stack, integration: str, bodies: list[dict[str, Any]]) -> None:
    """Post concurrently (16 clients), answers not awaited: each must be queued."""
    service = "send_shipment" if integration == DOTCOM else "send_tracking"
    session = requests.Session()
    session.mount("http://", requests.adapters.HTTPAdapter(pool_maxsize=16))
    url, headers = f"{stack.url}/{integration}/{service}", stack.headers()

    def post(body: dict[str, Any]) -> int:
        return session.post(url, json=body, headers=headers, timeout=60).status_code

    with ThreadPoolExecutor(16) as pool:
        codes = set(pool.map(post, bodies))
    if codes != {200}:
        raise SystemExit(f"{integration}: not every message was queued: {codes}")


def finished(stack: Stack, integration: str, bodies: list[dict[str, Any]]) -> Callable[[], bool]:
    """Whether every one of ``bodies`` has its final status (read straight from Redis)."""
    client = stack.redis.client()

    def check() -> bool:
        pipe = client.pipeline(transaction=False)
        for body in bodies:
            pipe.hget(f"shiphub:msg:{integration}:{body['message_id']}", "status")
        return all(status in FINAL for status in pipe.execute())

    return check


def drained(stack: Stack, integration: str, bodies: list[dict[str, Any]], started: float) -> float:
    wait_until(finished(stack, integration, bodies), timeout=900, every=0.1)
    return time.monotonic() - started


def dotcom_batch(count: int) -> list[dict[str, Any]]:
    run = uuid.uuid4().hex[:6].upper()
    return [dotcom_message(f"W{run}{i:06d}") for i in range(count)]


def spectrum_batch(sim: SpectrumSimulator, count: int) -> list[dict[str, Any]]:
    po = purchase_order()
    sets = [recipe_set() for _ in range(count)]
    sim.add_order(po, *sets)
    return [spectrum_confirmation(po, [rs]) for rs in sets]


def ecomdash_batch(sim: EcomdashSimulator, first: int, count: int) -> list[dict[str, Any]]:
    sim.add_shipments(first, count)
    return [ecomdash_confirmation(first + i) for i in range(count)]


def ecomdash_calls(sim: EcomdashSimulator) -> str:
    stats = sim.stats()
    throttled = sum(n for code, n in stats["answered"].items() if code == "429")
    return (
        f"{stats['calls']} calls for {stats['records']} records, {throttled} answered 429, "
        f"at most {stats['max_concurrency']} at once"
    )


def environment(
    dotcom_url: str, spectrum: SpectrumSimulator, ecomdash: EcomdashSimulator, hub: HubServer
) -> dict[str, str | None]:
    """Every integration at its defaults (the tests' quick settings taken back)."""
    env: dict[str, str | None] = {
        **spectrum_env(spectrum, hub),
        **ecomdash_env(ecomdash, hub),
        **DOTCOM_ENV,
        "DOTCOM_API_URL": f"{dotcom_url}/dcd_api_test/DCDAPIService.svc",
        "TASK_MAX_ATTEMPTS": "20",
        "REDIS_MAX_CONNECTIONS": None,
    }
    for name in [n for n in env if n.startswith(("SPECTRUM_", "ECOMDASH_"))]:
        if name.endswith(("_URL", "_TOKEN", "_KEY", "_LOOKUP")):
            continue
        env[name] = None
    return env


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dotcom", type=int, default=600)
    parser.add_argument("--spectrum", type=int, default=150)
    parser.add_argument("--ecomdash", type=int, default=1000)
    parser.add_argument("--burst", type=int, default=500)
    parser.add_argument("--threads", type=int, default=16)
    args = parser.parse_args()

    hub = HubServer(HUB_TOKEN, HUB_STORE)
    spectrum, ecomdash = SpectrumSimulator(), EcomdashSimulator()
    spectrum.configure(rate_limit=100, rate_window_seconds=60)
    redis_server = RedisServer().start()
    dotcom_port = free_port()
    dotcom_url = f"http://127.0.0.1:{dotcom_port}"
    stack = Stack(redis_server, environment(dotcom_url, spectrum, ecomdash, hub))
    try:
        stack.start_simulator("dotcom-simulator", "simulators.dotcom", dotcom_port)
        wait_until(lambda: requests.get(f"{dotcom_url}/_sim/health", timeout=1).ok)
        stack.start_web()
        stack.start_worker(concurrency=args.threads)
        print(f"one worker, {args.threads} threads; every integration at its default settings")

        ecomdash.reset()
        burst = ecomdash_batch(ecomdash, 700000, args.burst)
        started = time.monotonic()
        post_all(stack, ECOMDASH, burst)
        took = drained(stack, ECOMDASH, burst, started)
        calls = ecomdash_calls(ecomdash)
        print(f"ecomdash alone: {args.burst} confirmations in {took:.1f} s: {calls}")

        alone_bodies = dotcom_batch(args.dotcom)
        started = time.monotonic()
        post_all(stack, DOTCOM, alone_bodies)
        alone = drained(stack, DOTCOM, alone_bodies, started)
        print(f"Dotcom alone: {args.dotcom} shipments in {alone:.1f} s")

        ecomdash.reset()
        paced = spectrum_batch(spectrum, args.spectrum)
        gathering = ecomdash_batch(ecomdash, 800000, args.ecomdash)
        behind = dotcom_batch(args.dotcom)
        queues = (DOTCOM, ECOMDASH, SPECTRUM, HUB_QUEUE)
        published = Published(stack.redis.client(), *queues)
        started = time.monotonic()
        post_all(stack, SPECTRUM, paced)
        post_all(stack, ECOMDASH, gathering)
        dotcom_started = time.monotonic()
        post_all(stack, DOTCOM, behind)
        mixed = drained(stack, DOTCOM, behind, dotcom_started)
        published.settled()
        counts = {queue: published.of(queue) for queue in queues}
        published.stop()
        print(
            f"Dotcom while {args.spectrum} Spectrum and {args.ecomdash} ecomdash confirmations "
            f"wait: {args.dotcom} shipments in {mixed:.1f} s, {alone / mixed:.0%} of the speed "
            "alone"
        )
        print(
            "  tasks published onto each queue until then (the worker takes its queues in turn): "
            + ", ".join(f"{queue} {n}" for queue, n in counts.items())
        )
        ecomdash_took = drained(stack, ECOMDASH, gathering, started)
        print(f"  ecomdash: {args.ecomdash} in {ecomdash_took:.1f} s: {ecomdash_calls(ecomdash)}")
        spectrum_took = drained(stack, SPECTRUM, paced, started)
        throttled = spectrum.requests().get("throttled", 0)
        print(
            f"  Spectrum: {args.spectrum} in {spectrum_took:.1f} s (paced at 90 a minute, "
            f"a burst of 10), {throttled} throttled"
        )
    finally:
        stack.stop()
        redis_server.stop()
        spectrum.stop()
        ecomdash.stop()
        hub.close()


if __name__ == "__main__":
    main()
