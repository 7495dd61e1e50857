"""A message task's broker message, built here so the record and its queue entry are one write.

Publishing a task through Celery is a round trip of its own after the record's (and a window
between the two in which a message is recorded but not queued). Instead, the intake builds the
very message ``app.send_task`` would have put in Redis and hands it to the accept script, which
creates the record and ``LPUSH``es this message onto the queue's list in one step
(``worker.store.messages``). A worker reads it as any Celery task: Flower, retries and routing are
unchanged.

What is built, step by step as Celery 5 and kombu's Redis transport do it:

* Celery's task message protocol v2 (``app.amqp.as_task_v2``): headers (task name, id, root id,
  time limits, argsrepr, origin...), properties (correlation id, reply-to) and the body
  ``[args, kwargs, embed]``, plus our two headers (``worker.tasks.broker``);
* the task's route (``app.amqp.router``: the integration's queue), sent through the anonymous
  direct exchange (``exchange: ""``, routing key = queue name), delivery mode 2, priority 0
  unless the task says otherwise;
* kombu's envelope (``Producer.publish`` -> ``Channel.prepare_message`` ->
  ``_inplace_augment_message``): the body serialized as JSON, then base64 (``body_encoding``), a
  fresh ``delivery_tag``, ``delivery_info`` with exchange and routing key; and the list it goes to
  (``Channel._q_for_pri``: the queue name, suffixed for a non-zero priority step).

What does not change per task name (route, time limits, list name) is worked out once. No kombu
connection is opened: the accept script writes to the records' Redis, which must be the broker's
(both are ``REDIS_URL``). ``tests/test_enqueue.py`` holds this to what ``send_task`` pushes.
"""

from __future__ import annotations

import base64
import bisect
import json
import math
import os
import re
from dataclasses import dataclass
from json.encoder import encode_basestring_ascii  # type: ignore[attr-defined]
from typing import Any

from celery import Celery
from celery.utils.nodenames import anon_nodename
from celery.utils.saferepr import saferepr
from kombu.transport import redis as kombu_redis

from worker.integrations.registry import Handler
from worker.tasks.broker import MESSAGE_HEADER, QUEUED_AT_HEADER

# Protocol v2 headers that differ from one message to the next (set in ``Envelopes.build``).
# Below this length a list of strings' saferepr is its repr (saferepr shortens longer strings).
_SAFEREPR_PLAIN = 200
_PER_MESSAGE = frozenset({"id", "root_id", "argsrepr", "origin"})
# A random UUID's variant digit (RFC 4122: 10xx) for each hex digit drawn in its place.
_VARIANT = {digit: "89ab"[int(digit, 16) & 3] for digit in "0123456789abcdef"}


@dataclass(frozen=True)
class Envelope:
    """One broker message as kombu's Redis transport stores it, and the list it goes onto."""

    queue_key: str
    message: str


@dataclass(frozen=True)
class _Route:
    """What every message of one task name shares: its list, the body's third part, and the
    message's JSON text with a ``{field}`` for each thing that differs per message."""

    list_key: str
    embed: str  # the body's third part (callbacks, errbacks, chain, chord) as JSON
    fill: str  # str.format's: body task_id argsrepr origin queued_at message reply_to delivery_tag


def uuid() -> str:
    """A random (version 4) UUID as text, as kombu's ``uuid()`` (``str(uuid.uuid4())``) makes
    one, without building a UUID object on the way: a third of the time, for two per message."""
    h = os.urandom(16).hex()
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:]}"


def _json(value: Any) -> str:
    """JSON as kombu writes it (``kombu.utils.json.dumps``: the standard encoder's defaults)."""
    return json.dumps(value)


def _string(text: str) -> str:
    """``_json`` of a string, as the standard encoder writes one (``ensure_ascii``), without
    setting up an encoder: a tenth of the time, for four strings per message."""
    return encode_basestring_ascii(text)


def _number(value: float) -> str:
    """``_json`` of a time stamp: a finite float is its ``repr``, as the standard encoder's."""
    if type(value) is float and math.isfinite(value):
        return float.__repr__(value)
    return _json(value)


def _fill(headers: dict[str, Any], properties: dict[str, Any]) -> str:
    """kombu's Redis envelope for one task name as JSON text, with a ``{field}`` (for
    ``str.format``) where a value differs per message: protocol v2's fixed headers then those of
    one message (``id``, ``root_id``, ``argsrepr``, ``origin``, and ours); the properties: a
    correlation id (the task id), the caller's reply-to, the route's, a fresh delivery tag."""
    message = {
        "body": "@body@",
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": {
            **headers,
            "id": "@task_id@",
            "root_id": "@task_id@",
            "argsrepr": "@=argsrepr@",
            "origin": "@=origin@",
            QUEUED_AT_HEADER: "@=queued_at@",
            MESSAGE_HEADER: "@=message@",
        },
        "properties": {
            "correlation_id": "@task_id@",
            "reply_to": "@=reply_to@",
            **properties,
            "delivery_tag": "@delivery_tag@",
        },
    }
    text = _json(message).replace("{", "{{").replace("}", "}}")
    text = re.sub(r'"@=(\w+)@"', r"{\1}", text)  # a whole JSON value, encoded by ``build``
    return re.sub(r"@(\w+)@", r"{\1}", text)  # inside a string: base64 or a uuid


class Envelopes:
    """Builds message tasks' broker messages for one Celery app (one per process)."""

    def __init__(self, app: Celery) -> None:
        self.app = app
        self._routes: dict[str, _Route] = {}
        self._origin_of: tuple[int, str] = (0, "")
        options = app.conf.broker_transport_options or {}
        self._priority_steps: list[int] = list(
            options.get("priority_steps", kombu_redis.PRIORITY_STEPS)
        )
        self._sep: str = options.get("sep", kombu_redis.Channel.sep)
        if options.get("global_keyprefix"):
            raise ValueError("a broker global_keyprefix is not supported by the atomic intake")

    def build(self, handler: Handler, message_id: str, queued_at: float) -> Envelope:
        """The broker message for a recorded message's task, stamped with when it was queued:
        what differs per message written into the route's text (``_Route.fill``)."""
        route = self._route(handler)
        args = [handler.integration, message_id]
        task_id = uuid()
        # The task's body as kombu's JSON serializer writes it: [args, kwargs, embed].
        body = f"[[{_string(args[0])}, {_string(args[1])}], {{}}, {route.embed}]".encode()
        return Envelope(
            route.list_key,
            route.fill.format(
                body=base64.b64encode(body).decode("ascii"),
                task_id=task_id,
                argsrepr=_string(self._argsrepr(args)),
                origin=self._origin(),
                queued_at=_number(queued_at),
                message=_string(f"{handler.integration}:{message_id}"),
                reply_to=_string(self.app.thread_oid),  # the calling thread's, as Celery sets it
                delivery_tag=uuid(),
            ),
        )

    def _origin(self) -> str:
        """Celery's ``origin`` header, this process's anonymous node name (``anon_nodename``,
        which names the pid: worked out again in a forked child)."""
        pid = os.getpid()
        if self._origin_of[0] != pid:
            self._origin_of = (pid, _json(anon_nodename()))
        return self._origin_of[1]

    def _route(self, handler: Handler) -> _Route:
        route = self._routes.get(handler.task_name)
        if route is None:
            route = self._routes[handler.task_name] = self._resolve(handler)
        return route

    def _resolve(self, handler: Handler) -> _Route:
        """What ``send_task(name, queue=handler.queue)`` decides once per name: the task's own
        options, the router's queue, the exchange and priority kombu will use."""
        task = self.app.tasks.get(handler.task_name)
        exec_options: dict[str, Any] = {}
        if task is not None:
            exec_options = {k: v for k, v in task._get_exec_options().items() if v is not None}
        options = {**exec_options, "queue": handler.queue}
        time_limit = options.pop("time_limit", None)
        soft_time_limit = options.pop("soft_time_limit", None)
        routed = self.app.amqp.router.route(options, handler.task_name, [], {}, task)
        queue = routed["queue"]
        exchange_type = queue.exchange.type if queue.exchange is not None else "direct"
        if exchange_type != "direct":
            raise ValueError(f"queue {queue.name!r}: only direct exchanges are supported")
        delivery_mode = getattr(queue.exchange, "delivery_mode", None) or 2
        priority = self._priority(routed.get("priority") or 0)
        list_key = f"{queue.name}{self._sep}{priority}" if priority else queue.name
        headers, _, body, _ = self.app.amqp.as_task_v2(
            "",
            handler.task_name,
            args=[],
            kwargs={},
            time_limit=time_limit,
            soft_time_limit=soft_time_limit,
            ignore_result=None,
        )
        if (routed.get("serializer") or self.app.conf.task_serializer) != "json":
            raise ValueError("only the json task serializer is supported by the atomic intake")
        fixed = {k: v for k, v in headers.items() if k not in _PER_MESSAGE}
        return _Route(
            list_key=list_key,
            embed=_json(body[2]),
            fill=_fill(
                fixed,
                {
                    "delivery_mode": delivery_mode,
                    # Celery's anonymous exchange for a direct queue: the key is the queue
                    "delivery_info": {"exchange": "", "routing_key": queue.name},
                    "priority": routed.get("priority") or 0,
                    "body_encoding": "base64",
                },
            ),
        )

    def _argsrepr(self, args: list[str]) -> str:
        """Celery's ``argsrepr`` header (``saferepr``), which for a short list of short strings
        is their plain ``repr``: computed the cheap way when it is the same."""
        maxsize = self.app.amqp.argsrepr_maxsize
        plain = repr(args)
        if len(plain) < min(maxsize, _SAFEREPR_PLAIN):
            return plain
        return saferepr(args, maxsize, maxlevels=self.app.conf.task_repr_maxlevels)

    def _priority(self, requested: int) -> int:
        """kombu's priority step for a message priority (``Channel.priority``)."""
        clamped = max(0, min(9, int(requested)))
        return self._priority_steps[bisect.bisect(self._priority_steps, clamped) - 1]
