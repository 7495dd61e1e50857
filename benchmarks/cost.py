"""Cost at scale (issue 23): every figure in one run, each against its target.

    python -m benchmarks.cost [--quick] [--skip waiting published memory flower intake handling]

Runs, one after the other, the benchmarks that measure what a message costs, each through its
own module's function (the real pieces on loopback, as each module's docstring says):

* ``waiting`` (``benchmarks.waiting``): 500 ecomdash confirmations of one account with the
  Procfile's 16 threads (the calls they went out in, 429s, calls at once); 600 Dotcom shipments
  alone, then while 150 Spectrum and 1,000 ecomdash confirmations wait (the drain's ratio);
* ``published`` (``benchmarks.published_once``): tasks published per push, per handler message
  and per scheduled retry under a 20,000-message backlog (1,000 retries);
* ``memory`` (``benchmarks.shipment_memory``): Redis bytes per Dotcom shipment while its
  records live and once they expired (2,000 shipments, records kept 180 s), and the steady
  state at 10,000, 100,000 and 1,000,000 shipments a day at the default retention;
* ``flower`` (``benchmarks.flower``): Flower's memory, as the Procfile runs it, after 20,000
  messages;
* ``intake`` (``benchmarks.intake``): the hub's real bodies (parameters included) as a fraction
  of one Redis round trip, in 5 interleaved rounds, and what sealing the parameters costs;
* ``handling`` (``benchmarks.floors``' phase 2): a backlog whose provider call takes 100 ms,
  drained by one worker process and by two, against concurrency / latency.

It prints each module's own lines as they come, then one table: figure, measured, target, and
met or the gap, with the machine (cores, load average at the start and at the end, Python,
Redis). Where a target is not met, the lines under it say why, from what the run measured
(the worker's CPU and its own timings, how busy the machine was, Celery's own floor in the same
run) and name the section of docs/benchmarks.md that explains it. ``--quick`` scales every size
down (a few minutes; it says so, and its figures are not the issue's).
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import subprocess
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field

from benchmarks import flower, intake, published_once, shipment_memory, waiting
from benchmarks.floors import Handling, Table, handling_phase, sealing_cost
from tests.support.stack import RedisServer

SECTIONS = ("waiting", "published", "memory", "flower", "intake", "handling")
DOCS = "docs/benchmarks.md"
# A machine this busy during a drain gave the drain what was left of its cores.
SATURATED = 0.9


@dataclass(frozen=True)
class Sizes:
    dotcom: int = 600
    spectrum: int = 150
    ecomdash: int = 1000
    burst: int = 500
    backlog: int = 20_000
    failing: int = 1000
    deadline: float | None = None  # QUEUED_DEADLINE_SECONDS (None: the service's 60 s)
    shipments: int = 2000
    record_ttl: int = 180
    flower_messages: int = 20_000
    flower_max_tasks: int | None = None  # None: the Procfile's FLOWER_MAX_TASKS default
    rounds: int = 5
    seconds: float = 10
    warmup: float = 3
    drain_messages: int = 1600  # per worker process


QUICK = Sizes(
    dotcom=200,
    spectrum=30,
    ecomdash=300,
    backlog=2000,
    failing=100,
    deadline=10,  # the smaller backlog still waits past it
    shipments=300,
    record_ttl=60,
    flower_messages=2000,
    flower_max_tasks=1000,  # reached in the first half, as 10,000 is in 20,000 messages
    rounds=1,
    seconds=3,
    warmup=1,
    drain_messages=150,
)


@dataclass
class Figure:
    name: str
    measured: str
    target: str = ""  # "" for a figure without one
    met: bool | None = None  # None: no target
    gap: list[str] = field(default_factory=list)  # why, when the target is not met

    def rows(self) -> list[str]:
        verdict = "" if self.met is None else ("met" if self.met else "GAP")
        rows = [f"{self.name:<50} {self.measured:<44} {self.target:<12} {verdict}".rstrip()]
        if not self.met:
            rows += [f"{'':<4}{line}" for line in self.gap]
        return rows


# --------------------------------------------------------------------------------------------
# The sections: each runs one module's measure and says what it found as figures.


def waits(sizes: Sizes) -> list[Figure]:
    found = waiting.measure(sizes.dotcom, sizes.spectrum, sizes.ecomdash, sizes.burst, 16)
    for line in found.lines():
        print(line, flush=True)
    burst_ok = found.burst_calls <= 8 and found.burst_throttled == 0
    drain_gap = [
        f"during the drain the worker took {found.worker_cores:.2f} cores of {os.cpu_count()}, "
        f"the machine was {found.machine_busy:.0%} busy",
        (
            "the machine's cores were taken: the drain got what was left of them"
            if found.machine_busy >= SATURATED
            else "no thread waits (the confirmations' waits are scheduled): the worker "
            "process's dispatch runs a task at a time whatever its handler does, so Dotcom's "
            "speed is its share of the tasks"
        ),
        f"see {DOCS}#waits-that-hold-no-thread",
    ]
    return [
        Figure(
            f"ecomdash: calls for {found.burst} confirmations, 16 threads",
            f"{found.burst_calls} calls, {found.burst_throttled} x 429, "
            f"{found.burst_most_at_once} at once, {found.burst_seconds:.1f} s",
            "<= 8, no 429",
            burst_ok,
            [f"see {DOCS}#ecomdash-batches"],
        ),
        Figure(
            f"Dotcom drain while Spectrum+ecomdash wait ({found.dotcom})",
            f"{found.ratio:.2f} ({found.alone_seconds:.1f} s alone, {found.mixed_seconds:.1f} s)",
            ">= 0.80",
            found.ratio >= 0.8,
            drain_gap,
        ),
        Figure(
            f"  the {found.ecomdash} ecomdash confirmations meanwhile",
            found.ecomdash_line.replace(" records", "").split(", at most")[0],
        ),
        Figure(
            f"  the {found.spectrum} Spectrum confirmations meanwhile",
            f"{found.spectrum_seconds:.1f} s, {found.spectrum_throttled} throttled",
            "none throttled",
            found.spectrum_throttled == 0,
        ),
    ]


def published(sizes: Sizes) -> list[Figure]:
    found = published_once.measure(sizes.backlog, sizes.failing, deadline=sizes.deadline)
    for line in found.lines():
        print(line, flush=True)
    gap = [
        f"republished by the watchdog as lost: {found.republished}; see "
        "docs/guarantees.md#each-piece-of-work-published-once"
    ]
    per_retry = found.per_retry
    backlog = f"{found.messages:,}-message backlog"
    return [
        Figure(
            f"push tasks per push, {backlog}",
            f"{found.per_push:.3f} ({found.push_tasks} for {found.delivered})",
            "<= 1.1",
            found.per_push <= 1.1,
            gap,
        ),
        Figure(
            "handler tasks per message",
            f"{found.per_message:.3f} ({found.messages + found.republished} for {found.messages})",
            "<= 1.1",
            found.per_message <= 1.1,
            gap,
        ),
        Figure(
            "tasks per scheduled retry",
            "no retry scheduled"
            if per_retry is None
            else f"{per_retry:.3f} ({found.retry_tasks} for {found.retries})",
            "<= 1.1",
            per_retry is not None and per_retry <= 1.1,
            gap,
        ),
    ]


def memory(sizes: Sizes) -> list[Figure]:
    got = shipment_memory.run(sizes.shipments, sizes.record_ttl, 256)
    rows = shipment_memory.lines(got, sizes.record_ttl, 256)
    for line in rows:
        print(line, flush=True)
    live, after = shipment_memory.per_shipment(got)
    families = ", ".join(
        f"{family.split(':')[1]} {size / got['count']:.0f}"
        for family, size in got["live"].most_common(3)
    )
    figures = [
        Figure(
            "Redis bytes a shipment once its records expired",
            f"{after:.0f} B ({got['count']} shipments)",
            "<= 200 B",
            after <= 200,
            [
                "by family: "
                + ", ".join(
                    f"{family} {size / got['count']:.0f} B"
                    for family, size in got["aged"].most_common()
                    if size > 0
                )
                + f"; see {DOCS}#memory-per-shipment"
            ],
        ),
        Figure(
            "Redis bytes a shipment while its records live",
            f"{live:.0f} B ({families})",
            "",
            None,
        ),
    ]
    steady = shipment_memory.table(after, live - after)[1:]
    for daily, row in zip(shipment_memory.DAILY, steady, strict=True):
        total = row.split()[-2]
        figures.append(
            Figure(f"  steady state, {daily:,} shipments a day", f"{total} GiB of Redis")
        )
    if got["took_longer"]:
        figures[0].gap.append("!!!!! handling took longer than the record TTL: figures suspect")
    return figures


def flowers(sizes: Sizes) -> list[Figure]:
    found, notes = flower.observe(sizes.flower_messages, max_tasks=sizes.flower_max_tasks)
    (bounded,) = found
    for line in [bounded.row(sizes.flower_messages), *notes]:
        print(line, flush=True)
    growth = bounded.after_mib - bounded.half_mib
    return [
        Figure(
            f"Flower RSS after {sizes.flower_messages:,} messages",
            f"{bounded.after_mib:.0f} MiB ({bounded.before_mib:.0f} before, "
            f"{bounded.half_mib:.0f} at half; --max_tasks={bounded.max_tasks})",
            "bounded",
            growth <= 0.1 * bounded.half_mib,
            [
                f"grew {growth:.0f} MiB over the second half (bounded: at most 10 %); "
                f"see {DOCS}#flowers-memory"
            ],
        )
    ]


def intakes(sizes: Sizes) -> list[Figure]:
    rounds = intake.measure(sizes.rounds, sizes.seconds, sizes.warmup)
    ratio, cpu = intake.ratio(rounds), intake.cpu_ratio(rounds)
    d_cpu = sorted(r.d.cpu_us or 0 for r in rounds)[len(rounds) // 2]
    sealing = sealing_cost()
    return [
        Figure(
            "intake, the hub's real bodies, / one round trip",
            f"{ratio:.2f} (by receiver CPU {cpu:.2f}; {len(rounds)} round(s))",
            ">= 0.80",
            ratio >= 0.8,
            [
                f"the receiver's CPU per request, (b)/(d): {cpu:.2f} (the ratio a receiver "
                "bound by its own CPU reaches, which moves less than the rates on a busy machine)"
                f"; load average now {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores",
                f"what (d) spends beyond (b), from the receiver's profile: see "
                f"{DOCS}#where-the-gaps-are",
            ],
        ),
        Figure(
            "  sealing the parameters, per message",
            f"{sealing:.1f} us of CPU"
            + (f" ({sealing / d_cpu:.1%} of (d)'s per request)" if d_cpu else ""),
        ),
    ]


def handlings(sizes: Sizes) -> list[Figure]:
    # py-spy's profile of the drain, when it is installed (floors' "profile" phase)
    args = argparse.Namespace(messages=sizes.drain_messages, skip=[])
    server = RedisServer().start()
    try:
        rows = handling_phase(args, server, Table())
    finally:
        server.stop()
    return [
        Figure(
            f"handling drain / (threads / latency), {row.processes} worker(s)",
            f"{row.ratio:.2f} ({row.drained.rate:.0f} of {row.bound:.0f} msg/s)",
            ">= 0.90",
            row.ratio >= 0.9,
            handling_gap(row),
        )
        for row in rows
    ]


def handling_gap(row: Handling) -> list[str]:
    floor = row.floor.rate / row.bound
    lines = [
        f"Celery's own floor (tasks that only sleep 100 ms) reached {floor:.2f} in this run; "
        f"the worker spent {row.drained.cpu_ms:.1f} ms of CPU a message, "
        f"{row.drained.cores:.2f} cores; the machine was {row.drained.machine:.0%} busy",
        row.timings_line().strip(),
    ]
    if row.drained.machine >= SATURATED:
        lines.append("the machine's cores were taken: the drain is bound by CPU here")
    if row.threads_busy < 0.9:
        lines.append(
            "threads that are not in a handler wait for Celery's consumer thread (a Redis round "
            "trip per delivery and per acknowledgement)"
        )
    lines.append(f"see {DOCS}#where-the-gaps-are")
    return lines


RUNS: dict[str, Callable[[Sizes], list[Figure]]] = {
    "waiting": waits,
    "published": published,
    "memory": memory,
    "flower": flowers,
    "intake": intakes,
    "handling": handlings,
}
TARGETS = {  # what a section that could not run leaves unmeasured
    "waiting": ("ecomdash calls, Dotcom drain while others wait", "<= 8; >= 0.80"),
    "published": ("tasks per push, per message, per retry", "<= 1.1"),
    "memory": ("Redis bytes a shipment", "<= 200 B"),
    "flower": ("Flower's memory", "bounded"),
    "intake": ("intake / one round trip", ">= 0.80"),
    "handling": ("handling drain / (concurrency / latency)", ">= 0.90"),
}


# --------------------------------------------------------------------------------------------


def redis_version() -> str:
    said = subprocess.run(["redis-server", "--version"], capture_output=True, text=True).stdout
    found = re.search(r"v=(\S+)", said)
    return found.group(1) if found else "?"


def cpu_model() -> str:
    with open("/proc/cpuinfo") as info:
        for line in info:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return "unknown CPU"


def load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="every size scaled down")
    parser.add_argument("--skip", nargs="*", default=[], choices=SECTIONS, help="sections to skip")
    args = parser.parse_args()
    sizes = QUICK if args.quick else Sizes()
    started, load_at_start = time.monotonic(), load()
    machine = (
        f"machine: {cpu_model()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"Redis {redis_version()}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
    )
    scale = (
        "--quick: every size scaled down (below), the figures check the run works and are not "
        "the issue's"
        if args.quick
        else "the issue's sizes"
    )
    print(f"{machine}\n{scale}: {sizes}\n", flush=True)
    figures: list[Figure] = []
    for name in SECTIONS:
        if name in args.skip:
            continue
        print(f"\n--- {name} ({time.monotonic() - started:.0f} s in)", flush=True)
        try:
            figures += RUNS[name](sizes)
        except Exception as exc:  # one section's failure leaves the others' figures
            traceback.print_exc()
            what, target = TARGETS[name]
            figures.append(Figure(what, f"not measured ({type(exc).__name__})", target, False))
            figures[-1].gap.append(f"{name} failed: {exc}"[:300])
    print("\n" + "=" * 120)
    print(machine)
    print(f"load average (1, 5, 15 min): {load_at_start} at the start, {load()} at the end")
    if args.quick:
        print(scale)
    print(f"\n{'figure':<50} {'measured':<44} {'target':<12} met / gap")
    for figure in figures:
        for row in figure.rows():
            print(row)
    met = [f for f in figures if f.met is not None]
    print(
        f"\n{sum(1 for f in met if f.met)} of {len(met)} targets met; "
        f"run took {time.monotonic() - started:.0f} s"
    )


if __name__ == "__main__":
    main()
