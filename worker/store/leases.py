"""Leases: a running handler's claim on its message (and a poll's on its store).

A lease is a Redis key holding the holder's random token, with a short TTL (``LEASE_SECONDS``).
While the handler runs, one keeper thread per process renews every lease it holds (and pushes
the message's watchdog deadline along with it); a worker that dies stops renewing, so its lease
runs out within ``LEASE_SECONDS`` and the watchdog hands the message on. Renewal also stops at
the attempt's deadline (plus a short grace for the final write): a handler stuck past it loses
its lease even though its thread cannot be stopped, and every write it then tries is refused,
because each state change after ``begin`` checks the token in the same atomic step
(``worker.store.attempts``).

``Locks``: taking and releasing the lease-like locks (a poll's lock on its store), and whether a
message's lease is held.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
import weakref
from collections.abc import Iterator
from dataclasses import dataclass

import redis

from worker.basics.deadline import Deadline
from worker.store.record import Timing
from worker.store.schema import lease_key
from worker.store.scripts import scripts

log = logging.getLogger(__name__)

# Give the handler this long after its deadline to write its outcome under its lease.
WRITE_GRACE_SECONDS = 5.0


@dataclass(eq=False)
class Held:
    key: str
    token: str
    until: float  # time.monotonic() after which the lease is no longer renewed
    watch: tuple[str, str] | None = None  # (watch zset, member) pushed along with the lease
    deadline: Deadline | None = None  # cancelled when the lease turns out to be lost
    lost: bool = False
    # The holder is writing its outcome, which releases the lease: a renewal that finds it gone
    # then is no loss to report.
    ending: bool = False


class LeaseKeeper:
    """Renews the leases this process holds, every third of their TTL, from one thread."""

    def __init__(self, client: redis.Redis, ttl_seconds: float, watch_slack: float = 1.0) -> None:
        self.redis = client
        self.ttl_seconds = ttl_seconds
        self.watch_slack = watch_slack
        self._lua = scripts(client)
        self._held: set[Held] = set()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pid = 0

    @contextlib.contextmanager
    def hold(
        self,
        key: str,
        token: str,
        *,
        until: float,
        watch: tuple[str, str] | None = None,
        deadline: Deadline | None = None,
    ) -> Iterator[Held]:
        """Keep ``key`` (already taken with ``token``) renewed for the length of the block."""
        held = Held(key, token, until, watch, deadline)
        with self._lock:
            self._held.add(held)
        self._ensure_running()
        try:
            yield held
        finally:
            with self._lock:
                self._held.discard(held)

    def renew_all(self) -> None:
        """One renewal round (the thread's loop body; tests call it directly)."""
        now = time.monotonic()
        with self._lock:
            due = [h for h in self._held if not h.lost]
        for held in due:
            if now > held.until:
                continue  # past its deadline: let the lease run out
            try:
                kept = self._lua.renew(
                    lease=held.key,
                    watch=held.watch[0] if held.watch else held.key,
                    token=held.token,
                    lease_ms=int(self.ttl_seconds * 1000),
                    watch_until=repr(time.time() + self.ttl_seconds + self.watch_slack)
                    if held.watch
                    else "",
                    member=held.watch[1] if held.watch else "",
                )
            except redis.RedisError as exc:
                log.warning("could not renew %s (%s); it runs out if this lasts", held.key, exc)
                continue
            if not kept:
                held.lost = True
                if held.ending:
                    continue
                log.warning("lease %s was lost; this holder's writes will be refused", held.key)
                if held.deadline is not None:
                    held.deadline.cancel(f"the loss of its lease {held.key}")

    def _ensure_running(self) -> None:
        if self._thread is not None and self._thread.is_alive() and self._pid == os.getpid():
            return
        with self._lock:
            if self._thread is not None and self._thread.is_alive() and self._pid == os.getpid():
                return
            self._pid = os.getpid()
            self._thread = threading.Thread(target=self._loop, name="lease-keeper", daemon=True)
            self._thread.start()

    def _loop(self) -> None:
        interval = max(0.2, self.ttl_seconds / 3)
        while True:
            time.sleep(interval)
            try:
                self.renew_all()
            except Exception:  # the keeper must outlive anything one round meets
                log.exception("lease renewal round failed")


_keepers: weakref.WeakKeyDictionary[redis.Redis, LeaseKeeper] = weakref.WeakKeyDictionary()
_keepers_lock = threading.Lock()


def keeper(client: redis.Redis, ttl_seconds: float) -> LeaseKeeper:
    """The process's keeper for leases in this Redis."""
    with _keepers_lock:
        found = _keepers.get(client)
        if found is None or found.ttl_seconds != ttl_seconds:
            found = _keepers[client] = LeaseKeeper(client, ttl_seconds)
        return found


class Locks:
    """Locks that expire like a lease (a dead holder's lock runs out), and the leases' state."""

    def __init__(self, client: redis.Redis, timing: Timing | None = None) -> None:
        self.redis = client
        self.timing = timing or Timing()
        self._lua = scripts(client)

    def try_lock(self, key: str, token: str) -> bool:
        """Take a lock that expires like a lease (a dead holder's lock runs out)."""
        return bool(self.redis.set(key, token, nx=True, px=int(self.timing.lease_seconds * 1000)))

    def release(self, key: str, token: str) -> None:
        """Delete a lock key only if we still hold it."""
        self._lua.release(lock=key, token=token)

    def lock_left(self, key: str) -> float:
        return max(0.0, self.redis.pttl(key) / 1000)

    def lease_held(self, integration: str, message_id: str) -> bool:
        return bool(self.redis.exists(lease_key(integration, message_id)))
