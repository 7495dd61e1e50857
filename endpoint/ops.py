"""``/ops``: the operations page, for a person with a browser rather than a hub.

Plain server-rendered HTML (Jinja templates in ``endpoint/templates/ops/``, autoescaped: message
ids, errors and answers come from outside and are only ever text here), no JavaScript. It shows
what is queued, what happened lately, what is dead and where each store's polls stand, and lets
an operator replay a dead message or a dead delivery with a button.

**Who comes in.** HTTP basic auth, any user name: the password is ``OPS_PASSWORD``, else the
endpoint token (``ENDPOINT_KEY``); with neither (insecure development, as ``bin/run`` runs) the
page is open. Compared in constant time; no secret is ever put on the page.

**Cross-site requests.** A browser sends basic auth credentials by itself, so a page elsewhere
could make it post a replay. Every Replay form carries a token, an HMAC (keyed by a key derived
from ``SHIPHUB_SECRET_KEY``'s first key, or a random per-process key without one) over what the
form replays, when the page was made and a nonce of its own; it is good for one replay (used up
in Redis, atomically, as the replay is taken). A replay also needs its ``Origin`` (or
``Referer``), when the browser sends one, to be this very origin: scheme, host and port. The
page cannot be framed (clickjacking).

After a replay the browser is redirected (POST/redirect/GET) to the page it came from, which says
what happened: ``queued``, ``accepted`` (the broker did not take it; the watchdog publishes it),
``pending`` (a delivery, pushed shortly) or ``refused`` (not replayable). What it says is kept
in Redis for a few minutes under a random name the redirect carries (``?notice=``), in fixed
words: a link cannot put words of its own on the page.

``/ops/failed`` lists failed, dead and retrying messages by integration and store, a page at a
time (``endpoint.listing``, as ``GET /messages``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import redis
from flask import Blueprint, Response, abort, render_template, request, url_for
from flask import redirect as flask_redirect
from kombu.transport import redis as kombu_redis
from werkzeug.exceptions import HTTPException

from endpoint import browse, listing
from endpoint.access import Wiring, wiring
from worker.basics.settings import Settings
from worker.integrations import registry
from worker.pipeline import replay
from worker.pipeline.replay import Replayed
from worker.store.bundle import Store
from worker.store.listings import InState
from worker.store.record import Record
from worker.store.schema import (
    LISTED_STATES,
    OPS_NOTICES,
    OUTBOX,
    REPLAYABLE,
    USED_FORMS,
    DeliveryStatus,
    MessageStatus,
    record_key,
    split_member,
    state_key,
)

log = logging.getLogger(__name__)

blueprint = Blueprint("ops", __name__, url_prefix="/ops", template_folder="templates")

RECENT_SHOWN = 50
LISTED = 100  # dead messages, dead deliveries and pending pushes shown at most
REALM = "shiphub operations"
# A Replay form older than this is refused (reload the page): a token that leaked is not
# good forever.
FORM_MAX_AGE_SECONDS = 12 * 3600
# Each form's token is good once: its digest is kept (``SET NX``, ``USED_FORMS``) as long as it
# could be valid. What a replay did is kept for the page it redirects to, under a random name
# (``OPS_NOTICES``).
NOTICE_SECONDS = 300
NOTICE_NAME = re.compile(r"[A-Za-z0-9_-]{16,64}")
DEFAULT_PORTS = {"http": 80, "https": 443}
_PROCESS_KEY = secrets.token_bytes(32)  # forms' key when SHIPHUB_SECRET_KEY is unset
# Parameter names whose values are never shown (a cursor or an answer could carry one).
SECRET_NAME = re.compile(r"pass|secret|token|key|auth|credential|signature", re.IGNORECASE)
HIDDEN = "(hidden)"

KINDS = ("message", "delivery")
# A bulk replay's form token is bound to this and its tab, integration and store.
LIST_KIND = "list:"
# A record's times, shown on its page like every other time here (UTC, to the second).
TIMES = (
    "received_at",
    "started_at",
    "updated_at",
    "finished_at",
    "next_attempt_at",
    "next_push_at",
    "delivered_at",
)
# What a replay did, said on the page it redirects to: (kind, outcome) -> (level, words).
NOTICES: dict[tuple[str, str], tuple[str, str]] = {
    ("message", Replayed.QUEUED): ("ok", "replayed, queued for a worker."),
    ("message", Replayed.ACCEPTED): (
        "ok",
        "replayed, recorded but not taken by the broker just now: "
        "the watchdog publishes it within about a minute.",
    ),
    ("message", Replayed.REFUSED): (
        "error",
        "not replayed: only a failed or dead message of a known integration can be.",
    ),
    ("delivery", Replayed.PENDING): (
        "ok",
        "delivery replayed, its answer is pushed to the hub shortly.",
    ),
    ("delivery", Replayed.REFUSED): (
        "error",
        "delivery not replayed: only a dead delivery can be.",
    ),
}


# -- who comes in ----------------------------------------------------------------------------
def ops_password(s: Settings) -> str | None:
    """The page's password: OPS_PASSWORD, else the endpoint token; None: the page is open."""
    secret = s.ops_password or s.endpoint_key
    return secret.get_secret_value() if secret is not None else None


@blueprint.before_request
def _require_login() -> Response | None:
    expected = ops_password(wiring().settings)
    if expected is None:
        return None
    given = request.authorization
    password = given.password if given is not None and given.type == "basic" else None
    if password is not None and hmac.compare_digest(password.encode(), expected.encode()):
        return None
    response = _error_page(401, "Unauthorized", "This page needs the operations password.")
    response.headers["WWW-Authenticate"] = f'Basic realm="{REALM}", charset="UTF-8"'
    return response


@blueprint.after_request
def _protect(response: Response) -> Response:
    """No framing (a framed Replay button could be clicked by a trick), no caching of what the
    page shows, no script of any origin, and a Referer for our own same-origin check only."""
    response.headers["Content-Security-Policy"] = (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    )
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["Cache-Control"] = "no-store"
    return response


# -- forms -----------------------------------------------------------------------------------
def _forms_key(s: Settings) -> bytes:
    """A key of its own for form tokens, derived from SHIPHUB_SECRET_KEY's first key (stable
    across processes and restarts), else this process's random key."""
    if s.shiphub_secret_key is None:
        return _PROCESS_KEY
    first = s.shiphub_secret_key.get_secret_value().split(",")[0].strip()
    return hmac.new(first.encode(), b"shiphub /ops form tokens", hashlib.sha256).digest()


def form_token(
    s: Settings,
    kind: str,
    integration: str,
    message_id: str,
    issued: int | None = None,
    nonce: str | None = None,
) -> str:
    """``<issued>.<nonce>.<hmac>``: good for this one replay, once, for FORM_MAX_AGE_SECONDS."""
    issued = int(time.time()) if issued is None else issued
    nonce = secrets.token_hex(8) if nonce is None else nonce
    what = "\0".join((str(issued), nonce, kind, integration, message_id)).encode()
    return f"{issued}.{nonce}.{hmac.new(_forms_key(s), what, hashlib.sha256).hexdigest()}"


def form_token_ok(s: Settings, token: str, kind: str, integration: str, message_id: str) -> bool:
    issued_text, _, rest = token.partition(".")
    nonce, _, _ = rest.partition(".")
    if not re.fullmatch(r"[0-9]{1,12}", issued_text) or not re.fullmatch(r"[0-9a-f]{16}", nonce):
        return False
    issued = int(issued_text)
    if not -60 <= time.time() - issued <= FORM_MAX_AGE_SECONDS:
        return False
    expected = form_token(s, kind, integration, message_id, issued, nonce)
    return hmac.compare_digest(token.encode(), expected.encode())


def use_form(client: redis.Redis, token: str) -> bool:
    """Use up a (valid) form token: True the first time, False ever after, in one atomic step
    however many receivers take the same form at once."""
    digest = hashlib.sha256(token.encode()).hexdigest()
    return bool(client.set(USED_FORMS + digest, "1", nx=True, ex=FORM_MAX_AGE_SECONDS + 120))


def _origin(url: str) -> tuple[str, str, int] | None:
    """A URL's origin: scheme, host and port (the scheme's own when none is written)."""
    try:
        parts = urlsplit(url)
        scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
        port = parts.port or DEFAULT_PORTS.get(scheme)
    except ValueError:
        return None
    return (scheme, host, port) if host and port else None


def cross_site_problem() -> str | None:
    """Why this POST looks like it came from another site, if it does: its Origin (or, without
    one, its Referer) is not this very origin (scheme, host and port: ``https://`` is another
    site than this ``http://`` receiver). A request with neither relies on the form token."""
    here = _origin(f"{request.scheme}://{request.host}")
    origin = request.headers.get("Origin")
    if origin is not None:
        if origin == "null" or here is None or _origin(origin) != here:
            return "The request came from another site (Origin)"
        return None
    referer = request.headers.get("Referer")
    if referer is not None and (here is None or _origin(referer) != here):
        return "The request came from another site (Referer)"
    return None


# -- what the page shows ---------------------------------------------------------------------
def when(epoch: float | str | None) -> str:
    """A time as operators read it (UTC, to the second); "" when there is none."""
    if epoch in (None, ""):
        return ""
    try:
        moment = datetime.fromtimestamp(float(epoch), UTC)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError, OSError):
        return ""
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def shown(name: str, value: Any) -> str:
    """A parameter's value as shown: JSON, or hidden when its name says it is a secret."""
    if SECRET_NAME.search(name):
        return HIDDEN
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


@dataclass(frozen=True)
class QueueRow:
    integration: str
    display: str
    queue: str
    waiting: int


@dataclass(frozen=True)
class MessageRow:
    integration: str
    message_id: str
    message: str
    status: str
    attempts: int
    received_at: str
    updated_at: str
    last_error: str
    since: str = ""  # dead since (dead lists)

    @classmethod
    def of(cls, record: Record, since: float | None = None) -> MessageRow:
        f = record.fields
        return cls(
            integration=record.integration,
            message_id=record.message_id,
            message=f.get("message", ""),
            status=record.status if f else "expired",
            attempts=int(f.get("attempts") or 0),
            received_at=when(f.get("received_at")),
            updated_at=when(f.get("updated_at")),
            last_error=f.get("last_error", ""),
            since=when(since),
        )


@dataclass(frozen=True)
class DeliveryRow:
    integration: str
    message_id: str
    message: str
    status: str
    attempts: int
    last_error: str
    at: str  # pending: the next push; dead: when it died

    @classmethod
    def of(cls, record: Record, at: float) -> DeliveryRow:
        f = record.fields
        return cls(
            integration=record.integration,
            message_id=record.message_id,
            message=f.get("message", ""),
            status=f.get("delivery", "expired" if not f else ""),
            attempts=int(f.get("delivery_attempts") or 0),
            last_error=f.get("delivery_error", ""),
            at=when(at),
        )


@dataclass(frozen=True)
class ListedRow:
    """A failed, dead or retrying message on ``/ops/failed``."""

    status: str
    integration: str
    message_id: str
    store: str
    message: str
    since: str
    attempts: int
    last_error: str
    next_attempt: str

    @classmethod
    def of(cls, listed: InState) -> ListedRow:
        f = listed.record.fields
        retrying = listed.status == MessageStatus.RETRYING
        return cls(
            status=listed.status,
            integration=listed.record.integration,
            message_id=listed.record.message_id,
            store=listed.store,
            message=f.get("message", ""),
            since=when(listed.since),
            attempts=int(f.get("attempts") or 0),
            last_error=f.get("last_error", ""),
            next_attempt=when(f.get("next_attempt_at")) if retrying else "",
        )


@dataclass(frozen=True)
class CursorRow:
    integration: str
    store: str
    moved_at: str
    values: list[tuple[str, str]]


@dataclass(frozen=True)
class Overview:
    queues: list[QueueRow]
    stats: dict[str, int]
    sizes: dict[str, int]
    recent: list[MessageRow]
    dead_messages: list[MessageRow]
    pending_pushes: list[DeliveryRow]
    dead_deliveries: list[DeliveryRow]
    cursors: list[CursorRow]
    in_states: dict[str, int]  # how many messages are failed, dead, retrying now


def waiting_in(client: redis.Redis, queues: list[str]) -> dict[str, int]:
    """Tasks waiting in each broker queue. kombu's Redis transport keeps a queue as a list named
    after it, plus one list per priority step (``<queue>\\x06\\x16<step>``); the size is their
    sum, as kombu's own ``Channel._size`` counts it."""
    steps = kombu_redis.PRIORITY_STEPS
    sep = kombu_redis.Channel.sep
    with client.pipeline(transaction=False) as pipe:
        for queue in queues:
            for step in steps:
                pipe.llen(f"{queue}{sep}{step}" if step else queue)
        sizes = pipe.execute()
    return {q: sum(sizes[i * len(steps) : (i + 1) * len(steps)]) for i, q in enumerate(queues)}


def _records_of(db: Store, listed: list[tuple[str, str, float]]) -> list[tuple[Record, float]]:
    """The records of listed (integration, message id, score) rows, with their scores, in one
    round trip; a record that expired meanwhile comes back empty."""
    with db.redis.pipeline(transaction=False) as pipe:
        for integration, message_id, _ in listed:
            pipe.hgetall(record_key(integration, message_id))
        found = pipe.execute()
    return [(Record(i, m, f or {}), at) for (i, m, at), f in zip(listed, found, strict=True)]


def _pending_pushes(db: Store) -> list[tuple[str, str, float]]:
    """The outbox (``worker.store.outbox``): answers waiting to be pushed, by their next push."""
    rows = db.redis.zrange(OUTBOX, 0, LISTED - 1, withscores=True)
    return [(*split_member(m), score) for m, score in rows]


def overview(w: Wiring) -> Overview:
    db = w.db
    db.listings.prune_dead()
    found = registry.integrations()
    queue_names = [i.name for i in found.values()] + [registry.HUB_QUEUE]
    waiting = waiting_in(db.redis, queue_names)
    queues = [QueueRow(i.name, i.display, i.name, waiting[i.name]) for i in found.values()]
    queues.append(
        QueueRow(
            "", "pushes to the hub, poll ticks", registry.HUB_QUEUE, waiting[registry.HUB_QUEUE]
        )
    )
    dead = _records_of(db, db.listings.dead("messages", LISTED))
    dead_pushes = _records_of(db, db.listings.dead("deliveries", LISTED))
    pending = _records_of(db, _pending_pushes(db))
    return Overview(
        queues=queues,
        stats=db.listings.stats(),
        sizes=db.listings.sizes(),
        recent=[MessageRow.of(r) for r in db.listings.recent(RECENT_SHOWN)],
        dead_messages=[MessageRow.of(r, at) for r, at in dead],
        pending_pushes=[DeliveryRow.of(r, at) for r, at in pending],
        dead_deliveries=[DeliveryRow.of(r, at) for r, at in dead_pushes],
        cursors=[
            CursorRow(c.integration, c.store, when(c.moved_at), _values(c.values))
            for c in db.memory.cursors()
        ],
        in_states=_in_states(db),
    )


def _in_states(db: Store) -> dict[str, int]:
    with db.redis.pipeline(transaction=False) as pipe:
        for status in LISTED_STATES:
            pipe.zcard(state_key(status))
        counts = pipe.execute()
    return dict(zip(LISTED_STATES, counts, strict=True))


def _values(values: dict[str, Any]) -> list[tuple[str, str]]:
    return [(name, shown(name, value)) for name, value in sorted(values.items())]


def answer_text(answer: dict[str, Any] | None) -> str:
    """An answer as indented JSON, with the values of secret-looking parameters hidden."""
    if answer is None:
        return ""
    parameters = answer.get("parameters")
    if isinstance(parameters, list):
        answer = {
            **answer,
            "parameters": [
                {**p, "value": HIDDEN}
                if isinstance(p, dict) and SECRET_NAME.search(str(p.get("name", "")))
                else p
                for p in parameters
            ],
        }
    return json.dumps(answer, indent=2, ensure_ascii=False)


@dataclass(frozen=True)
class Notice:
    level: str
    kind: str  # "message", "delivery", or "list" (a bulk replay: ``words`` say it all)
    integration: str
    message_id: str
    words: str


def remember_notice(
    client: redis.Redis, kind: str, integration: str, message_id: str, outcome: str
) -> str:
    """Keep what a replay did for the page it redirects to; the name to find it by."""
    said = {"kind": kind, "integration": integration, "message_id": message_id, "outcome": outcome}
    return _remember(client, said)


def remember_bulk(client: redis.Redis, done: browse.BulkReplay) -> str:
    """Keep what a bulk replay did (its counts) for the page it redirects to."""
    said = {
        "kind": "list",
        "tab": done.tab,
        "replayed": done.replayed,
        "skipped": done.skipped,
        "more": done.more,
    }
    return _remember(client, said)


def _remember(client: redis.Redis, said: dict[str, Any]) -> str:
    name = secrets.token_urlsafe(18)
    client.set(OPS_NOTICES + name, json.dumps(said), ex=NOTICE_SECONDS)
    return name


def notice() -> Notice | None:
    """What the replay that redirected here did: kept by the server under the name the link
    carries (``?notice=``), said in our fixed words. Nothing else in a link is ever said."""
    name = request.args.get("notice", "")
    if not NOTICE_NAME.fullmatch(name):
        return None
    raw = wiring().db.redis.get(OPS_NOTICES + name)
    if raw is None:
        return None
    kept = json.loads(raw)
    if kept["kind"] == "list":
        words = browse.bulk_words(kept["tab"], kept["replayed"], kept["skipped"], kept["more"])
        return Notice("ok" if kept["replayed"] else "error", "list", "", "", words)
    said = NOTICES.get((kept["kind"], kept["outcome"]))
    if said is None:
        return None
    level, words = said
    return Notice(level, kept["kind"], kept["integration"], kept["message_id"], words)


def _page(template: str, status: int = 200, **context: Any) -> Response:
    s = wiring().settings

    def token(kind: str, integration: str, message_id: str) -> str:
        return form_token(s, kind, integration, message_id)

    def list_token(tab: str, integration: str | None, store: str | None) -> str:
        return form_token(s, LIST_KIND + tab, integration or "", store or "")

    html = render_template(
        template,
        token=token,
        list_token=list_token,
        when=when,
        notice=notice(),
        REPLAYABLE=REPLAYABLE,
        DeliveryStatus=DeliveryStatus,
        **context,
    )
    return Response(html, status=status, mimetype="text/html")


def _error_page(status: int, title: str, description: str) -> Response:
    html = render_template("ops/error.html", status=status, title=title, description=description)
    return Response(html, status=status, mimetype="text/html")


# -- routes ----------------------------------------------------------------------------------
@blueprint.get("", strict_slashes=False)
def index() -> Response:
    return _page("ops/index.html", overview=overview(wiring()), now=when(time.time()))


@blueprint.get("/messages/<integration>/<path:message_id>")
def message(integration: str, message_id: str) -> Response:
    if integration not in registry.integrations():
        abort(404, f"No integration {integration!r}")
    record = wiring().db.messages.get(integration, message_id)
    if record is None:
        abort(404, f"No message {message_id!r} for {integration!r}")
    view = record.view()
    return _page(
        "ops/message.html",
        view=view,
        store=record.store,
        times={name: when(record.fields.get(name)) for name in TIMES},
        answer=answer_text(view["answer"]),
    )


@blueprint.get("/failed")
def failed() -> Response:
    """Failed, dead and retrying messages by integration and store, a page at a time."""
    try:
        query = listing.query_of(request.args)
    except listing.BadQuery as exc:
        return _error_page(exc.status, exc.subject, str(exc))
    db = wiring().db
    db.listings.prune_dead()
    found, next_cursor = listing.page(db, query)
    filters: dict[str, Any] = {"status": list(query.statuses), "limit": query.limit}
    filters |= {k: v for k, v in (("integration", query.integration), ("store", query.store)) if v}
    return _page(
        "ops/failed.html",
        rows=[ListedRow.of(m) for m in found],
        query=query,
        states=LISTED_STATES,
        integrations=list(registry.integrations()),
        older=url_for("ops.failed", **filters, cursor=next_cursor) if next_cursor else None,
        newest=url_for("ops.failed", **filters) if query.after else None,
        now=when(time.time()),
    )


@blueprint.get("/messages")
def messages() -> Response:
    """The message tabs (``endpoint.browse``): one tab's messages under the filter, a page at a
    time, or what a search finds."""
    try:
        query = browse.query_of(request.args)
    except listing.BadQuery as exc:
        return _error_page(exc.status, exc.subject, str(exc))
    db = wiring().db
    db.listings.prune_dead()
    counts = browse.counts(db, query.integration, query.store)
    following = None
    if query.search:
        rows = browse.search(db, query)
    else:
        rows, following = browse.page(db, query)
    filters = query.filters()
    return _page(
        "ops/messages.html",
        query=query,
        tabs=browse.TABS,
        counts=counts,
        rows=rows,
        integrations=list(registry.integrations()),
        stores=browse.known_stores(db, rows, query.store),
        tab_url=lambda tab: url_for(
            "ops.messages", **{k: v for k, v in filters.items() if k not in ("q", "tab")}, tab=tab
        ),
        older=url_for("ops.messages", **filters, cursor=listing.encode_cursor(following))
        if following is not None
        else None,
        newest=url_for("ops.messages", **filters) if query.after else None,
        bulk_most=browse.BULK_MOST,
        now=when(time.time()),
    )


@blueprint.post("/replay-list")
def replay_list() -> Response:
    """A list's Replay all button: checked as a Replay button is (same site, a fresh token of
    this very form: its tab and filter), then the list as it was when the page was made is
    replayed, at most ``browse.BULK_MOST`` at a time; back to the tab, saying what happened."""
    form = request.form
    tab = browse.BY_NAME.get(form.get("tab", ""))
    integration, store = form.get("integration", ""), form.get("store", "")
    if tab is None or tab.replays is None:
        return _error_page(
            400, "Bad request", "A list replay names a tab whose messages can be replayed."
        )
    if problem := cross_site_problem():
        return _error_page(403, "Forbidden", f"{problem}: nothing was replayed.")
    w = wiring()
    token = form.get("token", "")
    if not form_token_ok(w.settings, token, LIST_KIND + tab.name, integration, store):
        return _error_page(
            403, "Forbidden", "This form is stale or not ours: reload the page and try again."
        )
    if integration and integration not in registry.integrations():
        abort(404, f"No integration {integration!r}")
    if not use_form(w.db.redis, token):
        return _error_page(
            403,
            "Forbidden",
            "This Replay all form was already used (each works once): nothing was replayed. "
            "Reload the page for a fresh one.",
        )
    # What the list held as of the second its page was made (the token's): not what came after.
    issued = int(token.partition(".")[0]) + 1
    done = browse.replay_listed(w, tab, integration or None, store or None, issued)
    log.info(
        "ops: replay of the %s list (integration %r, store %r): %d replayed, skipped %s",
        tab.name,
        integration,
        store,
        done.replayed,
        done.skipped,
    )
    said = remember_bulk(w.db.redis, done)
    filters = {"tab": tab.name, "integration": integration, "store": store}
    return flask_redirect(
        url_for("ops.messages", **{k: v for k, v in filters.items() if v}, notice=said), 303
    )


@blueprint.post("/replay")
def replay_form() -> Response:
    """A Replay button: checked (same site, a fresh token of this very form), replayed, then
    back to the page it came from, saying what happened."""
    form = request.form
    kind, integration = form.get("kind", ""), form.get("integration", "")
    message_id = form.get("message_id", "")
    if kind not in KINDS or not message_id:
        return _error_page(400, "Bad request", "A replay names a kind, an integration and an id.")
    if problem := cross_site_problem():
        return _error_page(403, "Forbidden", f"{problem}: nothing was replayed.")
    w = wiring()
    token = form.get("token", "")
    if not form_token_ok(w.settings, token, kind, integration, message_id):
        return _error_page(
            403, "Forbidden", "This form is stale or not ours: reload the page and try again."
        )
    if integration not in registry.integrations():
        abort(404, f"No integration {integration!r}")
    if not use_form(w.db.redis, token):
        return _error_page(
            403,
            "Forbidden",
            "This Replay form was already used (each works once): nothing was replayed. "
            "Reload the page for a fresh one.",
        )
    outcome = _replay(w, kind, integration, message_id)
    log.info("ops: replay of %s %s/%r: %s", kind, integration, message_id, outcome)
    said = remember_notice(w.db.redis, kind, integration, message_id, outcome)
    back = form.get("back")
    if back == "message":
        target = url_for("ops.message", integration=integration, message_id=message_id, notice=said)
    elif back == "failed":
        target = url_for("ops.failed", notice=said)
    else:
        target = url_for("ops.index", notice=said)
    return flask_redirect(target, 303)


def _replay(w: Wiring, kind: str, integration: str, message_id: str) -> Replayed:
    try:
        if kind == "message":
            return replay.replay_message(w.db, w.publish, integration, message_id)
        replay.replay_delivery(w.outbox, w.send_push, integration, message_id)
    except replay.NotReplayable:
        return Replayed.REFUSED
    return Replayed.PENDING


@blueprint.route("/<path:rest>", methods=["GET", "POST"])
def not_found(rest: str) -> Response:
    abort(404, "There is no such page.")


# -- errors, as pages ------------------------------------------------------------------------
@blueprint.errorhandler(HTTPException)
def _http_error(exc: HTTPException) -> Response:
    return _error_page(exc.code or 500, exc.name, exc.description or exc.name)


@blueprint.errorhandler(redis.RedisError)
def _redis_down(exc: redis.RedisError) -> Response:
    response = _error_page(
        503, "Service unavailable", "Redis is unavailable: the page cannot be read. Retry later."
    )
    response.headers["Retry-After"] = "5"
    return response


@blueprint.errorhandler(Exception)
def _unexpected(exc: Exception) -> Response:
    log.exception("unexpected error on %s %s", request.method, request.path)
    return _error_page(500, "Internal error", "An unexpected error occurred; it was logged.")
