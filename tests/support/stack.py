"""Start and stop the real pieces for pipeline tests: redis-server, gunicorn, Celery worker/beat."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import redis
import requests

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(check: Callable[[], Any], timeout: float = 20.0, every: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except AssertionError:  # a definite failure, such as a process that died
            raise
        except Exception as exc:  # the thing is not up yet
            last = exc
        else:
            if last:
                return last
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout}s (last: {last!r})")


class RedisServer:
    """A real redis-server on a free port, AOF on, as the service runs it."""

    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (the test command installs it)")
        self.binary = binary
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="shiphub-redis-")
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        self.process = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                self.dir,
                "--appendonly",
                "yes",
                "--save",
                "",
                "--maxmemory-policy",
                "noeviction",
                # What handler memory's figures assume (docs/deployment.md#redis-settings).
                "--hash-max-listpack-value",
                "256",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until(self.client().ping)
        return self

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, decode_responses=True, socket_timeout=5)


class Service:
    """One of our processes (gunicorn, a Celery worker, beat), logging to a file."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self.log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            argv,
            env=env,
            cwd=ROOT,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def alive(self) -> bool:
        return self.process.poll() is None

    def running(self) -> bool:
        """Alive, or an AssertionError with the log (so a start-up crash fails fast)."""
        if not self.alive():
            raise AssertionError(f"{self.name} exited at start-up:\n{self.output()[-3000:]}")
        return True

    def kill(self) -> None:
        """kill -9 the whole process group: no goodbye, no acks."""
        if self.alive():
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.alive():
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()
        self.log.close()

    def output(self) -> str:
        if not self.log.closed:  # a stopped service's log is complete
            self.log.flush()
        return self.log_path.read_text(errors="replace")


class Stack:
    """The service as it runs in production, on loopback: receiver, workers, beat."""

    ENDPOINT_KEY = "test-endpoint-key"
    SECRET_KEY = "4xK0gvQb0Z1m2Ab3yQ9cJ7dXo8hS5kLr6tW1uE2iV3c="  # a Fernet key for the tests
    # HUB_PUSH_SECRET: every push is signed as Standard Webhooks, and the hub stub
    # (tests.support.servers.HubServer) verifies each with the reference library.
    PUSH_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw/eJ+6TeLjzc="

    def __init__(self, redis_server: RedisServer, extra_env: dict[str, str | None]) -> None:
        self.redis = redis_server
        self.log_dir = Path(tempfile.mkdtemp(prefix="shiphub-logs-"))
        self.web_port = free_port()
        self.env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "REDIS_URL": redis_server.url,
            "ENDPOINT_KEY": self.ENDPOINT_KEY,
            "SHIPHUB_SECRET_KEY": self.SECRET_KEY,
            "HUB_PUSH_SECRET": self.PUSH_SECRET,
            "SHIPHUB_INTEGRATION_MODULES": "tests.support.acme",
            "BROKER_VISIBILITY_TIMEOUT_SECONDS": "6",
            "TASK_TIME_LIMIT_SECONDS": "4",
            "RETRY_BASE_SECONDS": "0.2",
            "RETRY_MAX_SECONDS": "1",
            "HUB_PUSH_RETRY_MAX_SECONDS": "2",
            "TASK_MAX_ATTEMPTS": "3",
            "POLLS": "off",
        }
        # A None in extra_env removes a default (the setting's own default applies).
        for name, value in extra_env.items():
            if value is None:
                self.env.pop(name, None)
            else:
                self.env[name] = value
        self.services: dict[str, Service] = {}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    def headers(self, **extra: str) -> dict[str, str]:
        return {"X-Hub-Token": self.ENDPOINT_KEY, **extra}

    def start_web(self, worker_class: str = "gevent", name: str = "web") -> Service:
        """gunicorn as the Procfile runs it (gevent), or with another worker class to compare."""
        per_worker = (
            ["--worker-connections", "2000"] if worker_class == "gevent" else ["--threads", "16"]
        )
        service = self._start(
            name,
            [
                sys.executable,
                "-m",
                "gunicorn",
                "--bind",
                f"127.0.0.1:{self.web_port}",
                "--worker-class",
                worker_class,
                *per_worker,
                "--workers",
                "1",
                "--graceful-timeout",
                "2",
                "endpoint.wsgi:app",
            ],
        )
        wait_until(
            lambda: service.running() and requests.get(f"{self.url}/healthz", timeout=2).ok,
            timeout=30,
        )
        return service

    def start_worker(
        self,
        name: str = "worker",
        pool: str = "threads",
        concurrency: int = 8,
        queues: str | None = None,
    ) -> Service:
        service = self._celery(
            name,
            "worker",
            "--pool",
            pool,
            "--concurrency",
            str(concurrency),
            "--hostname",
            f"{name}@%h",
            "--without-mingle",
            "--without-gossip",
            *(["--queues", queues] if queues else []),
        )
        wait_until(lambda: service.running() and "ready." in service.output(), timeout=60)
        return service

    def start_beat(self, name: str = "beat") -> Service:
        return self._celery(name, "beat")

    def start_flower(self, port: int) -> Service:
        """Flower as operators run it, its API open (no auth) for the test to read."""
        self.env["FLOWER_UNAUTHENTICATED_API"] = "true"
        service = self._start(
            "flower",
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "worker.tasks.app",
                "flower",
                "--address=127.0.0.1",
                f"--port={port}",
            ],
        )
        wait_until(
            lambda: (
                service.running()
                and requests.get(f"http://127.0.0.1:{port}/api/workers", timeout=2).ok
            ),
            timeout=30,
        )
        return service

    def start_simulator(self, name: str, module: str, port: int) -> Service:
        return self._start(name, [sys.executable, "-m", module, "--port", str(port)])

    def _celery(self, name: str, *args: str) -> Service:
        return self._start(
            name, [sys.executable, "-m", "celery", "-A", "worker.tasks.app", "--quiet", *args]
        )

    def _start(self, name: str, argv: list[str]) -> Service:
        service = Service(name, argv, self.env, self.log_dir)
        self.services[name] = service
        return service

    def post(
        self,
        path: str,
        body: Any,
        *,
        wait: float | None = None,
        store: str | None = None,
        **kw: Any,
    ) -> requests.Response:
        headers = self.headers()
        if wait is not None:
            headers["X-Hub-Wait"] = str(wait)
        if store is not None:
            headers["X-Hub-Store"] = store
        return requests.post(f"{self.url}{path}", json=body, headers=headers, timeout=60, **kw)

    def record(self, integration: str, message_id: str) -> dict[str, Any]:
        response = requests.get(
            f"{self.url}/messages/{integration}/{message_id}", headers=self.headers(), timeout=10
        )
        response.raise_for_status()
        return response.json()

    def wait_status(
        self, integration: str, message_id: str, *statuses: str, timeout: float = 30.0
    ) -> dict[str, Any]:
        return wait_until(
            lambda: (r := self.record(integration, message_id))["status"] in statuses and r,
            timeout=timeout,
        )

    def stop(self) -> None:
        for service in self.services.values():
            service.stop()

    def logs(self) -> str:
        return "\n".join(f"--- {n} ---\n{s.output()[-4000:]}" for n, s in self.services.items())


# A dead worker's message is taken up again within seconds: its lease runs out quickly.
QUICK_TAKEOVER = {
    "TASK_TIME_LIMIT_SECONDS": "6",
    "LEASE_SECONDS": "3",
    "WATCHDOG_INTERVAL_SECONDS": "1",
}


def killable(env: dict[str, str | None]) -> contextlib.AbstractContextManager[Stack]:
    """A receiver and a worker named "first" on a Redis of their own (no other worker may take
    their messages), for tests that kill it: its messages are taken up again quickly."""
    return serving(None, {**env, **QUICK_TAKEOVER}, worker="first")


@contextlib.contextmanager
def serving(
    redis_server: RedisServer | None, env: dict[str, str | None], worker: str = "worker"
) -> Iterator[Stack]:
    """A receiver and one worker on ``redis_server`` (None: a Redis of its own, stopped with
    them), for the length of the ``with`` block."""
    own = redis_server is None
    server = RedisServer().start() if redis_server is None else redis_server
    stack = Stack(server, env)
    try:
        stack.start_web()
        stack.start_worker(worker)
        yield stack
    finally:
        stack.stop()
        if own:
            server.stop()
