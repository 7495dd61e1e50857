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
from dataclasses import dataclass
from typing import Any

import requests

from benchmarks.floors import cpu_seconds, machine_ticks
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


def throttled(stats: dict[str, Any]) -> int:
    """ecomdash calls the simulator answered 429."""
    return sum(n for code, n in stats["answered"].items() if code == "429")


def ecomdash_calls(sim: EcomdashSimulator) -> str:
    stats = sim.stats()
    return (
        f"{stats['calls']} calls for {stats['records']} records, {throttled(stats)} answered 429, "
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


@dataclass(frozen=True)
class Waiting:
    """What one run measured (``measure``)."""

    threads: int
    burst: int
    burst_seconds: float
    burst_calls: int
    burst_throttled: int  # ecomdash calls answered 429
    burst_most_at_once: int
    dotcom: int
    alone_seconds: float
    mixed_seconds: float  # the same Dotcom shipments while Spectrum and ecomdash wait
    spectrum: int
    ecomdash: int
    ecomdash_seconds: float
    ecomdash_line: str
    spectrum_seconds: float
    spectrum_throttled: int
    worker_cores: float  # CPU the worker process took per second of the mixed drain
    machine_busy: float  # share of the machine's cores busy during the mixed drain
    published: dict[str, int]  # tasks published onto each queue during the mixed drain

    @property
    def ratio(self) -> float:
        return self.alone_seconds / self.mixed_seconds

    def lines(self) -> list[str]:
        return [
            f"one worker, {self.threads} threads; every integration at its default settings",
            f"ecomdash alone: {self.burst} confirmations in {self.burst_seconds:.1f} s: "
            f"{self.burst_calls} calls, {self.burst_throttled} answered 429, at most "
            f"{self.burst_most_at_once} at once",
            f"Dotcom alone: {self.dotcom} shipments in {self.alone_seconds:.1f} s",
            f"Dotcom while {self.spectrum} Spectrum and {self.ecomdash} ecomdash confirmations "
            f"wait: {self.dotcom} shipments in {self.mixed_seconds:.1f} s, {self.ratio:.0%} of "
            f"the speed alone (the worker took {self.worker_cores:.2f} cores, the machine was "
            f"{self.machine_busy:.0%} busy)",
            "  tasks published onto each queue until then (the worker takes its queues in turn): "
            + ", ".join(f"{queue} {n}" for queue, n in self.published.items()),
            f"  ecomdash: {self.ecomdash} in {self.ecomdash_seconds:.1f} s: {self.ecomdash_line}",
            f"  Spectrum: {self.spectrum} in {self.spectrum_seconds:.1f} s (paced at 90 a minute, "
            f"a burst of 10), {self.spectrum_throttled} throttled",
        ]


def measure(
    dotcom: int = 600,
    spectrum: int = 150,
    ecomdash: int = 1000,
    burst: int = 500,
    threads: int = 16,
) -> Waiting:
    """The three runs of the module's docstring, on one worker of ``threads`` threads."""
    hub = HubServer(HUB_TOKEN, HUB_STORE)
    spectrum_sim, ecomdash_sim = SpectrumSimulator(), EcomdashSimulator()
    spectrum_sim.configure(rate_limit=100, rate_window_seconds=60)
    redis_server = RedisServer().start()
    dotcom_port = free_port()
    dotcom_url = f"http://127.0.0.1:{dotcom_port}"
    stack = Stack(redis_server, environment(dotcom_url, spectrum_sim, ecomdash_sim, hub))
    try:
        stack.start_simulator("dotcom-simulator", "simulators.dotcom", dotcom_port)
        wait_until(lambda: requests.get(f"{dotcom_url}/_sim/health", timeout=1).ok)
        stack.start_web()
        worker = stack.start_worker(concurrency=threads)

        ecomdash_sim.reset()
        burst_bodies = ecomdash_batch(ecomdash_sim, 700000, burst)
        started = time.monotonic()
        post_all(stack, ECOMDASH, burst_bodies)
        burst_seconds = drained(stack, ECOMDASH, burst_bodies, started)
        burst_stats = ecomdash_sim.stats()

        alone_bodies = dotcom_batch(dotcom)
        started = time.monotonic()
        post_all(stack, DOTCOM, alone_bodies)
        alone = drained(stack, DOTCOM, alone_bodies, started)

        ecomdash_sim.reset()
        paced = spectrum_batch(spectrum_sim, spectrum)
        gathering = ecomdash_batch(ecomdash_sim, 800000, ecomdash)
        behind = dotcom_batch(dotcom)
        queues = (DOTCOM, ECOMDASH, SPECTRUM, HUB_QUEUE)
        published = Published(stack.redis.client(), *queues)
        started = time.monotonic()
        post_all(stack, SPECTRUM, paced)
        post_all(stack, ECOMDASH, gathering)
        dotcom_started = time.monotonic()
        cpu_before, ticks_before = cpu_seconds(worker.process.pid), machine_ticks()
        post_all(stack, DOTCOM, behind)
        mixed = drained(stack, DOTCOM, behind, dotcom_started)
        worker_cpu = cpu_seconds(worker.process.pid) - cpu_before
        published.settled()
        counts = {queue: published.of(queue) for queue in queues}
        published.stop()
        (idle_before, all_before), (idle_after, all_after) = ticks_before, machine_ticks()
        ecomdash_took = drained(stack, ECOMDASH, gathering, started)
        spectrum_took = drained(stack, SPECTRUM, paced, started)
        return Waiting(
            threads=threads,
            burst=burst,
            burst_seconds=burst_seconds,
            burst_calls=burst_stats["calls"],
            burst_throttled=throttled(burst_stats),
            burst_most_at_once=burst_stats["max_concurrency"],
            dotcom=dotcom,
            alone_seconds=alone,
            mixed_seconds=mixed,
            spectrum=spectrum,
            ecomdash=ecomdash,
            ecomdash_seconds=ecomdash_took,
            ecomdash_line=ecomdash_calls(ecomdash_sim),
            spectrum_seconds=spectrum_took,
            spectrum_throttled=spectrum_sim.requests().get("throttled", 0),
            worker_cores=worker_cpu / mixed,
            machine_busy=1 - (idle_after - idle_before) / max(1, all_after - all_before),
            published=counts,
        )
    finally:
        stack.stop()
        redis_server.stop()
        spectrum_sim.stop()
        ecomdash_sim.stop()
        hub.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dotcom", type=int, default=600)
    parser.add_argument("--spectrum", type=int, default=150)
    parser.add_argument("--ecomdash", type=int, default=1000)
    parser.add_argument("--burst", type=int, default=500)
    parser.add_argument("--threads", type=int, default=16)
    args = parser.parse_args()
    found = measure(args.dotcom, args.spectrum, args.ecomdash, args.burst, args.threads)
    for line in found.lines():
        print(line)


if __name__ == "__main__":
    main()
