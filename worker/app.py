"""The Celery app: one task per (integration, message type), plus the hub's own tasks.

Task names read like the domain: ``dotcom.shipment_ready``, ``shiphub.deliver``,
``shiphub.watchdog``, ``shiphub.poll``. Each integration's tasks go to its own queue.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from celery import Celery, Task
from celery.signals import beat_init

from worker import delivery, registry, runtime
from worker.handling import handle
from worker.intake import Unavailable, submit
from worker.polling import POLL_TASK, configured_polls, poll_message
from worker.settings import settings

log = logging.getLogger(__name__)

registry.load(settings().shiphub_integration_modules)
app = Celery("shiphub")
app.config_from_object("celeryconfig")


def publish(handler: registry.Handler, message_id: str) -> None:
    """Publish the task for a recorded message (no retries beyond the short publish policy)."""
    app.send_task(handler.task_name, args=[handler.integration, message_id], queue=handler.queue)


def _message_task(handler: registry.Handler) -> None:
    integration = registry.integrations()[handler.integration]

    @app.task(name=handler.task_name, bind=True, max_retries=None, queue=handler.queue)
    def run(task: Task, integration_name: str, message_id: str) -> None:
        s = settings()
        retry = handle(integration, handler, message_id, runtime.records(), s)
        if retry is not None:
            log.info(
                "%s/%s: again in %.1fs (%s)", integration_name, message_id, retry.delay, retry.error
            )
            raise task.retry(countdown=retry.delay, max_retries=None)

    run.__doc__ = f"Handle {handler.message!r} for {integration.display}."


for _integration in registry.integrations().values():
    for _handler in _integration.handlers():
        _message_task(_handler)


@app.task(name=delivery.DELIVER_TASK, bind=True, max_retries=None)
def deliver(task: Task, integration: str, message_id: str) -> None:
    """Push one finished answer to the hub."""
    delay = delivery.deliver(runtime.records(), integration, message_id, settings())
    if delay is not None:
        delivery.kick(integration, message_id, countdown=delay)


@app.task(name="shiphub.watchdog")
def watchdog() -> dict[str, int]:
    """Republish messages that stopped moving and push due answers nobody is pushing."""
    records = runtime.records()
    now = time.time()
    republished = 0
    for integration_name, message_id in records.overdue(now):
        record = records.get(integration_name, message_id)
        integration = registry.integrations().get(integration_name)
        handler = integration.handler(record.fields["message"]) if record and integration else None
        if record is None or record.finished or handler is None:
            records.forget_watch(integration_name, message_id)
            continue
        records.postpone(integration_name, message_id, records.timing.queued_deadline_seconds)
        publish(handler, message_id)
        records.count("messages_republished")
        republished += 1
    kicked = 0
    for integration_name, message_id in records.due_deliveries(now - 15):
        delivery.kick(integration_name, message_id)
        kicked += 1
    return {"republished": republished, "pushes_kicked": kicked}


@app.task(name=POLL_TASK)
def poll(integration_name: str, service_name: str, every_seconds: int) -> str:
    """A scheduled tick: record the service's poll message and enqueue it, like the receiver."""
    integration = registry.integrations()[integration_name]
    service = integration.services[service_name]
    message = poll_message(integration_name, service, every_seconds)
    handler = integration.handler(message.message)
    assert handler is not None
    try:
        outcome = submit(runtime.records(), publish, handler, message, settings().hub_store)
    except Unavailable as exc:
        log.warning("scheduled poll %s not recorded: %s", message.message_id, exc)
        raise
    return f"{message.message_id}: {outcome.outcome}"


def beat_schedule() -> dict[str, dict[str, Any]]:
    s = settings()
    entries: dict[str, dict[str, Any]] = {
        "watchdog": {"task": "shiphub.watchdog", "schedule": 15.0},
    }
    for p in configured_polls(s.polls, registry.integrations()):
        entries[p.entry_name] = {
            "task": POLL_TASK,
            "schedule": float(p.every_seconds),
            "args": (p.integration, p.service, p.every_seconds),
        }
    return entries


app.conf.beat_schedule = beat_schedule()


@beat_init.connect
def _announce(sender: Any = None, **_: Any) -> None:
    for name, entry in app.conf.beat_schedule.items():
        log.info("beat: %s every %ss", name, entry["schedule"])
