"""The Celery app: one task per (integration, message type), plus the hub's own tasks.

Task names read like the domain: ``dotcom.shipment_ready``, ``shiphub.deliver``,
``shiphub.watchdog``, ``shiphub.poll``. Each integration's tasks go to its own queue. A task ends
in the state an operator expects in Flower: SUCCESS when its message succeeded (or there was
nothing for it to do), FAILURE with the reason when the message failed or went dead, RETRY with
the reason while its retry is scheduled. What the hub is told is in the record, whatever the
task's state.

Every worker process also runs the scheduler (``worker.pipeline.scheduler``): due retries, due
pushes, and the watchdog's sweep.

Logs (``worker.basics.logs``): Celery's own logging is replaced by ours (its ``setup_logging``
signal), in workers and beat alike, and in Flower as it loads this app. Each task binds what its
lines are about (message_id, integration, service) as it starts, from its name and arguments, and
forgets it as it ends; Celery's "received" line is named the same way.
"""

from __future__ import annotations

import ast
import logging
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import click
from celery import Celery, bootsteps
from celery.apps import worker as celery_worker
from celery.exceptions import Retry
from celery.signals import (
    beat_init,
    setup_logging,
    task_postrun,
    task_prerun,
    worker_init,
    worker_ready,
    worker_shutting_down,
)

from worker.basics import logs
from worker.basics.errors import refuse_to_start
from worker.basics.sealing import sealer
from worker.basics.settings import settings
from worker.integrations import registry
from worker.pipeline import delivery, runtime
from worker.pipeline.delivery import PushOutcome
from worker.pipeline.handling import Outcome, handle
from worker.pipeline.intake import Unavailable, submit
from worker.pipeline.polling import POLL_TASK, ScheduleError, configured_polls, poll_message
from worker.pipeline.scheduler import Scheduler
from worker.pipeline.watchdog import sweep
from worker.store.outbox import Claimed
from worker.tasks.broker import MESSAGE_HEADER, QUEUED_AT_HEADER, BrokerView
from worker.tasks.dispatch import Dispatch
from worker.tasks.enqueue import Envelopes

log = logging.getLogger(__name__)


def _loaded_by_celery() -> bool:
    """Loaded by the ``celery`` command (``celery -A worker.tasks.app worker|beat|flower``):
    Celery's ``setup_logging`` signal comes later (and never for Flower, whose tornado adds a
    handler of its own unless the root logger has one), so the lines written while this app loads
    (an integration that is not configured, a warning) would otherwise be plain text."""
    ctx = click.get_current_context(silent=True)
    return ctx is not None and ctx.find_root().command.name == "celery"


if _loaded_by_celery():
    logs.configure()
registry.load(settings().shiphub_integration_modules)
app = Celery("shiphub")
app.config_from_object("celeryconfig")


class MessageFailed(Exception):
    """The message failed or went dead (what Flower shows as the task's FAILURE)."""


class PushFailed(Exception):
    """The answer's delivery went dead (a FAILURE in Flower)."""


class TryingAgain(Exception):
    """Why a task is in RETRY: its next attempt is scheduled (in Redis, not as a countdown)."""


def publish(handler: registry.Handler | registry.Route, message_id: str, queued_at: float) -> None:
    """Publish the task for a recorded message, stamped with when it was queued (the watchdog
    tells a queued message from a lost one by it): for replays, due retries and the watchdog.
    New messages are not published here: their broker message is pushed by the same Lua script
    that records them (``enqueue``, ``worker.pipeline.intake``). Its task is named and queued from
    its integration and message type, so this process need not run the integration itself."""
    app.send_task(
        handler.task_name,
        args=[handler.integration, message_id],
        queue=handler.queue,
        headers={
            QUEUED_AT_HEADER: queued_at,
            MESSAGE_HEADER: f"{handler.integration}:{message_id}",
        },
    )


# The broker message of a new message's task, built as ``publish`` would send it, for the intake's
# one-step record-and-queue (``worker.tasks.enqueue``; the records' Redis is the broker's).
envelopes = Envelopes(app)
enqueue = envelopes.build


def send_push(claimed: Claimed) -> None:
    """Send a claim's push task, stamped with the claim's time and named for the broker's view:
    the scheduler tells a task still queued from a lost one by them (``in_broker``)."""
    app.send_task(
        delivery.DELIVER_TASK,
        args=[claimed.integration, claimed.message_id, claimed.claim],
        headers={
            QUEUED_AT_HEADER: claimed.claimed_at,
            MESSAGE_HEADER: delivery.push_task_name(claimed),
        },
    )


def ping_broker() -> None:
    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=1)
        conn.default_channel.client.ping()


# What the receiver is given of this app (``endpoint.app.create_app``).
dispatch = Dispatch(publish, enqueue, send_push, ping_broker)


def _retry(reason: str, at: float | None) -> Retry:
    when = datetime.fromtimestamp(at, UTC) if at else None
    return Retry(reason, exc=TryingAgain(reason), when=when)


# Message tasks by name: what their log lines are about.
_MESSAGE_TASKS: dict[str, registry.Handler] = {}


def _message_task(handler: registry.Handler) -> None:
    integration = registry.integrations()[handler.integration]
    _MESSAGE_TASKS[handler.task_name] = handler

    @app.task(name=handler.task_name, queue=handler.queue, throws=(MessageFailed,))
    def run(integration_name: str, message_id: str) -> str:
        handled = handle(
            integration,
            handler,
            message_id,
            runtime.db(),
            runtime.outbox(),
            settings(),
            send_push=send_push,
        )
        if handled.outcome in (Outcome.FAILED, Outcome.DEAD):
            raise MessageFailed(f"{handled.outcome}: {handled.detail}")
        if handled.outcome in (Outcome.RETRYING, Outcome.WAITING):
            raise _retry(handled.detail, handled.next_at)
        return handled.outcome.value

    run.__doc__ = f"Handle {handler.message!r} for {integration.display}."


for _integration in registry.integrations().values():
    for _handler in _integration.handlers():
        _message_task(_handler)


@app.task(name=delivery.DELIVER_TASK, throws=(PushFailed,))
def deliver(integration: str, message_id: str, claim: str | None = None) -> str:
    """Push one finished answer to the hub under its claim. Without a claim (a kick, or a task
    sent before claims existed) it claims the delivery itself if it is due."""
    outbox = runtime.outbox()
    if claim is None:
        claimed = outbox.claim_one(integration, message_id)
        if claimed is None:
            return "not due"
        claim = claimed.claim
    pushed = delivery.deliver(outbox, integration, message_id, claim, settings())
    if pushed.outcome == PushOutcome.DEAD:
        raise PushFailed(pushed.error)
    if pushed.outcome == PushOutcome.RETRYING:
        raise _retry(pushed.error, pushed.next_at)
    return pushed.outcome.value


@app.task(name="shiphub.watchdog")
def watchdog() -> dict[str, Any]:
    """One sweep for lost messages now (workers also sweep every WATCHDOG_INTERVAL_SECONDS)."""
    db = runtime.db()
    found = sweep(db, publish, BrokerView(db.redis))
    return {"looked_at": found.looked_at, "republished": found.republished, "pruned": found.pruned}


@app.task(name=POLL_TASK)
def poll(integration_name: str, service_name: str, every_seconds: int) -> str:
    """A scheduled tick: record the service's poll message and enqueue it, like the receiver."""
    integration = registry.integrations()[integration_name]
    service = integration.services[service_name]
    message = poll_message(integration_name, service, every_seconds)
    handler = integration.handler(message.message)
    assert handler is not None
    try:
        outcome = submit(
            runtime.db(),
            enqueue,
            handler,
            message,
            settings().hub_store,
            sealer(settings().shiphub_secret_key),
        )
    except Unavailable as exc:
        log.warning("scheduled poll %s not recorded: %s", message.message_id, exc)
        raise
    return f"{message.message_id}: {outcome.outcome}"


def beat_schedule() -> dict[str, dict[str, Any]]:
    """The polls ``POLLS`` asks for; one that cannot be (an unknown service) stops the process
    as it starts, web and worker too: they load this app."""
    try:
        polls = configured_polls(settings().polls, registry.integrations())
    except ScheduleError as exc:
        refuse_to_start(str(exc))
    return {
        p.entry_name: {
            "task": POLL_TASK,
            "schedule": float(p.every_seconds),
            "args": (p.integration, p.service, p.every_seconds),
        }
        for p in polls
    }


app.conf.beat_schedule = beat_schedule()


def message_fields(task_name: str, args: Sequence[Any]) -> dict[str, Any]:
    """What a task's log lines are about, from its name and arguments: a message task's and a
    delivery's are ``(integration, message_id, ...)``, a poll's ``(integration, service, ...)``
    (its message_id is bound once the poll message is made)."""
    if len(args) < 2:
        return {}
    handler = _MESSAGE_TASKS.get(task_name)
    if handler is not None:
        return {
            "message_id": args[1],
            "integration": handler.integration,
            "service": handler.service,
        }
    if task_name == delivery.DELIVER_TASK:
        return {"message_id": args[1], "integration": args[0]}
    if task_name == POLL_TASK:
        return {"integration": args[0], "service": args[1]}
    return {}


@task_prerun.connect
def _bind_message(task: Any = None, args: Sequence[Any] | None = None, **_: Any) -> None:
    logs.clear()
    if task is not None:
        logs.bind(**message_fields(task.name, args or ()))


@task_postrun.connect
def _forget_message(**_: Any) -> None:
    logs.clear()  # the pool's thread goes on to another task


class _ReceivedMessage(logging.Filter):
    """Celery's "Task ... received" line is written by the consumer before any task runs, with
    the task's name and its arguments' repr in ``data``: name its message from them."""

    def filter(self, record: logging.LogRecord) -> bool:
        data = getattr(record, "data", None)
        if isinstance(data, dict):
            for name, value in message_fields(str(data.get("name")), _args(data)).items():
                setattr(record, name, value)
        return True


def _args(data: dict[str, Any]) -> Sequence[Any]:
    try:
        args = ast.literal_eval(str(data.get("args")))
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return ()
    return args if isinstance(args, list | tuple) else ()


logging.getLogger("celery.worker.strategy").addFilter(_ReceivedMessage())


@setup_logging.connect
def _structured_logs(**_: Any) -> None:
    """Workers and beat log through ``worker.basics.logs`` (LOG_FORMAT, LOG_LEVEL), not Celery's own
    set-up: its ``--loglevel`` is ignored."""
    logs.configure()


@worker_ready.connect
def _quiet_shutdown_notice(sender: Any = None, **_: Any) -> None:
    """Celery prints "worker: Warm shutdown (MainProcess)" on SIGTERM straight to standard output,
    outside logging; the same handler without its print (``_shutdown_notice`` logs it)."""
    worker = getattr(sender, "controller", None)
    if worker is not None:
        celery_worker.install_worker_term_handler(worker, verbose=False)


@worker_shutting_down.connect
def _shutdown_notice(how: str = "", **_: Any) -> None:
    log.info("worker: %s shutdown", how.lower())


@worker_init.connect
def _refuse_unsealed(**_: Any) -> None:
    settings().require_secret_key()


@beat_init.connect
def _announce(sender: Any = None, **_: Any) -> None:
    for name, entry in app.conf.beat_schedule.items():
        log.info("beat: %s every %ss", name, entry["schedule"])


class SchedulerStep(bootsteps.StartStopStep):
    """Runs the scheduler in a thread of every worker process (``worker.pipeline.scheduler``)."""

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        self.stop_event = threading.Event()
        self.thread: threading.Thread | None = None

    def start(self, parent: Any) -> None:
        scheduler = Scheduler(
            runtime.db(),
            runtime.outbox(),
            publish,
            send_push,
            settings().watchdog_interval_seconds,
            lambda: BrokerView(runtime.db().redis),
        )
        self.thread = threading.Thread(
            target=scheduler.run, args=(self.stop_event,), name="shiphub-scheduler", daemon=True
        )
        self.thread.start()

    def stop(self, parent: Any) -> None:
        self.stop_event.set()


app.steps["worker"].add(SchedulerStep)

# How long a task event (what Flower shows: received, started, succeeded...) may wait to be
# sent with others.
EVENT_BATCH_SECONDS = 0.1


class TaskEventBatches(bootsteps.StartStopStep):
    """Sends the task events of up to ``EVENT_BATCH_SECONDS`` in one publish.

    Celery buffers task events and flushes its buffer at the next turn of the consumer's loop. In
    a busy worker that is one Redis PUBLISH per event, two to three per message, each a round
    trip made by the consumer thread between taking a message and acknowledging one: the one
    thread that feeds all the pool's threads, so that every round trip it makes (and every wait
    for the GIL behind it) is a wait for the whole pool. Flushing at most every 0.1 s (or when
    24 are buffered, Celery's own limit) makes it one publish per batch; Flower sees an event at
    most 0.1 s later, and the events buffered at shutdown are flushed by Celery as before."""

    requires = ("celery.worker.consumer.events:Events",)

    def start(self, c: Any) -> None:
        dispatcher, hub = c.event_dispatcher, c.hub
        if dispatcher is None or hub is None:
            return  # no events, or no event loop (Celery sends each event itself then)
        lock, pending = threading.Lock(), [False]

        def flush() -> None:  # in the loop's thread
            with lock:
                pending[0] = False
            c._flush_events()

        def later() -> None:  # in the loop's thread: kombu's timer is not thread-safe
            hub.call_later(EVENT_BATCH_SECONDS, flush)

        def buffered() -> None:  # in any thread (the pool's send task-started, -succeeded)
            with lock:
                if pending[0]:
                    return
                pending[0] = True
            hub.call_soon(later)

        dispatcher.on_send_buffered = buffered


app.steps["consumer"].add(TaskEventBatches)
