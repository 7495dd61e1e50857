"""Floors: how far shiphub is from what its parts can do at best, measured in one run.

    python -m benchmarks.floors [--quick] [--seconds 10] [--connections 50]
                                [--releases 100000] [--shipments 10000]
                                [--flower-messages 20000] [--flower-unbounded]
                                [--skip receiver profile handling pushes memory poll flower]

Everything runs on loopback with the real pieces (redis-server with AOF, gunicorn as the
Procfile's ``web`` line runs it, Celery workers, the Dotcom simulator) and prints one table, every
ratio against floors measured in the same run:

1. receiver (``wrk`` with ``benchmarks/wrk/messages.lua``: a unique message_id and shipment
   number per request), each app served by the Procfile's own ``web`` command line: (a) an empty
   POST to Flask, (b) one round trip (parse the body, one ``SET NX``), (c) the naive floor (b plus
   one Celery ``send_task``), (d) shiphub's receiver taking new ``shipment:ready`` messages,
   (e) the same messages again (duplicates). Then the Redis commands each message costs
   (``MONITOR``) and where the receiver's time goes (py-spy, if installed);
2. handling: a backlog whose Dotcom calls take 100 ms, drained by one worker process (threads,
   16) and by two, against the bound concurrency / latency, each after Celery's own floor
   (tasks that only sleep 100 ms, ``benchmarks.floor_apps.drain_floor``);
3. pushes: an outbox drained against a hub that answers in 50 ms, against the same bound;
4. Redis memory per finished message, and what is left of it after ``RECORD_TTL_SECONDS``;
5. big polls (``benchmarks.polls``): a Dotcom poll of ``--releases`` shipped releases (100,000)
   and a Duoplane poll of ``--shipments`` shipments (10,000): wall time, when the answer's last
   part was pushed, the worker's peak RSS growth, Redis memory per confirmation;
6. Flower (``benchmarks.flower``), as the Procfile's ``flower`` line runs it: its resident memory
   before and after ``--flower-messages`` messages (20,000) through receiver and worker.

The profiles need py-spy (``.venv/bin/pip install py-spy``; not a dependency of the service) and
ptrace (root, or CAP_SYS_PTRACE); without it the rest runs. wrk: ``apt-get install -y wrk``.

Quote ratios from one run: absolute figures move between runs on a shared machine.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

import redis
import requests

from benchmarks import flower, polls
from benchmarks.hub_messages import (
    DOTCOM_ENV,
    HUB_STORE,
    HUB_TOKEN,
    PATH,
    hub_body,
    post_backlog,
    procfile_words,
    refusals_line,
    timed,
    unfinished,
)
from benchmarks.polls import keep_alive
from tests.support.records import accept, mark_published
from tests.support.servers import HubServer
from tests.support.simulators import SimulatorProcess
from tests.support.stack import ROOT, RedisServer, Service, Stack, wait_until
from worker.pipeline.runtime import redis_client
from worker.store.bundle import Store
from worker.store.record import Timing
from worker.store.schema import OUTBOX, RECORD_PREFIX

WRK_SCRIPT = ROOT / "benchmarks" / "wrk" / "messages.lua"
PHASES = ("receiver", "profile", "handling", "pushes", "memory", "poll", "flower")


# --------------------------------------------------------------------------------------------
# The table


@dataclass
class Table:
    """Rows as they are measured, printed at the end (and each as it comes, for the impatient)."""

    lines: list[str] = field(default_factory=list)

    def add(self, line: str) -> None:
        print(line, flush=True)
        self.lines.append(line)

    def show(self) -> None:
        print("\n" + "=" * 100)
        print("\n".join(self.lines))


def machine(redis_server: RedisServer) -> str:
    cpu = "unknown CPU"
    with open("/proc/cpuinfo") as info:
        for line in info:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    wrk = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.split()
    return (
        f"machine: {cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"Redis {redis_server.client().info('server')['redis_version']}, "
        f"wrk {wrk[1] if len(wrk) > 1 else '?'}, "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
    )


def require_wrk() -> None:
    if shutil.which("wrk") is None:
        sys.exit(
            "benchmarks.floors needs wrk (a Python client tops out near 1,000 requests/s and would "
            "be the bottleneck): install it with `sudo apt-get install -y wrk`"
        )


# --------------------------------------------------------------------------------------------
# gunicorn as the Procfile runs it


def procfile_web_argv(app_spec: str, port: int, env: dict[str, str]) -> list[str]:
    """The Procfile's ``web`` command, its ``${NAME:-default}`` expanded from ``env``, bound to
    loopback, serving ``app_spec`` instead of ``endpoint.wsgi:app``: every row gets the same
    worker class, processes, connections and timeouts as production."""
    argv = procfile_words("web", {**env, "WEB_ADDRESS": "127.0.0.1", "PORT": str(port)})
    assert argv[0] == "gunicorn" and argv[-1] == "endpoint.wsgi:app", argv
    return [sys.executable, "-m", "gunicorn", *argv[1:-1], app_spec]


@contextmanager
def web(stack: Stack, app_spec: str, name: str) -> Iterator[Service]:
    argv = procfile_web_argv(app_spec, stack.web_port, stack.env)
    service = Service(name, argv, stack.env, stack.log_dir)
    stack.services[name] = service
    try:
        wait_until(lambda: service.running() and _listening(stack.web_port), timeout=30)
        yield service
    finally:
        service.stop()


def _listening(port: int) -> bool:
    try:
        requests.get(f"http://127.0.0.1:{port}/", timeout=2)
    except requests.ConnectionError:
        return False
    return True


def worker_pids(service: Service) -> list[int]:
    """gunicorn's worker processes (the master's children)."""
    pid = service.process.pid
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(x) for x in children]


# --------------------------------------------------------------------------------------------
# wrk


@dataclass(frozen=True)
class Load:
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: dict[str, int]
    per_thread: list[int]
    cpu_us: float | None = None  # the receiver's processes' CPU per request (``serving_cpu``)

    @property
    def rate(self) -> float:
        return self.requests / self.seconds


def template_file() -> Path:
    """The hub's shipment:ready message (``hub_body``) with placeholders the Lua script fills
    per request."""
    body = hub_body()
    body["message_id"] = "@ID@"
    body["payload"]["shipment"]["number"] = "@NUMBER@"
    path = Path(tempfile.mkdtemp(prefix="shiphub-floors-")) / "shipment_ready.json"
    path.write_text(json.dumps(body, separators=(",", ":")))
    return path


def wrk(
    url: str, template: Path, run: str, seconds: float, connections: int, cycle: int = 0
) -> Load:
    argv = [
        "wrk",
        "-t2",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "10s",
        "-s",
        str(WRK_SCRIPT),
        url,
        "--",
        str(template),
        run,
        Stack.ENDPOINT_KEY,
        str(cycle),
    ]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60)
    line = next((x for x in done.stdout.splitlines() if x.startswith("FLOORS ")), None)
    if line is None:
        raise RuntimeError(f"wrk said nothing usable:\n{done.stdout}\n{done.stderr}")
    figures = json.loads(line.removeprefix("FLOORS "))
    errors = {k: figures[k] for k in ("connect", "read", "write", "status", "timeout")}
    return Load(
        figures["requests"],
        figures["duration_us"] / 1e6,
        figures["p50_us"] / 1000,
        figures["p99_us"] / 1000,
        errors,
        figures["per_thread"],
    )


def serving_cpu(service: Service, run: Callable[[], Load]) -> Load:
    """``run`` (a wrk run), with the CPU the receiver's worker processes spent per request: what
    a request costs the receiver, whatever else shares the machine (wrk, Redis)."""
    pids = worker_pids(service)
    before = sum(cpu_seconds(pid) for pid in pids)
    load = run()
    used = sum(cpu_seconds(pid) for pid in pids) - before
    return replace(load, cpu_us=used / max(1, load.requests) * 1e6)


def warm_and_measure(
    service: Service, client: redis.Redis, url: str, template: Path, args: argparse.Namespace
) -> Load:
    """A receiver's row: a warm-up run, Redis left to settle, then the timed run of new
    messages with the receiver's CPU per request."""
    wrk(url, template, run_tag(), args.warmup, args.connections)
    settle(client)
    return serving_cpu(
        service, lambda: wrk(url, template, run_tag(), args.seconds, args.connections)
    )


def sealing_cost(count: int = 20_000) -> float:
    """Microseconds of CPU the intake spends sealing one hub message's parameters
    (``worker.pipeline.intake.sealed_parameters``, the Stack's ``SHIPHUB_SECRET_KEY``), in
    this process: what sealing adds to a message's cost, measured alone (in a wrk row it is
    lost in the noise between runs)."""
    from pydantic import SecretStr

    from worker.basics.sealing import Sealer
    from worker.pipeline.intake import sealed_parameters

    sealer, parameters = Sealer(SecretStr(Stack.SECRET_KEY)), hub_body()["payload"]["parameters"]
    sealed_parameters(sealer, parameters)
    started = time.process_time()
    for _ in range(count):
        sealed_parameters(sealer, parameters)
    return (time.process_time() - started) / count * 1e6


def sealing_line(d: Load) -> str:
    """What sealing the parameters costs per message, against (d)'s receiver CPU per request."""
    cost = sealing_cost()
    share = f", {cost / d.cpu_us:.1%} of (d)'s receiver CPU per request" if d.cpu_us else ""
    return (
        f"  sealing the hub's parameters (api_key, password, shipping_lookup): {cost:.1f} us of "
        f"CPU per message{share} (measured alone, in-process)"
    )


def run_tag() -> str:
    return uuid.uuid4().hex[:4].upper()


def load_line(name: str, load: Load) -> str:
    line = (
        f"{name:<34} {load.rate:8.0f} req/s   p50 {load.p50_ms:6.1f} ms   "
        f"p99 {load.p99_ms:6.1f} ms   ({load.requests} requests"
        + (f", receiver CPU {load.cpu_us:.0f} us/request)" if load.cpu_us is not None else ")")
    )
    bad = {k: v for k, v in load.errors.items() if v}
    if bad:
        line += f"\n  !!!!! {name}: wrk saw errors {bad} (status = non-2xx/3xx answers) !!!!!"
    return line


# --------------------------------------------------------------------------------------------
# Redis round trips per message (MONITOR)


@contextmanager
def monitoring(server: RedisServer) -> Iterator[list[str]]:
    """Every command Redis runs while the block runs (MONITOR), as raw lines."""
    lines: list[str] = []
    stop = threading.Event()
    client = redis.Redis(port=server.port, decode_responses=True, socket_timeout=30)

    def listen() -> None:
        with client.monitor() as monitor:
            while not stop.is_set():
                lines.append(monitor.connection.read_response())

    thread = threading.Thread(target=listen, daemon=True)
    thread.start()
    time.sleep(0.3)
    try:
        yield lines
    finally:
        time.sleep(0.5)
        stop.set()
        server.client().ping()  # wakes the listener, which sees the stop
        thread.join(5)


@dataclass(frozen=True)
class RoundTrips:
    per_message: float  # commands sent by clients (each one a round trip, or part of a pipeline)
    in_scripts: float  # commands run inside Lua scripts (no round trip of their own)
    commands: Counter[str]


def settle(client: redis.Redis, timeout: float = 60.0) -> None:
    """Wait until Redis is quiet (what wrk left in flight has been served, stragglers too): no
    command but a handful (health checks) in each of four half-seconds in a row."""
    deadline, quiet = time.monotonic() + timeout, 0
    while time.monotonic() < deadline and quiet < 4:
        before = int(client.info("stats")["total_commands_processed"])
        time.sleep(0.5)
        busy = int(client.info("stats")["total_commands_processed"]) - before > 4
        quiet = 0 if busy else quiet + 1


def round_trips(
    server: RedisServer, post: Callable[[], None], count: int, dump: Path | None = None
) -> RoundTrips:
    settle(server.client())
    with monitoring(server) as lines:
        for _ in range(count):
            post()
    if dump is not None:
        dump.write_text("\n".join(map(str, lines)))
    client_commands: Counter[str] = Counter()
    scripted = 0
    for line in lines:
        text = str(line)
        match = re.search(r'\[\d+ ([^\]]+)\] "([^"]+)"', text)
        if match is None:
            continue
        source, command = match.groups()
        if source == "lua":
            scripted += 1
        elif command.upper() not in ("MONITOR", "PING", "INFO"):
            client_commands[command.upper()] += 1
    return RoundTrips(sum(client_commands.values()) / count, scripted / count, client_commands)


def trips_line(name: str, trips: RoundTrips, count: int) -> str:
    shown = ", ".join(f"{c} {n / count:g}" for c, n in trips.commands.most_common())
    return (
        f"  {name:<32} {trips.per_message:4.1f} commands/message sent "
        f"(+{trips.in_scripts:.1f} inside Lua): {shown}"
    )


def poster(stack: Stack, template: Path, run: str) -> Callable[[], None]:
    """Post the next message of ``run`` (the same ids as wrk's thread 1 would make)."""
    text = template.read_text()
    session = requests.Session()
    counter = iter(range(10**8))

    def post() -> None:
        n = next(counter)
        body = text.replace("@ID@", f"{run}01{n:08d}").replace("@NUMBER@", f"W{run}01{n:07d}")
        response = session.post(
            f"{stack.url}{PATH}", data=body, headers=stack.headers(), timeout=30
        )
        response.raise_for_status()

    return post


# --------------------------------------------------------------------------------------------
# Profile (py-spy)


@contextmanager
def spying(pids: list[int], out_dir: Path, idle: bool = False) -> Iterator[list[Path]]:
    """py-spy ``record`` of each process while the block runs (raw collapsed stacks, sampled
    without pausing the process); stopped with SIGINT, on which py-spy writes what it has. Idle
    threads are left out, unless ``idle``: then every thread is sampled, named (``--threads``),
    so that a thread's waiting shows too (``thread_states``)."""
    outputs = [out_dir / f"py-spy-{pid}.txt" for pid in pids]
    spies = [
        subprocess.Popen(
            [
                str(py_spy()),
                "record",
                "--pid",
                str(pid),
                "--rate",
                "200",
                "--format",
                "raw",
                "--nonblocking",
                *(["--idle", "--threads"] if idle else []),
                "--output",
                str(out),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for pid, out in zip(pids, outputs, strict=True)
    ]
    time.sleep(1)  # py-spy attaches
    try:
        yield outputs
    finally:
        for spy in spies:
            spy.send_signal(signal.SIGINT)
        for spy in spies:
            try:
                spy.wait(30)
            except subprocess.TimeoutExpired:
                spy.kill()


# Where time goes: a sample counts for the first bucket one of its frames matches.
Buckets = list[tuple[str, tuple[str, ...]]]
RECEIVER_BUCKETS: Buckets = [
    ("envelope (kombu message, built)", ("worker/tasks/enqueue.py",)),
    ("messages.receive_all (Lua: record + LPUSH)", ("receive_all (worker/store/messages.py",)),
    ("read + parse body", ("read_body (endpoint/body.py", "parse_message (endpoint/body.py")),
    ("pydantic validation", ("model_validate", "validate_python")),
    ("answer (record read, reply)", ("_answer (endpoint/app.py", "messages.py)", "record.py)")),
    ("access/intake log lines", ("logging/__init__.py", "worker/basics/logs.py", "glogging.py")),
    ("gunicorn HTTP parse/write", ("gunicorn/http/",)),
    ("Flask/werkzeug dispatch", ("flask/", "werkzeug/")),
    ("gevent hub, other", ("",)),
]
WORKER_BUCKETS: Buckets = [
    ("hub push HTTP call", ("_push (worker/pipeline/delivery.py",)),
    ("provider HTTP call", ("provider_http.py", "requests/", "urllib3/")),
    ("Dotcom mapping, XML", ("worker/integrations/",)),
    (
        "store, outbox (Redis)",
        (
            "worker/store/attempts.py",
            "worker/store/messages.py",
            "worker/store/once.py",
            "worker/store/memory.py",
            "worker/store/record.py",
            "worker/store/scripts.py",
            "worker/store/outbox.py",
            "worker/integrations/job.py",
        ),
    ),
    ("leases, deadline", ("worker/store/leases.py", "worker/basics/deadline.py")),
    ("scheduler tick", ("worker/pipeline/scheduler.py",)),
    ("log lines", ("logging/__init__.py", "worker/basics/logs.py")),
    ("Celery/kombu: consume, ack, events", ("celery/", "kombu/")),
    ("other", ("",)),
]


def summarise_profile(paths: list[Path], buckets_of: Buckets, who: str) -> list[str]:
    """Shares of the samples by bucket, and the functions with the most samples of their own.

    py-spy leaves out idle threads (a greenlet hub in epoll, a pool thread waiting for a task)
    but counts a thread blocked in a socket read as busy: in the worker's thread pool, a read
    from Redis is mostly waiting. The receiver's one thread only reads what is ready."""
    buckets: Counter[str] = Counter()
    leaves: Counter[str] = Counter()
    total = 0
    for path in paths:
        for thread, frames, count in _samples(path):
            if _thread_state(thread, frames)[1] == "waiting":
                continue
            total += count
            for name, needles in buckets_of:
                if any(n in f for f in frames for n in needles):
                    buckets[name] += count
                    break
            leaves[_short(frames[-1])] += count
    if not total:
        return ["  (py-spy recorded nothing: is ptrace allowed? run as root or with SYS_PTRACE)"]
    lines = [f"  where {who} spend their time (py-spy, {total} samples):"]
    lines += [f"    {n / total:6.1%}  {name}" for name, n in buckets.most_common()]
    lines.append("  top functions by own time:")
    lines += [f"    {n / total:6.1%}  {name}" for name, n in leaves.most_common(8)]
    return lines


def _samples(path: Path) -> Iterator[tuple[str, list[str], int]]:
    """(thread name, frames outermost first, samples) per line of a raw py-spy record; the
    thread name is "" unless it was recorded with ``--threads``."""
    if not path.exists():
        return
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not count_text.isdigit():
            continue
        frames = stack.split(";")
        thread = ""
        if frames and frames[0].startswith("thread ("):
            thread = frames.pop(0).partition("): ")[2]
        yield thread, frames, int(count_text)


# What a worker's thread is doing in one sample: (which thread, "busy" or "waiting").
_POLL = "poll (kombu/utils/eventio.py"
_IDLE_LEAVES = ("wait (threading.py", "_loop (worker/store/leases.py", "select (selectors.py")


def _thread_state(thread: str, frames: list[str]) -> tuple[str, str]:
    if not frames:
        return thread, "waiting"  # a thread py-spy saw no Python frame of
    if not thread:
        return "", "busy"  # recorded without idle threads: every sample is a busy one
    if thread == "MainThread":
        return "consumer", "waiting" if any(_POLL in f for f in frames) else "busy"
    if thread.startswith("ThreadPoolExecutor"):
        running = any("apply_target (celery/" in f for f in frames)
        return "pool", "busy" if running else "waiting"
    idle = any(x in frames[-1] for x in _IDLE_LEAVES)
    return "other", "waiting" if idle else "busy"


def thread_states(paths: list[Path]) -> list[str]:
    """How a worker's threads spent the drain (a record with ``idle``): Celery's consumer (the
    process's main thread: fetching, acknowledging, sending events, one after another) busy or
    waiting for the broker, and the pool's threads running a task or waiting for one. A pool
    that waits while its consumer is busy is fed too slowly: the consumer is the limit."""
    states: Counter[tuple[str, str]] = Counter()
    for path in paths:
        for thread, frames, count in _samples(path):
            states[_thread_state(thread, frames)] += count
    lines = []
    consumer = states["consumer", "busy"] + states["consumer", "waiting"]
    if consumer:
        lines.append(
            f"  Celery's consumer thread: {states['consumer', 'busy'] / consumer:.0%} busy "
            "(taking messages, acknowledging, sending task events; a Redis round trip each), "
            f"{states['consumer', 'waiting'] / consumer:.0%} waiting in poll"
        )
    pool = states["pool", "busy"] + states["pool", "waiting"]
    if pool:
        lines.append(
            f"  pool threads: {states['pool', 'busy'] / pool:.0%} of their time running a task, "
            f"{states['pool', 'waiting'] / pool:.0%} waiting for one"
        )
    return lines


def py_spy() -> Path | None:
    """py-spy on the PATH, or beside this Python (``.venv/bin/pip install py-spy`` puts it in
    ``.venv/bin``, which need not be on the PATH)."""
    found = shutil.which("py-spy")
    if found is not None:
        return Path(found)
    beside = Path(sys.executable).parent / "py-spy"
    return beside if beside.exists() else None


def profile_dir() -> Path | None:
    """Where py-spy writes, or None when py-spy is not installed."""
    if py_spy() is None:
        return None
    return Path(tempfile.mkdtemp(prefix="shiphub-floors-profile-"))


def _short(frame: str) -> str:
    """``fn (/long/path/site-packages/pkg/mod.py:12)`` -> ``fn (pkg/mod.py)``."""
    match = re.match(r"(.*) \((.*?):?\d*\)$", frame)
    if not match:
        return frame
    function, path = match.groups()
    for marker in ("site-packages/", "lib/python3.11/", str(ROOT) + "/"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return f"{function} ({path.rstrip(':')})"


# --------------------------------------------------------------------------------------------
# 1. Receiver


def record_ids(client: redis.Redis, run: str) -> set[str]:
    """The message ids recorded for a wrk run."""
    prefix = f"{RECORD_PREFIX}dotcom:"
    return {k.removeprefix(prefix) for k in client.scan_iter(f"{prefix}{run}*", count=1000)}


def all_recorded(client: redis.Redis, run: str, per_thread: list[int]) -> int:
    """How many of each wrk thread's ids from 1 on are all recorded (the smallest over threads).

    A thread counts the requests it built: the last one on each connection may never have been
    sent, nor id 0 of thread 1 (wrk builds it to check the script), nor one the server had not
    read when wrk closed its connections. Re-posting ids 1..this gives nothing but duplicates."""
    prefix = []
    for tid, built in enumerate(per_thread, start=1):
        pipe = client.pipeline(transaction=False)
        for n in range(1, built):
            pipe.exists(f"{RECORD_PREFIX}dotcom:{run}{tid:02d}{n:08d}")
        found = pipe.execute()
        prefix.append(found.index(0) if 0 in found else len(found))
    return max(1, min(prefix))


def receiver_phase(args: argparse.Namespace, server: RedisServer, table: Table) -> None:
    stack = Stack(server, {**DOTCOM_ENV, "DOTCOM_API_URL": "http://127.0.0.1:9/unused"})
    template = template_file()
    client = server.client()
    url = f"{stack.url}{PATH}"
    loads: dict[str, Load] = {}
    trips: list[str] = []
    table.add(
        f"\n1. receiver: wrk -t2 -c{args.connections} -d{args.seconds}s, the Procfile's web line "
        f"(gevent, {stack.env.get('WEB_CONCURRENCY', '2')} processes), no worker"
    )
    floors = [
        ("(a) empty POST", "benchmarks.floor_apps:empty"),
        ("(b) one round trip (SET NX)", "benchmarks.floor_apps:one_round_trip"),
        ("(c) naive floor (+ send_task)", "benchmarks.floor_apps:naive"),
    ]
    for name, spec in floors:
        with web(stack, spec, name.split()[0].strip("()")) as service:
            loads[name] = warm_and_measure(service, client, url, template, args)
            table.add(load_line(name, loads[name]))
            if name.startswith("(b)") or name.startswith("(c)"):
                counted = round_trips(server, poster(stack, template, run_tag()), args.trips)
                trips.append(trips_line(name, counted, args.trips))
    client.delete("floor-nobody")
    for key in client.scan_iter("floor:*", count=1000):
        client.delete(key)

    with web(stack, "endpoint.wsgi:app", "shiphub") as service:
        wrk(url, template, run_tag(), args.warmup, args.connections)
        settle(client)
        queued_before = client.llen("dotcom")
        run = run_tag()
        new = loads["(d) shiphub, new messages"] = serving_cpu(
            service, lambda: wrk(url, template, run, args.seconds, args.connections)
        )
        table.add(load_line("(d) shiphub, new messages", new))
        settle(client)
        before_dup = record_ids(client, run)
        recorded, queued = len(before_dup), client.llen("dotcom") - queued_before
        cycle = all_recorded(client, run, new.per_thread)
        dup = loads["(e) shiphub, duplicates"] = serving_cpu(
            service, lambda: wrk(url, template, run, args.seconds, args.connections, cycle=cycle)
        )
        table.add(load_line("(e) shiphub, duplicates", dup))
        settle(client)
        added = record_ids(client, run) - before_dup
        tasks_added = client.llen("dotcom") - queued_before - queued
        check = (
            f"  check: (d) {new.requests} answered, {recorded} recorded, {queued} tasks queued; "
            f"(e) re-posted ids 1..{cycle} per thread: {len(added)} records and "
            f"{tasks_added} tasks added"
        )
        if recorded < new.requests or queued != recorded:
            check += "   !!!!! MISMATCH !!!!!"
        if added or tasks_added:
            late = [int(i[-8:]) > cycle for i in added]
            check += (
                f"\n  !!!!! records added during (e): {sorted(added)[:5]}; "
                f"{sum(late)} of them beyond (e)'s ids (a late request of (d)) !!!!!"
            )
        table.add(check)
        tag = run_tag()
        dump = stack.log_dir / "monitor-shiphub-new.txt"
        counted = round_trips(server, poster(stack, template, tag), args.trips, dump)
        trips.append(trips_line("(d) shiphub, new", counted, args.trips))
        trips.append(f"  (every command of those posts: {dump})")
        counted = round_trips(server, poster(stack, template, tag), args.trips)
        trips.append(trips_line("(e) shiphub, duplicate", counted, args.trips))
        profile_lines: list[str] = []
        out_dir = profile_dir() if "profile" not in args.skip else None
        if out_dir is not None:
            with spying(worker_pids(service), out_dir) as outputs:
                wrk(url, template, run_tag(), args.seconds, args.connections)
            profile_lines = summarise_profile(outputs, RECEIVER_BUCKETS, "the receiver's workers")
            profile_lines.append(f"  (raw stacks: {out_dir})")
        elif "profile" not in args.skip:
            profile_lines = ["  (no profile: pip install py-spy into .venv to get one)"]
    client.flushall()

    a, b, c = (loads[n] for n, _ in floors)
    d, e = loads["(d) shiphub, new messages"], loads["(e) shiphub, duplicates"]
    table.add(
        f"  ratios: (d)/(c) {d.rate / c.rate:.2f}   (d)/(b) {d.rate / b.rate:.2f}   "
        f"(e)/(b) {e.rate / b.rate:.2f}   (c)/(b) {c.rate / b.rate:.2f}   "
        f"(b)/(a) {b.rate / a.rate:.2f}   p99 (d)/(c) {d.p99_ms / c.p99_ms:.2f}"
    )
    table.add(
        f"  receiver CPU per request: (b) {b.cpu_us:.0f} us, (c) {c.cpu_us:.0f} us, (d) "
        f"{d.cpu_us:.0f} us; (d) at 0.8 of (b)'s rate needs at most {b.cpu_us / 0.8:.0f} us"
    )
    table.add(sealing_line(d))
    table.add(f"  Redis commands per message (MONITOR over {args.trips} sequential posts):")
    for line in trips:
        table.add(line)
    for line in profile_lines:
        table.add(line)


# --------------------------------------------------------------------------------------------
# 2. Handling


# Extra arguments for every worker the drains start (``--prefetch-multiplier``, to compare).
WORKER_ARGS: list[str] = []


def start_workers(
    stack: Stack, processes: int, tag: str, app: str = "worker.tasks.app", queues: str = ""
) -> list[Service]:
    """Start ``processes`` workers of ``app`` at once (so none has a head start), as the
    Procfile's ``worker`` line runs them, and wait for all."""
    argv = [sys.executable, "-m", "celery", "-A", app, "--quiet", "worker"]
    services = [
        stack._start(
            f"worker-{tag}-{i}",
            [
                *argv,
                "--pool",
                "threads",
                "--concurrency",
                "16",
                "--hostname",
                f"worker-{tag}-{i}@%h",
                "--without-mingle",
                "--without-gossip",
                *(["--queues", queues] if queues else []),
                *WORKER_ARGS,
            ],
        )
        for i in range(processes)
    ]
    wait_until(
        lambda: all(s.running() and "ready." in s.output() for s in services),
        timeout=90,
        every=0.05,
    )
    return services


@dataclass(frozen=True)
class Drain:
    rate: float  # items per second
    cpu_ms: float  # CPU of the worker processes per item
    cores: float  # CPU of the worker processes per second of the drain
    others: dict[str, float]  # CPU of the other processes (simulator, Redis...) per second
    machine: float  # share of all the machine's cores busy meanwhile (any process)

    def describe(self, unit: str) -> str:
        others = ", ".join(f"{name} {cores:.2f}" for name, cores in self.others.items())
        return (
            f"worker CPU {self.cpu_ms:.1f} ms/{unit}, {self.cores:.2f} cores"
            + (f" (others, cores: {others})" if others else "")
            + f"; machine {self.machine:.0%} busy"
        )


def machine_ticks() -> tuple[int, int]:
    """(idle, total) CPU ticks of the whole machine so far (``/proc/stat``): a drain on a
    machine whose cores are all busy is bound by CPU, however little its own process takes."""
    values = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    return values[3] + values[4], sum(values)  # idle + iowait, all


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process so far (``/proc/<pid>/stat``, its threads included)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# py-spy takes CPU of its own: a drain it watches is run again, apart from the one timed.
PROFILED_APART = (
    "  (profiled in a second drain of the same size, not timed: py-spy takes CPU of its own)"
)


def drain(
    stack: Stack,
    processes: int,
    tag: str,
    done: Callable[[], int],
    profile: list[str] | None = None,
    others: dict[str, int] | None = None,
    app: str = "worker.tasks.app",
    queues: str = "",
) -> Drain:
    """Items per second from the moment every worker is ready until ``done()`` (what is left)
    reaches 0, counting only what was left at that moment (no head start for early workers),
    and what CPU the workers spent meanwhile."""
    workers = start_workers(stack, processes, tag, app, queues)
    pids = [w.process.pid for w in workers]
    cpu_before = sum(map(cpu_seconds, pids))
    others = others or {}
    others_before = {name: cpu_seconds(pid) for name, pid in others.items()}
    idle_before, ticks_before = machine_ticks()
    started, left = time.perf_counter(), done()
    out_dir = profile_dir() if profile is not None else None
    with spying(pids, out_dir, idle=True) if out_dir else contextlib.nullcontext([]) as outputs:
        wait_until(lambda: done() == 0, timeout=1800, every=0.1)
        elapsed = time.perf_counter() - started
        cpu = sum(map(cpu_seconds, pids)) - cpu_before
        others_cpu = {n: (cpu_seconds(p) - others_before[n]) / elapsed for n, p in others.items()}
        idle_after, ticks_after = machine_ticks()
    if profile is not None and outputs:
        profile += thread_states(outputs)
        profile += summarise_profile(outputs, WORKER_BUCKETS, "the worker's busy threads")
        profile.append(f"  (raw stacks: {out_dir})")
    for worker in workers:
        worker.stop()
    busy = 1 - (idle_after - idle_before) / max(1, ticks_after - ticks_before)
    return Drain(left / elapsed, cpu * 1000 / max(1, left), cpu / elapsed, others_cpu, busy)


def floor_drain(
    server: RedisServer, stack: Stack, processes: int, latency: float, count: int
) -> Drain:
    """The drains' floor (``benchmarks.floor_apps.drain_floor``): ``count`` tasks that only
    sleep ``latency``, queued with no worker running, drained by ``processes`` workers started
    as shiphub's are. What Celery and kombu themselves can do here, with shiphub's settings."""
    logging.disable(logging.WARNING)  # the app's start-up notes ("... is not configured")
    try:
        from benchmarks.floor_apps import DRAIN_QUEUE, DRAIN_TASK, drain_floor
    finally:
        logging.disable(logging.NOTSET)

    drain_floor.conf.broker_url = server.url
    counter = f"floor:drained:{uuid.uuid4().hex}"
    with drain_floor.producer_or_acquire() as producer:
        for _ in range(count):
            drain_floor.send_task(
                DRAIN_TASK, args=[latency, counter], queue=DRAIN_QUEUE, producer=producer
            )
    client = server.client()
    try:
        return drain(
            stack,
            processes,
            f"f{processes}",
            lambda: count - int(client.get(counter) or 0),
            app="benchmarks.floor_apps:drain_floor",
            queues=DRAIN_QUEUE,
        )
    finally:
        client.delete(counter)


@dataclass(frozen=True)
class Handling:
    """One row of the handling phase: shiphub's drain, Celery's floor, and the workers' own
    timings meanwhile (``/metrics``)."""

    processes: int
    bound: float  # concurrency / latency
    floor: Drain
    drained: Drain
    handler_ms: float  # one attempt's handler on average
    provider_ms: float  # one provider call on average
    threads_busy: float  # share of the pool threads' time spent in handlers

    @property
    def ratio(self) -> float:
        return self.drained.rate / self.bound

    def timings_line(self) -> str:
        return (
            f"  the worker's own timings: a handler ran {self.handler_ms:.0f} ms on average "
            f"(its provider call {self.provider_ms:.0f} ms); the pool's threads spent "
            f"{self.threads_busy:.0%} of the drain in handlers, the rest taking tasks, "
            "acknowledging and pushing"
        )


def handling_phase(args: argparse.Namespace, server: RedisServer, table: Table) -> list[Handling]:
    """Phase 2's rows, added to ``table``; returned for ``benchmarks.cost``."""
    latency = 0.1
    found: list[Handling] = []
    sim = SimulatorProcess("simulators.dotcom", {})
    api_url = f"{sim.url}/dcd_api_test/DCDAPIService.svc"
    stack = Stack(server, {**DOTCOM_ENV, "DOTCOM_API_URL": api_url})
    table.add(
        f"\n2. handling: Dotcom simulator answering orders in {latency * 1000:.0f} ms, "
        "threads pool x16 per worker process, backlog preloaded with no worker running"
    )
    try:
        web = stack.start_web()

        def backlog(count: int) -> str | None:
            sim.reset()
            sim.control(
                "POST",
                "faults",
                {"kind": "slow", "route": "order", "count": count, "delay_seconds": latency},
            )
            return refusals_line(post_backlog(stack, count))

        for processes in (1, 2):
            count = args.messages * processes
            refused = backlog(count)
            others = {
                "simulator": sim.process.process.pid,
                "redis": server.process.pid,  # type: ignore[union-attr]
                "receiver": worker_pids(web)[0],
            }
            bound = processes * 16 / latency
            floor = floor_drain(server, stack, processes, latency, count)
            table.add(
                f"{f'Celery floor, {processes} process(es)':<34} "
                f"{floor.rate:8.1f} tasks/s bound {bound:.0f}/s   "
                f"ratio {floor.rate / bound:.2f}   {floor.describe('task')}"
            )
            handlers, providers = timed(stack, HANDLER_TIMES), timed(stack, PROVIDER_TIMES)
            drained = drain(
                stack, processes, f"h{processes}", lambda: unfinished(stack), None, others
            )
            table.add(
                f"{f'{processes} worker process(es), {count} messages':<34} "
                f"{drained.rate:8.1f} msg/s   bound {bound:.0f}/s   "
                f"ratio {drained.rate / bound:.2f}   {drained.describe('message')}"
            )
            (h_sum, h_count), (p_sum, p_count) = (
                _delta(timed(stack, HANDLER_TIMES), handlers),
                _delta(timed(stack, PROVIDER_TIMES), providers),
            )
            seconds = count / drained.rate
            found.append(
                Handling(
                    processes,
                    bound,
                    floor,
                    drained,
                    h_sum / max(1, h_count) * 1000,
                    p_sum / max(1, p_count) * 1000,
                    h_sum / (processes * 16 * seconds),
                )
            )
            table.add(found[-1].timings_line())
            if refused:
                table.add(refused)
            if processes == 1 and "profile" not in args.skip and py_spy():
                backlog(count)
                profile: list[str] = [PROFILED_APART]
                drain(stack, processes, "h1-profiled", lambda: unfinished(stack), profile)
                for line in profile:
                    table.add(line)
    finally:
        stack.stop()
        sim.stop()
        server.client().flushall()
    return found


HANDLER_TIMES = "shiphub_handler_duration_seconds"
PROVIDER_TIMES = "shiphub_provider_call_duration_seconds"


def _delta(after: tuple[float, int], before: tuple[float, int]) -> tuple[float, int]:
    return after[0] - before[0], after[1] - before[1]


# --------------------------------------------------------------------------------------------
# 3. Pushes


def finished_with_push(db: Store, message_id: str) -> None:
    """A message accepted, handled and finished with an answer to push (what a worker leaves
    in the outbox), written straight to Redis so that only the pushes are measured."""
    fields = {
        "integration": "dotcom",
        "message_id": message_id,
        "message": "shipment:ready",
        "service": "send_shipment",
        "store": HUB_STORE,
        "body": '{"payload": {}}',
    }
    accept(db, "dotcom", message_id, "digest", fields)
    mark_published(db, "dotcom", message_id, time.time())
    lease = uuid.uuid4().hex
    db.attempts.begin("dotcom", message_id, lease)
    answer = {
        "message_id": message_id,
        "notifications": [{"level": "info", "subject": "Sent", "description": "Sent"}],
    }
    db.attempts.finish(
        "dotcom",
        message_id,
        "succeeded",
        answer,
        error=None,
        cursor={},
        push=True,
        lease_token=lease,
    )


def pushes_phase(args: argparse.Namespace, server: RedisServer, table: Table) -> None:
    latency = 0.05
    hub = keep_alive(HubServer(HUB_TOKEN, HUB_STORE))
    hub.delay = latency
    stack = Stack(
        server,
        {
            **DOTCOM_ENV,
            "DOTCOM_API_URL": "http://127.0.0.1:9/unused",
            "HUB_PUSH_URL": f"{hub.url}/push",
            "HUB_ACCESS_TOKEN": HUB_TOKEN,
            "HUB_STORE": HUB_STORE,
        },
    )
    count = args.pushes
    db = Store.on(redis_client(server.url), Timing())
    run = uuid.uuid4().hex[:8]

    def fill(first: int) -> None:
        with ThreadPoolExecutor(8) as pool:
            list(
                pool.map(
                    lambda i: finished_with_push(db, f"push-{run}-{i}"),
                    range(first, first + count),
                )
            )

    fill(0)
    outbox = server.client()
    profile: list[str] = []
    try:
        others = {"hub (this process)": os.getpid(), "redis": server.process.pid}  # type: ignore[union-attr]
        drained = drain(stack, 1, "push", lambda: outbox.zcard(OUTBOX), None, others)
        wait_until(lambda: len(hub.pushes) >= count, timeout=60)
        pushed, bad = len(hub.pushes), len(hub.bad_signatures)
        if "profile" not in args.skip and py_spy():
            fill(count)
            profile.append(PROFILED_APART)
            drain(stack, 1, "push-profiled", lambda: outbox.zcard(OUTBOX), profile)
    finally:
        stack.stop()
        hub.close()
        server.client().flushall()
    bound = 16 / latency
    table.add(
        f"\n3. pushes: outbox of {count} answers, hub answering in {latency * 1000:.0f} ms, "
        "one worker process (threads x16)"
    )
    table.add(
        f"{'1 worker process':<34} {drained.rate:8.1f} pushes/s   bound {bound:.0f}/s   "
        f"ratio {drained.rate / bound:.2f}   {drained.describe('push')}   "
        f"({pushed} pushes, {bad} bad)"
    )
    for line in profile:
        table.add(line)


# --------------------------------------------------------------------------------------------
# 4. Memory


def memory_phase(args: argparse.Namespace, table: Table) -> None:
    ttl = args.record_ttl
    server = RedisServer().start()
    sim = SimulatorProcess("simulators.dotcom", {})
    stack = Stack(
        server,
        {
            **DOTCOM_ENV,
            "DOTCOM_API_URL": f"{sim.url}/dcd_api_test/DCDAPIService.svc",
            "RECORD_TTL_SECONDS": str(ttl),
        },
    )
    client = server.client()
    count = args.memory_messages
    try:
        stack.start_web()
        stack.start_worker("worker-memory", "threads", 16)
        time.sleep(2)
        empty, empty_keys = _memory(client)
        started = time.monotonic()
        refused = refusals_line(post_backlog(stack, count))
        wait_until(lambda: unfinished(stack) == 0, timeout=600, every=0.2)
        time.sleep(1)
        finished, finished_keys = _memory(client)
        sizes = _key_sizes(client)
        took = time.monotonic() - started
        time.sleep(ttl + 5)
        aged, aged_keys = _memory(client)
        left = _key_kinds(client)
    finally:
        stack.stop()
        sim.stop()
        server.stop()
    table.add(
        f"\n4. Redis memory: {count} Dotcom messages through receiver and worker, "
        f"RECORD_TTL_SECONDS={ttl}"
    )
    table.add(
        f"{'per finished message':<34} {(finished - empty) / count:8.0f} bytes   "
        f"({finished_keys - empty_keys} keys for {count} messages)"
    )
    table.add(f"  keys by kind: {sizes}")
    if refused:
        table.add(refused)
    table.add(
        f"{'per message after the record TTL':<34} {(aged - empty) / count:8.0f} bytes   "
        f"({aged_keys - empty_keys} keys left: {left})"
    )
    if took > ttl:
        table.add(f"  !!!!! posting and handling took {took:.0f} s > the TTL: raise --record-ttl")


def _memory(client: redis.Redis) -> tuple[int, int]:
    return int(client.info("memory")["used_memory"]), int(client.dbsize())


def _key_sizes(client: redis.Redis, sample: int = 50) -> str:
    """Keys by kind, with the mean ``MEMORY USAGE`` of up to ``sample`` of each (every field
    and element counted: by default Redis estimates a hash from 5 of its fields, and a record's
    fields range from a digit to its answer)."""
    keys: dict[str, list[str]] = {}
    for key in client.scan_iter(count=1000):
        keys.setdefault(":".join(key.split(":")[:2]), []).append(key)
    shown = []
    for kind, found in sorted(keys.items(), key=lambda kv: -len(kv[1]))[:6]:
        sizes = [client.memory_usage(k, samples=0) or 0 for k in found[:sample]]
        shown.append(f"{kind} {len(found)} x {sum(sizes) / len(sizes):.0f} B")
    return ", ".join(shown)


def _key_kinds(client: redis.Redis) -> str:
    """Keys left, grouped by their first two ``:`` parts (``shiphub:mem``...)."""
    kinds: Counter[str] = Counter(":".join(k.split(":")[:2]) for k in client.scan_iter(count=1000))
    return ", ".join(f"{k} {n}" for k, n in kinds.most_common(6))


# --------------------------------------------------------------------------------------------
# 5. Big polls (``benchmarks.polls``): Dotcom's shipped releases, Duoplane's shipments


def poll_phase(args: argparse.Namespace, table: Table) -> None:
    table.add(
        "\n5. big polls: one worker, the provider's simulator, the answer pushed to a hub in parts"
    )
    for figures in (polls.dotcom_poll(args.releases), polls.duoplane_poll(args.shipments)):
        for row in figures.rows():
            table.add(row)


# --------------------------------------------------------------------------------------------
# 6. Flower's memory (``benchmarks.flower``)


def flower_phase(args: argparse.Namespace, table: Table) -> None:
    table.add(
        f"\n6. Flower, as the Procfile's flower line runs it: {args.flower_messages} Dotcom "
        "messages through receiver and worker (threads x16), their answers pushed to a hub"
    )
    for row in flower.measure(args.flower_messages, args.flower_unbounded):
        table.add(row)


# --------------------------------------------------------------------------------------------


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="everything scaled down (< 2 min)")
    parser.add_argument("--seconds", type=float, help="wrk duration per row (default 10; quick 3)")
    parser.add_argument("--warmup", type=float, help="wrk warm-up per app (default 2; quick 1)")
    parser.add_argument("--connections", type=int, default=50, help="wrk connections (50)")
    parser.add_argument("--trips", type=int, default=20, help="posts watched with MONITOR (20)")
    parser.add_argument("--messages", type=int, help="backlog per worker process (1600; quick 150)")
    parser.add_argument("--pushes", type=int, help="answers in the outbox (3200; quick 300)")
    parser.add_argument(
        "--memory-messages", type=int, help="messages for the memory figures (1000; quick 200)"
    )
    parser.add_argument(
        "--record-ttl", type=int, help="RECORD_TTL_SECONDS in the memory run (30; quick 10)"
    )
    parser.add_argument(
        "--releases", type=int, help="releases in the Dotcom poll (100000; quick 1000)"
    )
    parser.add_argument(
        "--shipments", type=int, help="shipments in the Duoplane poll (10000; quick 500)"
    )
    parser.add_argument(
        "--flower-messages", type=int, help="messages Flower watches (20000; quick 1000)"
    )
    parser.add_argument(
        "--flower-unbounded",
        action="store_true",
        help="a second Flower with Flower's default --max_tasks (100000), to compare",
    )
    parser.add_argument(
        "--prefetch-multiplier",
        type=int,
        help="the drains' workers take this prefetch instead of celeryconfig's (1), to compare",
    )
    parser.add_argument("--skip", nargs="*", default=[], choices=PHASES, help="phases to skip")
    args = parser.parse_args()
    quick = args.quick
    defaults = {
        "seconds": (10, 3),
        "warmup": (2, 1),
        "messages": (1600, 150),
        "pushes": (3200, 300),
        "memory_messages": (1000, 200),
        "record_ttl": (30, 10),
        "releases": (100_000, 1000),
        "shipments": (10_000, 500),
        "flower_messages": (20_000, 1000),
    }
    for name, (full, small) in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, small if quick else full)
    return args


def main() -> None:
    args = arguments()
    require_wrk()
    if args.prefetch_multiplier:
        WORKER_ARGS.extend(["--prefetch-multiplier", str(args.prefetch_multiplier)])
    table = Table()
    server = RedisServer().start()
    started = time.monotonic()
    try:
        table.add(machine(server))
        if "receiver" not in args.skip:
            receiver_phase(args, server, table)
        if "handling" not in args.skip:
            handling_phase(args, server, table)
        if "pushes" not in args.skip:
            pushes_phase(args, server, table)
    finally:
        server.stop()
    if "memory" not in args.skip:
        memory_phase(args, table)
    if "poll" not in args.skip:
        poll_phase(args, table)
    if "flower" not in args.skip:
        flower_phase(args, table)
    table.add(f"\n(run took {time.monotonic() - started:.0f} s)")
    table.show()


if __name__ == "__main__":
    main()
