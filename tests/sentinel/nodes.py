"""Redis processes for the Sentinel tests and the replicas benchmark: data nodes (a primary, its
replicas) and sentinels, each a real redis-server on loopback."""

from __future__ import annotations

import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

import redis

from tests.support.stack import free_port, wait_until


class RedisNode:
    """One redis-server (a data node or a sentinel), killed with SIGKILL when asked."""

    def __init__(self, *args: str, sentinel_conf: str | None = None) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (the test command installs it)")
        self.binary = binary
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="shiphub-sentinel-"))
        self.args = args
        self.sentinel_conf = sentinel_conf
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisNode:
        if self.sentinel_conf is not None:  # a sentinel rewrites its file: one of its own
            conf = self.dir / "sentinel.conf"
            if not conf.exists():
                conf.write_text(f"port {self.port}\n{self.sentinel_conf}")
            argv = [
                self.binary,
                str(conf),
                "--sentinel",
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.dir),
            ]
        else:
            argv = [
                self.binary,
                *("--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir)),
                *("--appendonly", "yes", "--save", "", "--maxmemory-policy", "noeviction"),
                *self.args,
            ]
        self.process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(self.client().ping)
        return self

    def kill(self) -> None:
        """``kill -9``: no shutdown, no last writes flushed to anyone."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, decode_responses=True, socket_timeout=5)
