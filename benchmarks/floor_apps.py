"""The floors: the least a receiver built from our parts can do per request.

Each is a WSGI app that gunicorn serves exactly as the Procfile serves ``endpoint.wsgi:app``
(``benchmarks.floors`` runs the Procfile's own ``web`` line with the app swapped), so that the
distance between a floor and shiphub's receiver is what shiphub adds, not a different server:

* ``empty``: Flask answers a POST without reading its body (routing and one JSON reply);
* ``one_round_trip``: reads and parses the JSON body and does one ``SET NX`` on Redis (the
  de-duplication every intake needs, with shiphub's own connection pool);
* ``naive``: the same, then publishes one Celery task (``send_task``, shiphub's broker settings
  and transport) to a queue nobody consumes: the textbook "record then enqueue".

Each answers 200 ``{"status": "queued"}`` for a new id and ``{"status": "duplicate"}`` for one
it has seen, so a client sees the same kind of reply as from shiphub.

The drains' floor is ``drain_floor``, a Celery app with shiphub's ``celeryconfig`` (transport,
prefetch, late acks) and task events (batched, ``worker.tasks.app.TaskEventBatches``), its workers
started as the drains start shiphub's (threads pool, 16). Its one task ``floor.wait`` only
sleeps as long as the provider call would take and counts itself done (one ``INCR``): what
Celery and kombu can drain at best on this machine, so that the distance between it and
shiphub's drain is what shiphub's handling adds.
"""

from __future__ import annotations

import os
import time
from functools import lru_cache

import redis
from celery import Celery
from flask import Flask, Response, jsonify, request

from worker.pipeline.runtime import redis_client
from worker.tasks.app import TaskEventBatches

# Where the naive floor publishes: a queue no worker listens to (the run deletes it afterwards).
FLOOR_QUEUE = "floor-nobody"
FLOOR_TASK = "floor.handle"
KEY_PREFIX = "floor:"
KEY_TTL_SECONDS = 3600


@lru_cache(maxsize=1)
def _redis() -> redis.Redis:
    return redis_client(os.environ["REDIS_URL"])


@lru_cache(maxsize=1)
def _celery() -> Celery:
    """A bare Celery app with shiphub's broker configuration (``celeryconfig``: its transport,
    its retry policy), but none of shiphub's tasks."""
    app = Celery("floor")
    app.config_from_object("celeryconfig")
    return app


def _record(message_id: str) -> bool:
    """The one round trip: is this id new? (``SET NX`` with a TTL, as a de-duplication key)."""
    return bool(_redis().set(KEY_PREFIX + message_id, "1", nx=True, ex=KEY_TTL_SECONDS))


def _message_id() -> str:
    body = request.get_json(force=True)
    return str(body["message_id"])


def _flask(name: str) -> Flask:
    app = Flask(name)
    app.json.sort_keys = False  # type: ignore[attr-defined]
    return app


empty = _flask("floor-empty")


@empty.post("/<integration>/<service>")
def empty_post(integration: str, service: str) -> Response:
    return jsonify(status="queued")


one_round_trip = _flask("floor-one-round-trip")


@one_round_trip.post("/<integration>/<service>")
def round_trip_post(integration: str, service: str) -> Response:
    message_id = _message_id()
    return jsonify(message_id=message_id, status="queued" if _record(message_id) else "duplicate")


naive = _flask("floor-naive")


@naive.post("/<integration>/<service>")
def naive_post(integration: str, service: str) -> Response:
    message_id = _message_id()
    if not _record(message_id):
        return jsonify(message_id=message_id, status="duplicate")
    _celery().send_task(FLOOR_TASK, args=[integration, message_id], queue=FLOOR_QUEUE)
    return jsonify(message_id=message_id, status="queued")


# --------------------------------------------------------------------------------------------
# The drains' floor: a Celery worker with nothing to do but wait

DRAIN_QUEUE = "floor-drain"
DRAIN_TASK = "floor.wait"

drain_floor = Celery("floor-drain")
drain_floor.config_from_object("celeryconfig")
drain_floor.steps["consumer"].add(TaskEventBatches)  # as shiphub's workers send task events


@drain_floor.task(name=DRAIN_TASK)
def wait(seconds: float, counter: str) -> None:
    """Stand in for a handler whose provider call takes ``seconds``, then count one done."""
    time.sleep(seconds)
    _redis().incr(counter)
