"""Webhooks: the order JSON POSTed to the configured URL from a sender thread, signed.

Choices for what is not public:

* ``X-DS-Signature`` is the lowercase hex HMAC-SHA256 of the raw body keyed with the secret
  (the vendor says only "a hash of the payload"); with no secret the header is sent empty;
* retry policy: one try, then one more after each of ``webhook_retry_delays`` (0.5 s, 1 s, 2 s by
  default) on a connection error, a timeout or a non-2xx answer; then the webhook is given up
  (logged ``failed``). One sender thread sends in the order the events happened, so webhooks of
  one order arrive in order (a webhook being retried holds back the ones behind it) unless a
  ``delay`` fault holds one back on purpose.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import queue
import threading
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import requests

from simulators.kit import Fault

SIGNATURE_HEADER = "X-DS-Signature"


def signature(secret: str | None, body: bytes) -> str:
    """The ``X-DS-Signature`` value: hex HMAC-SHA256 (an assumption), empty without a secret."""
    if secret is None:
        return ""
    return hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Outgoing:
    seq: int
    order_external_id: str
    status: str
    url: str
    secret: str | None
    body: bytes
    retry_delays: tuple[float, ...]
    timeout: float
    generation: int
    duplicate: bool = False
    delayed: bool = False


class WebhookSender:
    """A queue of webhooks, the thread that sends them, and the log of what became of them."""

    def __init__(self) -> None:
        self._queue: queue.Queue[Outgoing | None] = queue.Queue()
        self._lock = threading.Condition()
        self._log: list[dict[str, Any]] = []
        self._pending = 0
        self._generation = 0
        self._sequence = itertools.count(1)
        self._stopping = threading.Event()
        self._timers: list[threading.Timer] = []
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name="shipping-orders-webhooks", daemon=True
            )
            self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        self._stopping.set()
        with self._lock:
            timers, self._timers = self._timers, []
        for timer in timers:
            timer.cancel()
        self._queue.put(None)
        if self._thread is not None:
            self._thread.join(timeout)

    def submit(
        self,
        *,
        order_external_id: str,
        status: str,
        payload: dict[str, Any],
        url: str,
        secret: str | None,
        retry_delays: tuple[float, ...],
        timeout: float,
        fault: Fault | None,
    ) -> None:
        """Queue one webhook (never blocks); a ``webhook`` fault drops, doubles or delays it."""
        body = json.dumps(payload, separators=(",", ":")).encode("utf-8")
        with self._lock:
            item = Outgoing(
                seq=next(self._sequence),
                order_external_id=order_external_id,
                status=status,
                url=url,
                secret=secret,
                body=body,
                retry_delays=retry_delays,
                timeout=timeout,
                generation=self._generation,
            )
            kind = fault.kind if fault is not None else None
            if kind == "drop":
                self._log.append(_log_entry(item, "dropped", None, 0, None))
                return
            if kind == "delay":
                assert fault is not None
                self._pending += 1
                timer = threading.Timer(
                    fault.delay_seconds, self._deliver, args=(replace(item, delayed=True),)
                )
                timer.daemon = True
                self._timers.append(timer)
                timer.start()
                return
            copies = [item, replace(item, duplicate=True)] if kind == "duplicate" else [item]
            self._pending += len(copies)
        for copy in copies:
            self._queue.put(copy)

    def reset(self) -> None:
        """Forget the log; webhooks not yet sent are discarded."""
        with self._lock:
            self._generation += 1
            self._log.clear()

    def report(self) -> dict[str, Any]:
        with self._lock:
            return {"webhooks": [dict(entry) for entry in self._log], "pending": self._pending}

    def wait_idle(self, timeout: float) -> bool:
        """True once nothing is queued, being sent or held back (False after ``timeout``)."""
        with self._lock:
            return self._lock.wait_for(lambda: self._pending == 0, timeout)

    # -- sending ----------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stopping.is_set():
            item = self._queue.get()
            if item is None:
                return
            self._deliver(item)

    def _deliver(self, item: Outgoing) -> None:
        try:
            with self._lock:
                current = item.generation == self._generation
            if current and not self._stopping.is_set():
                entry = self._send(item)
                with self._lock:
                    if item.generation == self._generation:
                        self._log.append(entry)
        finally:
            with self._lock:
                self._pending -= 1
                self._lock.notify_all()

    def _send(self, item: Outgoing) -> dict[str, Any]:
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: signature(item.secret, item.body),
        }
        attempts, status, error = 0, None, None
        for delay in (0.0, *item.retry_delays):
            if delay and self._stopping.wait(delay):
                break
            attempts += 1
            try:
                answer = requests.post(
                    item.url, data=item.body, headers=headers, timeout=item.timeout
                )
            except requests.RequestException as exc:
                status, error = None, f"{type(exc).__name__}: {exc}"
                continue
            status = answer.status_code
            if 200 <= status < 300:
                return _log_entry(item, "delivered", status, attempts, None)
            error = f"HTTP {status}"
        return _log_entry(item, "failed", status, attempts, error)


def _log_entry(
    item: Outgoing, outcome: str, http_status: int | None, attempts: int, error: str | None
) -> dict[str, Any]:
    return {
        "seq": item.seq,
        "orderExternalId": item.order_external_id,
        "status": item.status,
        "outcome": outcome,
        "http_status": http_status,
        "attempts": attempts,
        "duplicate": item.duplicate,
        "delayed": item.delayed,
        "error": error,
        "logged_at": datetime.now(UTC).isoformat(timespec="milliseconds"),
    }
