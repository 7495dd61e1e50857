"""The HTTP receiver: authenticate, validate, record, enqueue, answer.

``create_app()`` is the factory gunicorn runs (``Procfile``). The flow of ``POST
/<integration>/<service>`` reads top to bottom in ``receive``.

Logs: each request's lines carry the integration, service and message_id it is about (from its
URL, then from the parsed message), and each message or event offered gets one intake line:
queued, duplicate, conflict or refused, with the status code and, when refused, the
reason (the reply's subject, never the body).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import cache
from typing import Any

import redis
from flask import Flask, Response, g, jsonify, request
from pydantic import ValidationError
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from endpoint import listing, openapi, ops, ops_trends, replies  # noqa: F401 (ops_trends: /ops views)
from endpoint.access import EXTENSION, Wiring, token_ok
from endpoint.body import (
    BadBody,
    TooLarge,
    parse_event,
    parse_message,
    read_body,
    unsafe_text_problem,
)
from endpoint.metrics import render as metrics_text
from endpoint.waiting import TooManyWaiting, Waiting
from worker.basics import logs
from worker.basics.sealing import sealer
from worker.basics.settings import Settings
from worker.hub.messages import HubMessage, store_problem
from worker.integrations import registry
from worker.integrations.webhooks import event_message_id, reserved_id_problem
from worker.pipeline import replay
from worker.pipeline.delivery import SendPush
from worker.pipeline.intake import (
    Enqueue,
    Intake,
    Publish,
    Submission,
    Together,
    Unavailable,
    submit,
)
from worker.pipeline.replay import Replayed
from worker.store.bundle import Store
from worker.store.schema import DeliveryStatus
from worker.tasks.dispatch import Dispatch

log = logging.getLogger(__name__)
MAX_WAIT_SECONDS = 180.0
# The routes that take messages and events: one intake line each (``_log_intake``).
INTAKE_ENDPOINTS = frozenset({"receive", "receive_event"})


def create_app(
    settings: Settings | None = None,
    db: Store | None = None,
    publish: Publish | None = None,
    send_push: SendPush | None = None,
) -> Flask:
    """Build the receiver. Tests may pass their own Redis-backed records and publisher (for
    replays) and push sender (for a delivery's replay). New messages are recorded and queued in
    one step (``worker.pipeline.intake``), with broker messages built by ``enqueue``.

    What is not given comes from the service's Celery app's dispatch
    (``worker.tasks.app.dispatch``), asked for once, when first needed: a receiver built for tests
    that never takes a message does not load the Celery app."""
    from worker.basics.settings import settings as load_settings
    from worker.pipeline import runtime

    s = settings or load_settings()
    s.require_endpoint_key()
    s.require_secret_key()
    parameters_sealer = sealer(s.shiphub_secret_key)
    registry.load(s.shiphub_integration_modules)
    if db is None:
        db = runtime.db()
    outbox = db.outbox
    waiting = Waiting(db, s.hub_wait_max_requests)
    together = Together(db, s.intake_round_trip_messages)
    queue = cache(_celery_dispatch)
    if publish is None:
        publish = queue().publish
    enqueue: Enqueue = _first_use(queue, "enqueue")
    if send_push is None:
        send_push = _first_use(queue, "send_push")

    app = Flask("shiphub")
    app.config["MAX_CONTENT_LENGTH"] = s.max_body_bytes
    app.json.sort_keys = False  # type: ignore[attr-defined]
    if s.endpoint_key is None:
        log.warning("SHIPHUB_INSECURE_DEV is on and ENDPOINT_KEY is unset: every request is let in")

    app.extensions[EXTENSION] = Wiring(s, db, outbox, publish, send_push)
    app.register_blueprint(ops.blueprint)
    app.register_blueprint(openapi.blueprint)

    @app.before_request
    def bind_log_fields() -> None:
        """A request's lines say what it is about, from its URL's names (integration, service,
        message_id); a keep-alive connection's next request starts afresh."""
        logs.clear()
        logs.bind(**{k: v for k, v in (request.view_args or {}).items() if k in logs.FIELDS})

    @app.after_request
    def log_intake(response: Response) -> Response:
        if request.endpoint in INTAKE_ENDPOINTS:
            _log_intake(response)
        return response

    def require_auth() -> Response | None:
        if not token_ok(s):
            return replies.error(401, "Unauthorized", "Missing or wrong X-Hub-Token header")
        return None

    def require_known(integration: str) -> Response | None:
        """A record is only ever read under a registered integration's name, which has no ':'
        (``/messages/acme:a/b`` must not read acme's record ``a:b``)."""
        if integration not in registry.integrations():
            return replies.error(404, "Unknown integration", _unknown_integration(integration))
        return None

    @app.get("/")
    def index() -> Response:
        return jsonify(
            name="shiphub",
            integrations=[
                {"name": i.name, "display": i.display, "endpoint": f"/{i.name}/endpoint.json"}
                for i in registry.integrations().values()
            ],
        )

    @app.get("/healthz")
    def healthz() -> tuple[Response, int]:
        checks = {"redis": _check(db.redis.ping), "broker": _check(lambda: queue().ping())}
        ok = all(v == "ok" for v in checks.values())
        return jsonify(status="ok" if ok else "unavailable", checks=checks), 200 if ok else 503

    @app.get("/auth")
    def auth() -> Response | tuple[Response, int]:
        return require_auth() or jsonify(status="ok")

    @app.get("/metrics")
    def metrics() -> Response:
        try:
            text = metrics_text(db, s.stale_shipment_seconds)
        except redis.RedisError:
            return replies.unavailable("Redis is unavailable")
        return Response(text, mimetype="text/plain; version=0.0.4")

    @app.get("/<integration>/endpoint.json")
    def discovery(integration: str) -> Response:
        found = registry.integrations().get(integration)
        if found is None:
            return replies.error(404, "Unknown integration", _unknown_integration(integration))
        return jsonify(found.endpoint_json())

    @app.get("/messages/<integration>/<path:message_id>")
    def message_status(integration: str, message_id: str) -> Response:
        if denied := require_auth() or require_known(integration):
            return denied
        try:
            record = db.messages.get(integration, message_id)
        except redis.RedisError:
            return replies.unavailable("Redis is unavailable")
        if record is None:
            return replies.error(
                404,
                "Unknown message",
                f"No message {message_id!r} for {integration!r}",
                message_id=message_id,
            )
        return jsonify(record.view())

    @app.get("/messages")
    def messages_in_states() -> Response:
        """Failed, dead and retrying messages, by integration and store, a page at a time."""
        if denied := require_auth():
            return denied
        try:
            query = listing.query_of(request.args)
        except listing.BadQuery as exc:
            return replies.error(exc.status, exc.subject, str(exc))
        db.listings.prune_dead()
        found, next_cursor = listing.page(db, query)
        return jsonify(messages=[listing.row(m) for m in found], next_cursor=next_cursor)

    @app.get("/dead")
    def dead() -> Response:
        if denied := require_auth():
            return denied
        db.listings.prune_dead()
        return jsonify(
            messages=[_dead_row(i, m, t) for i, m, t in db.listings.dead("messages")],
            deliveries=[_dead_row(i, m, t) for i, m, t in db.listings.dead("deliveries")],
        )

    @app.post("/messages/<integration>/<path:message_id>/replay")
    def replay_message(integration: str, message_id: str) -> Response:
        if denied := require_auth() or require_known(integration):
            return denied
        try:
            replayed = replay.replay_message(db, publish, integration, message_id)
        except replay.NotReplayable as exc:
            return replies.error(409, "Not replayable", str(exc), message_id=message_id)
        if replayed == Replayed.ACCEPTED:
            return replies.accepted(message_id, "queued for a replay")
        return jsonify(message_id=message_id, status=Replayed.QUEUED)

    @app.post("/deliveries/<integration>/<path:message_id>/replay")
    def replay_delivery(integration: str, message_id: str) -> Response:
        if denied := require_auth() or require_known(integration):
            return denied
        try:
            replay.replay_delivery(outbox, send_push, integration, message_id)
        except replay.NotReplayable as exc:
            return replies.error(409, "Not replayable", str(exc), message_id=message_id)
        return jsonify(message_id=message_id, delivery=DeliveryStatus.PENDING)

    @app.post("/<integration>/<service>")
    def receive(integration: str, service: str) -> Response:
        if denied := require_auth():
            return denied
        found = registry.integrations().get(integration)
        if found is None:
            return replies.error(404, "Unknown integration", _unknown_integration(integration))
        svc = found.hub_services().get(service)
        if svc is None:
            return replies.error(
                404,
                "Unknown service",
                f"{integration!r} has no service {service!r}; it has: "
                f"{', '.join(found.hub_services())}",
            )
        try:
            wait = _wait_seconds(s)
            raw = read_body(s.max_body_bytes)
            message = parse_message(raw)
        except TooLarge as exc:
            return replies.error(413, "Message too large", str(exc))
        except BadBody as exc:
            if exc.message_id:
                logs.bind(message_id=exc.message_id)
            return replies.error(exc.status, exc.subject, str(exc), message_id=exc.message_id)
        logs.bind(message_id=message.message_id)
        if problem := reserved_id_problem(message.message_id):
            return replies.error(
                400, "Reserved message_id", f"message_id {problem}", message_id=message.message_id
            )
        handler = svc.handlers.get(message.message)
        if handler is None:
            return replies.error(
                422,
                "Message not taken",
                f"{integration}/{service} takes {', '.join(map(repr, svc.messages))}, "
                f"not {message.message!r}",
                message_id=message.message_id,
            )
        try:
            payload = handler.payload.model_validate(message.payload)
        except ValidationError as exc:
            return replies.invalid_payload(message.message_id, exc)
        if problem := unsafe_text_problem(raw, payload):
            return replies.error(
                400,
                "Invalid text",
                f"{problem}: NUL, control and bidirectional control characters are not "
                "forwarded to providers",
                message_id=message.message_id,
            )
        try:
            store = _store(s)
        except BadBody as exc:
            return replies.error(exc.status, exc.subject, str(exc), message_id=message.message_id)
        try:
            submission = submit(db, enqueue, handler, message, store, parameters_sealer, together)
        except Unavailable as exc:
            return replies.unavailable(str(exc), message_id=message.message_id)
        g.intake = submission.outcome
        return _answer(db, waiting, s, integration, message, submission, wait)

    @app.post("/webhooks/<integration>")
    def receive_event(integration: str) -> Response:
        """A provider's event: at most WEBHOOK_MAX_BODY_BYTES read, verified on the raw body
        with the secret of the store it is posted for before anything else is read, then
        recorded and enqueued like a hub message (its id made from the event, so a repeated
        event is a duplicate). The provider gets 200 for a new or a repeated event."""
        found = registry.integrations().get(integration)
        hook = found.inbound if found else None
        if hook is None:
            return replies.error(
                404, "No webhook", f"{integration!r} takes no webhooks at /webhooks/{integration}"
            )
        try:
            store = _event_store(s)
            raw = read_body(s.webhook_max_body_bytes)
        except TooLarge as exc:
            return replies.error(413, "Event too large", str(exc))
        except BadBody as exc:
            return replies.error(exc.status, exc.subject, str(exc))
        if problem := hook.verify(request.headers, raw, store, s.hub_store):
            g.intake_reason = f"Unverified event: {problem}"
            return replies.error(401, "Unverified event", problem)
        try:
            event = parse_event(raw)
        except BadBody as exc:
            return replies.error(exc.status, exc.subject, str(exc))
        try:
            payload = hook.payload.model_validate(event)
        except ValidationError as exc:
            return replies.invalid_payload("", exc)
        message = HubMessage(
            message_id=event_message_id(store, hook.key(payload)),
            message=hook.message,
            payload=event,
        )
        handler = found.handler(hook.message) if found else None
        assert handler is not None  # registered with the webhook
        logs.bind(message_id=message.message_id, service=handler.service)
        try:
            submission = submit(db, enqueue, handler, message, store, parameters_sealer, together)
        except Unavailable as exc:
            return replies.unavailable(str(exc), message_id=message.message_id)
        g.intake = submission.outcome
        if submission.outcome in (Intake.DUPLICATE, Intake.CONFLICT):
            return jsonify(message_id=message.message_id, status=Intake.DUPLICATE)
        return jsonify(message_id=message.message_id, status=Intake.QUEUED)

    @app.errorhandler(RequestEntityTooLarge)
    def too_large(exc: RequestEntityTooLarge) -> Response:
        return replies.error(413, "Message too large", f"The body is over {s.max_body_bytes} bytes")

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        reply = replies.error(exc.code or 500, exc.name, exc.description or exc.name)
        for name, value in exc.get_headers():  # e.g. a 405's Allow
            if name.lower() != "content-type":
                reply.headers[name] = value
        return reply

    @app.errorhandler(redis.RedisError)
    def redis_down(exc: redis.RedisError) -> Response:
        return replies.unavailable("Redis is unavailable")

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> Response:
        log.exception("unexpected error on %s %s", request.method, request.path)
        return replies.error(
            500,
            "Internal error",
            "An unexpected error occurred; it was logged",
        )

    return app


def _log_intake(response: Response) -> None:
    """One line per message or event offered: what became of it, the status code, and why it
    was refused (the reply's subject, or the webhook's verification problem; never the body).
    Under gunicorn it is the request's access line (``gunicorn.conf.py``)."""
    outcome = g.get("intake", Intake.REFUSED)
    status = response.status_code
    reason = g.get("intake_reason") or (_subject(response) if outcome == Intake.REFUSED else None)
    if outcome == Intake.CONFLICT:
        reason = "this message_id was received with another body"
    words = f"intake {outcome}" + (f" ({reason})" if reason else "")
    fields = {"intake": outcome, "status": status, **({"reason": reason} if reason else {})}
    level = _intake_level(outcome, status)
    if "gunicorn.socket" in request.environ:  # the access line says it, with the request's facts
        request.environ[logs.INTAKE_ENVIRON] = (level, words, fields)
    else:
        log.log(level, f"{words}: HTTP {status}", extra=fields)


def _intake_level(outcome: Intake, status: int) -> int:
    """Not taken for want of Redis: an error; a wrong token or a reused message_id: a warning."""
    if outcome == Intake.REFUSED and status >= 500:
        return logging.ERROR
    if status == 401 or outcome == Intake.CONFLICT:
        return logging.WARNING
    return logging.INFO


def _subject(response: Response) -> str | None:
    """The first notification's subject of an error reply: a fixed phrase of ours."""
    body = response.get_json(silent=True)
    notes = body.get("notifications") if isinstance(body, dict) else None
    if isinstance(notes, list) and notes and isinstance(notes[0], dict):
        return str(notes[0].get("subject"))
    return None


def _wait_seconds(s: Settings) -> float:
    raw = request.headers.get("X-Hub-Wait")
    if raw is None:
        return s.hub_wait_seconds
    try:
        seconds = float(raw)
    except ValueError:
        raise BadBody(400, "Invalid X-Hub-Wait", "X-Hub-Wait must be a number of seconds") from None
    if not 0 <= seconds < float("inf"):
        raise BadBody(400, "Invalid X-Hub-Wait", "X-Hub-Wait must be between 0 and 180")
    return min(seconds, MAX_WAIT_SECONDS)


def _store(s: Settings) -> str:
    """The hub store the message is for (cursors and handler memory are kept per store): the
    X-Hub-Store header, else ``HUB_STORE`` (checked at start-up). It becomes part of Redis keys,
    so it must pass ``store_problem``."""
    given = request.headers.get("X-Hub-Store")
    if not given:
        return s.hub_store
    if problem := store_problem(given):
        raise BadBody(400, "Invalid X-Hub-Store", f"X-Hub-Store {problem}")
    return given


def _event_store(s: Settings) -> str:
    """The store a provider's event is for: ``?store=`` in the webhook URL registered with the
    provider, else ``HUB_STORE``."""
    given = request.args.get("store")
    if not given:
        return s.hub_store
    if problem := store_problem(given):
        raise BadBody(400, "Invalid store", f"store {problem}")
    return given


def _answer(
    db: Store,
    waiting: Waiting,
    s: Settings,
    integration: str,
    message: HubMessage,
    submission: Submission,
    wait: float,
) -> Response:
    if submission.outcome == Intake.CONFLICT:
        return replies.error(
            409,
            "Conflicting message_id",
            "This message_id was already received with a different message or payload",
            message_id=message.message_id,
        )
    if wait > 0:
        busy = False
        try:
            record = waiting.wait(integration, message.message_id, wait)
        except TooManyWaiting:
            busy, record = True, db.messages.get(integration, message.message_id)
        except redis.RedisError:
            return replies.unavailable("Redis is unavailable", message_id=message.message_id)
        if record is not None and record.finished:
            try:
                ahead = db.memory.parts(integration, message.message_id)
            except redis.RedisError:
                return replies.unavailable("Redis is unavailable", message_id=message.message_id)
            return replies.finished(record, ahead)
        if record is not None:
            return replies.still_running(record, pushed=bool(s.hub_push_url), busy=busy)
    return replies.queued(
        message.message_id, submission.record, duplicate=submission.outcome == Intake.DUPLICATE
    )


def _celery_dispatch() -> Dispatch:
    """The service's Celery app's dispatch: the one place the receiver reaches the Celery app,
    imported when first asked for (``create_app``)."""
    from worker.tasks.app import dispatch

    return dispatch


def _first_use(queue: Callable[[], Dispatch], name: str) -> Any:
    """One of the dispatch's callables, the dispatch asked for when it is first called."""

    def call(*args: Any) -> Any:
        return getattr(queue(), name)(*args)

    return call


def _check(probe: Any) -> str:
    try:
        probe()
    except Exception as exc:
        return f"unavailable: {exc.__class__.__name__}"
    return "ok"


def _unknown_integration(name: str) -> str:
    known = ", ".join(registry.integrations()) or "none"
    return f"No integration {name!r}; known: {known}"


def _dead_row(integration: str, message_id: str, at: float) -> dict[str, Any]:
    return {"integration": integration, "message_id": message_id, "since": at}
