"""The /ops page over fakeredis: who comes in, what it shows (escaped), its Replay forms (and
their protection against cross-site requests), and its error pages. The browser test against a
real stack is ``tests/ops/test_ops_browser.py``."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qs, urlsplit

import fakeredis
import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from endpoint import ops
from endpoint.app import create_app
from tests.conftest import ENDPOINT_KEY, Publisher, settle, unit_settings
from tests.support.records import accept
from worker.pipeline.delivery import SendPush
from worker.store.bundle import Store
from worker.store.outbox import Outbox
from worker.store.record import Timing

OPS_PASSWORD = "ops-unit-password"
SECRET_KEY = "4xK0gvQb0Z1m2Ab3yQ9cJ7dXo8hS5kLr6tW1uE2iV3c="  # unit_settings' key
OTHER_SECRET_KEY = "Jm3cQ2k6Y8d9sX1vB4nT7wR0pL5hG2fE9aZ6uK3iO1c="
SCRIPT_ID = "<script>alert(1)</script>"
HOSTILE_ERROR = 'Acme said <img src=x onerror="alert(2)"> & left'


def basic(password: str, user: str = "anyone") -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


OPS = basic(OPS_PASSWORD)


class Page(HTMLParser):
    """The rows of the page's tables (by the row's class) as the text of their cells, the text of
    elements with an id (``notice``, ``status``, ``last-error`` ...), its forms (their hidden
    fields), its links and its whole text."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.rows: dict[str, list[list[str]]] = {}
        self.by_id: dict[str, str] = {}
        self.forms: list[dict[str, str]] = []
        self.links: list[str] = []
        self.parts: list[str] = []
        self._row: list[str] | None = None
        self._cell: list[str] | None = None
        self._element: tuple[str, str, list[str]] | None = None
        self.feed(html)

    @property
    def text(self) -> str:
        return " ".join("".join(self.parts).split())

    @property
    def notice(self) -> str:
        return self.by_id.get("notice", "")

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "tr":
            self._row = []
            self.rows.setdefault(found.get("class") or "", []).append(self._row)
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "form":
            self.forms.append({"action": found.get("action") or ""})
        elif tag == "input" and self.forms:
            self.forms[-1][found.get("name") or ""] = found.get("value") or ""
        elif tag == "a":
            self.links.append(found.get("href") or "")
        if found.get("id") and tag in ("p", "dd", "pre", "nav"):
            self._element = (tag, found["id"] or "", [])

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._row.append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif self._element is not None and tag == self._element[0]:
            _, name, buffer = self._element
            self.by_id[name] = " ".join("".join(buffer).split())
            self._element = None

    def handle_data(self, data: str) -> None:
        self.parts.append(data)
        if self._cell is not None:
            self._cell.append(data)
        if self._element is not None:
            self._element[2].append(data)

    def table(self, kind: str) -> list[list[str]]:
        return self.rows.get(kind, [])

    def form_for(self, kind: str, message_id: str) -> dict[str, str]:
        return next(
            f for f in self.forms if f.get("kind") == kind and f.get("message_id") == message_id
        )


def page(response: TestResponse) -> Page:
    assert response.mimetype == "text/html", response.data[:300]
    return Page(response.get_data(as_text=True))


def app_with(
    db: Store, publisher: Publisher, send_push: SendPush | None = None, **overrides: Any
) -> Flask:
    return create_app(unit_settings(**overrides), db, publisher, send_push=send_push)


@pytest.fixture
def pushes() -> list[tuple[str, str, str]]:
    """The push tasks the receiver sent (which the broker would take)."""
    return []


@pytest.fixture
def ops_client(
    db: Store, publisher: Publisher, pushes: list[tuple[str, str, str]]
) -> Iterator[FlaskClient]:
    """The receiver with OPS_PASSWORD set."""
    app = app_with(
        db,
        publisher,
        lambda c: pushes.append((c.integration, c.message_id, c.claim)),
        ops_password=OPS_PASSWORD,
    )
    with app.test_client() as client:
        yield client


def post_order(client: FlaskClient, message_id: str, number: str = "N-1") -> None:
    body = {
        "message_id": message_id,
        "message": "order:ready",
        "payload": {"order": {"number": number}},
    }
    response = client.post("/acme/send_order", json=body, headers={"X-Hub-Token": ENDPOINT_KEY})
    assert response.status_code == 200, response.json


def dead_message(client: FlaskClient, db: Store, message_id: str, error: str) -> None:
    post_order(client, message_id)
    assert settle(db, message_id, "dead", error=error) == "written"


def dead_delivery(client: FlaskClient, db: Store, message_id: str, error: str) -> None:
    """A succeeded message whose one push failed for good."""
    post_order(client, message_id)
    assert settle(db, message_id, "succeeded", push=True) == "written"
    outbox = Outbox(db.redis, db.timing)
    claim = outbox.claim("acme", message_id)
    assert claim is not None and outbox.take("acme", message_id, claim, 10) is not None
    assert outbox.failed("acme", message_id, claim, error, None) == "dead"


def replay_form(client: FlaskClient, kind: str, message_id: str) -> dict[str, str]:
    """The Replay form the page shows for this message (or delivery)."""
    return page(client.get("/ops", headers=OPS)).form_for(kind, message_id)


def submit(
    client: FlaskClient, form: dict[str, str], headers: dict[str, str] | None = None
) -> TestResponse:
    fields = {k: v for k, v in form.items() if k != "action"}
    return client.post(form["action"], data=fields, headers={**OPS, **(headers or {})})


# -- who comes in ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "path", ["/ops", "/ops/messages/acme/some-id", "/ops/nowhere", "/ops/replay"]
)
def test_without_credentials_every_ops_path_answers_401_with_a_basic_challenge(
    ops_client: FlaskClient, path: str
) -> None:
    response = ops_client.get(path)

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith('Basic realm="shiphub operations"')
    assert "operations password" in page(response).text


@pytest.mark.parametrize(
    "headers",
    [
        basic("wrong"),
        basic(ENDPOINT_KEY),  # OPS_PASSWORD is set: the endpoint token is not the password
        {"Authorization": f"Bearer {OPS_PASSWORD}"},
        {"Authorization": "Basic not-base64!"},
        {"X-Hub-Token": ENDPOINT_KEY},
    ],
)
def test_a_wrong_password_or_scheme_is_refused(
    ops_client: FlaskClient, headers: dict[str, str]
) -> None:
    assert ops_client.get("/ops", headers=headers).status_code == 401


def test_the_ops_password_with_any_user_name_comes_in(ops_client: FlaskClient) -> None:
    assert ops_client.get("/ops", headers=basic(OPS_PASSWORD, "ops")).status_code == 200
    assert ops_client.get("/ops", headers=basic(OPS_PASSWORD, "")).status_code == 200


def test_without_ops_password_the_endpoint_token_is_the_password(
    db: Store, publisher: Publisher
) -> None:
    client = app_with(db, publisher).test_client()

    assert client.get("/ops").status_code == 401
    assert client.get("/ops", headers=basic("wrong")).status_code == 401
    assert client.get("/ops", headers=basic(ENDPOINT_KEY)).status_code == 200


def test_in_insecure_development_without_any_password_the_page_is_open(
    db: Store, publisher: Publisher
) -> None:
    client = app_with(
        db, publisher, endpoint_key=None, shiphub_secret_key=None, shiphub_insecure_dev=True
    ).test_client()

    response = client.get("/ops")

    assert response.status_code == 200
    assert "WWW-Authenticate" not in response.headers


def test_in_insecure_development_an_ops_password_still_guards_the_page(
    db: Store, publisher: Publisher
) -> None:
    client = app_with(
        db, publisher, endpoint_key=None, shiphub_insecure_dev=True, ops_password="pw"
    ).test_client()

    assert client.get("/ops").status_code == 401
    assert client.get("/ops", headers=basic("pw")).status_code == 200


def test_a_replay_without_credentials_replays_nothing(
    ops_client: FlaskClient, db: Store, publisher: Publisher
) -> None:
    dead_message(ops_client, db, "dead-1", "boom")
    form = replay_form(ops_client, "message", "dead-1")
    fields = {k: v for k, v in form.items() if k != "action"}

    response = ops_client.post("/ops/replay", data=fields)

    assert response.status_code == 401
    record = db.messages.get("acme", "dead-1")
    assert record is not None and record.status == "dead"


def test_the_page_never_shows_a_secret(ops_client: FlaskClient, db: Store) -> None:
    post_order(ops_client, "with-cursor")
    db.attempts.begin("acme", "with-cursor", "lease")
    db.attempts.finish(
        "acme",
        "with-cursor",
        "succeeded",
        {
            "message_id": "with-cursor",
            "parameters": [
                {"name": "acme.last_id", "value": 41},
                {"name": "acme.api_key", "value": "leaked-api-key"},
            ],
        },
        error=None,
        cursor={"last_id": 41, "api_key": "leaked-api-key", "password": "leaked-password"},
        push=False,
        lease_token="lease",
    )

    overview = ops_client.get("/ops", headers=OPS)
    detail = ops_client.get("/ops/messages/acme/with-cursor", headers=OPS)

    for response in (overview, detail):
        html = response.get_data(as_text=True)
        for secret in (OPS_PASSWORD, ENDPOINT_KEY, SECRET_KEY, "leaked-api-key", "leaked-password"):
            assert secret not in html
    (cursor,) = page(overview).table("cursor")
    assert cursor[0] == "acme" and cursor[1] == "default"
    assert "api_key = (hidden)" in cursor[3] and "password = (hidden)" in cursor[3]
    assert "last_id = 41" in cursor[3]
    assert '"value": "(hidden)"' in page(detail).by_id["answer"]


# -- what it shows ---------------------------------------------------------------------------
def test_the_page_lists_integrations_with_their_queues_and_counters(
    ops_client: FlaskClient, db: Store
) -> None:
    db.redis.rpush("acme", "t1", "t2", "t3")  # kombu's list for the queue
    db.redis.rpush("acme\x06\x163", "t4")  # and its list for priority step 3
    db.redis.rpush("hub", "push")
    post_order(ops_client, "counted")

    shown = page(ops_client.get("/ops", headers=OPS))

    queues = {row[2]: row for row in shown.table("queue")}
    # the four above, and the posted order: intake queued it in the same step as its record
    assert queues["acme"] == ["acme", "Acme (test)", "acme", "5"]
    assert queues["hub"][3] == "1"
    assert {"dotcom", "shipping_orders", "ecomdash", "duoplane", "spectrum"} <= set(queues)
    assert queues["dotcom"][3] == "0"
    counters = dict(shown.table("counter"))
    assert counters["messages_accepted"] == "1" and counters["messages_dead"] == "0"
    sizes = dict(shown.table("size"))
    assert sizes["unfinished_messages"] == "1" and sizes["dead_deliveries"] == "0"


def test_recent_messages_show_their_state_and_link_to_their_record(
    ops_client: FlaskClient, db: Store
) -> None:
    post_order(ops_client, "older")
    post_order(ops_client, "newer", number="N-2")
    settle(db, "older", "failed", error="refused by acme")

    shown = page(ops_client.get("/ops", headers=OPS))

    newer, older = shown.table("recent-message")
    assert newer[:5] == ["acme", "newer", "order:ready", "queued", "0"]
    assert older[:5] == ["acme", "older", "order:ready", "failed", "1"]
    assert older[7] == "refused by acme"
    assert older[5].endswith(" UTC") and older[6].endswith(" UTC")
    assert "/ops/messages/acme/older" in shown.links


def test_dead_messages_deliveries_and_pending_pushes_are_listed(
    ops_client: FlaskClient, db: Store
) -> None:
    dead_message(ops_client, db, "dead-m", "HTTP 500 from acme")
    dead_delivery(ops_client, db, "dead-d", "hub answered HTTP 503")
    post_order(ops_client, "pending-p", number="N-3")
    settle(db, "pending-p", "succeeded", push=True)

    shown = page(ops_client.get("/ops", headers=OPS))

    (dead,) = shown.table("dead-message")
    assert dead[:3] == ["acme", "dead-m", "order:ready"]
    assert dead[4:6] == ["1", "HTTP 500 from acme"]
    (gone,) = shown.table("dead-delivery")
    assert gone[:2] == ["acme", "dead-d"] and gone[4:6] == ["1", "hub answered HTTP 503"]
    pending_ids = [row[1] for row in shown.table("pending-push")]
    assert "pending-p" in pending_ids and "dead-d" not in pending_ids
    assert shown.form_for("message", "dead-m")["integration"] == "acme"
    assert shown.form_for("delivery", "dead-d")["integration"] == "acme"


def test_the_message_view_shows_the_record_the_answer_and_the_delivery(
    ops_client: FlaskClient, db: Store
) -> None:
    dead_delivery(ops_client, db, "viewed", "hub answered HTTP 502")

    response = ops_client.get("/ops/messages/acme/viewed", headers=OPS)

    assert response.status_code == 200
    shown = page(response)
    assert shown.by_id["status"] == "succeeded"
    assert shown.by_id["delivery-status"] == "dead"
    assert shown.by_id["delivery-error"] == "hub answered HTTP 502"
    assert '"message_id": "viewed"' in shown.by_id["answer"]
    assert shown.form_for("delivery", "viewed")["back"] == "message"
    assert [f["kind"] for f in shown.forms] == ["delivery"]  # a succeeded message stands


def test_message_ids_and_errors_are_text_never_markup(ops_client: FlaskClient, db: Store) -> None:
    dead_message(ops_client, db, SCRIPT_ID, HOSTILE_ERROR)

    overview = ops_client.get("/ops", headers=OPS)
    html = overview.get_data(as_text=True)
    shown = page(overview)

    assert "<script>" not in html and "<img" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    (dead,) = shown.table("dead-message")
    assert dead[1] == SCRIPT_ID and dead[5] == HOSTILE_ERROR
    assert shown.form_for("message", SCRIPT_ID)["message_id"] == SCRIPT_ID
    (link,) = {href for href in shown.links if "alert" in href}
    detail = ops_client.get(link, headers=OPS)
    assert detail.status_code == 200
    detail_html = detail.get_data(as_text=True)
    assert "<script>" not in detail_html and "<img" not in detail_html
    assert page(detail).by_id["last-error"] == HOSTILE_ERROR
    assert page(detail).form_for("message", SCRIPT_ID)["message_id"] == SCRIPT_ID


# -- Replay buttons --------------------------------------------------------------------------
def test_a_replay_redirects_back_and_says_it_was_queued(
    ops_client: FlaskClient, db: Store, publisher: Publisher
) -> None:
    dead_message(ops_client, db, "again", "boom")
    form = replay_form(ops_client, "message", "again")
    publisher.published.clear()

    response = submit(ops_client, form)

    assert response.status_code == 303
    target = urlsplit(response.headers["Location"])
    assert target.path == "/ops"
    assert list(parse_qs(target.query)) == ["notice"]  # a name: the words are the server's
    assert publisher.published == [("acme.order_ready", "again")]
    record = db.messages.get("acme", "again")
    assert record is not None and record.status == "queued"
    shown = page(ops_client.get(response.headers["Location"], headers=OPS))
    assert shown.notice == "Message again of acme: replayed, queued for a worker."
    assert shown.table("dead-message") == []


def test_a_replay_the_broker_does_not_take_says_accepted(
    ops_client: FlaskClient, db: Store, publisher: Publisher
) -> None:
    dead_message(ops_client, db, "later", "boom")
    form = replay_form(ops_client, "message", "later")
    publisher.fail = True

    response = submit(ops_client, form)

    shown = page(ops_client.get(response.headers["Location"], headers=OPS))
    assert "recorded but not taken by the broker" in shown.notice
    record = db.messages.get("acme", "later")
    assert record is not None and record.status == "queued"


def test_a_message_that_cannot_be_replayed_is_said_so(
    ops_client: FlaskClient, db: Store, publisher: Publisher
) -> None:
    dead_message(ops_client, db, "twice", "boom")
    form = replay_form(ops_client, "message", "twice")
    publisher.published.clear()
    assert submit(ops_client, form).status_code == 303
    settle(db, "twice", "succeeded")
    settings = unit_settings(ops_password=OPS_PASSWORD)
    fresh = {**form, "token": ops.form_token(settings, "message", "acme", "twice")}

    response = submit(ops_client, fresh)  # a page made before it succeeded

    shown = page(ops_client.get(response.headers["Location"], headers=OPS))
    assert "not replayed: only a failed or dead message" in shown.notice
    assert publisher.published == [("acme.order_ready", "twice")]


def test_a_dead_delivery_is_replayed_from_the_message_view(
    ops_client: FlaskClient, db: Store, pushes: list[tuple[str, str, str]]
) -> None:
    dead_delivery(ops_client, db, "push-again", "hub answered HTTP 503")
    form = page(ops_client.get("/ops/messages/acme/push-again", headers=OPS)).form_for(
        "delivery", "push-again"
    )

    response = submit(ops_client, form)

    assert response.status_code == 303
    assert urlsplit(response.headers["Location"]).path == "/ops/messages/acme/push-again"
    shown = page(ops_client.get(response.headers["Location"], headers=OPS))
    assert "delivery replayed, its answer is pushed to the hub shortly" in shown.notice
    assert shown.by_id["delivery-status"] == "pending"
    assert [task[:2] for task in pushes] == [("acme", "push-again")]
    assert db.listings.dead("deliveries") == []


def test_a_replay_from_another_site_is_refused(
    ops_client: FlaskClient, db: Store, publisher: Publisher
) -> None:
    dead_message(ops_client, db, "target", "boom")
    form = replay_form(ops_client, "message", "target")
    publisher.published.clear()

    for headers in (
        {"Origin": "http://evil.example"},
        {"Origin": "null"},
        {"Origin": "http://localhost.evil.example"},
        {"Origin": "https://localhost"},  # another scheme is another site
        {"Origin": "http://localhost:8080"},  # ... and so is another port
        {"Origin": "http://localhost:99999"},
        {"Referer": "http://evil.example/ops"},
        {"Referer": "https://localhost/ops"},
    ):
        response = submit(ops_client, form, headers)
        assert response.status_code == 403, headers
        assert "another site" in page(response).text

    assert publisher.published == []
    same_site = submit(ops_client, form, {"Origin": "http://localhost:80"})
    assert same_site.status_code == 303


@pytest.mark.parametrize(
    "forged",
    [
        {"token": ""},
        {"token": "garbage"},
        {"message_id": "another-one"},  # a token made for another message
        {"kind": "delivery"},  # ... or another kind of replay
        {"token": "99999999999999.abc"},
        {"token": "\u00b2.abc"},  # a digit to str.isdigit, not to int()
    ],
)
def test_a_replay_without_its_own_token_is_refused(
    ops_client: FlaskClient, db: Store, publisher: Publisher, forged: dict[str, str]
) -> None:
    dead_message(ops_client, db, "guarded", "boom")
    post_order(ops_client, "another-one", number="N-9")
    settle(db, "another-one", "dead")
    form = {**replay_form(ops_client, "message", "guarded"), **forged}
    publisher.published.clear()

    response = submit(ops_client, form)

    assert response.status_code == 403
    assert publisher.published == []


def test_a_stale_form_is_refused(ops_client: FlaskClient, db: Store, publisher: Publisher) -> None:
    dead_message(ops_client, db, "old-form", "boom")
    settings = unit_settings(ops_password=OPS_PASSWORD)
    issued = int(time.time() - ops.FORM_MAX_AGE_SECONDS - 60)
    fields = {"kind": "message", "integration": "acme", "message_id": "old-form"}
    old = ops.form_token(settings, "message", "acme", "old-form", issued)
    fresh = ops.form_token(settings, "message", "acme", "old-form")

    assert submit(ops_client, {"action": "/ops/replay", **fields, "token": old}).status_code == 403
    assert (
        submit(ops_client, {"action": "/ops/replay", **fields, "token": fresh}).status_code == 303
    )


def test_form_tokens_are_keyed_by_the_secret_key_so_every_process_agrees(
    db: Store, publisher: Publisher
) -> None:
    same = unit_settings(shiphub_secret_key=f"{SECRET_KEY},{OTHER_SECRET_KEY}")
    other = unit_settings(shiphub_secret_key=OTHER_SECRET_KEY)
    token = ops.form_token(unit_settings(), "message", "acme", "m")

    assert ops.form_token_ok(same, token, "message", "acme", "m")
    assert not ops.form_token_ok(other, token, "message", "acme", "m")
    assert SECRET_KEY not in token


def test_a_replay_of_an_unknown_integration_is_404_and_a_bad_form_400(
    ops_client: FlaskClient,
) -> None:
    settings = unit_settings(ops_password=OPS_PASSWORD)
    token = ops.form_token(settings, "message", "nope", "m")
    unknown = {"action": "/ops/replay", "kind": "message", "integration": "nope"}

    response = submit(ops_client, {**unknown, "message_id": "m", "token": token})
    assert response.status_code == 404 and response.mimetype == "text/html"
    bad = submit(ops_client, {**unknown, "kind": "everything", "message_id": "m"})
    assert bad.status_code == 400 and bad.mimetype == "text/html"


def test_a_crafted_link_puts_no_notice_on_the_page(ops_client: FlaskClient, db: Store) -> None:
    dead_message(ops_client, db, "real", "boom")
    for link in (
        "/ops?kind=message&replayed=Your+account+is+closed&integration=acme&message_id=x",
        "/ops?kind=message&replayed=queued&integration=acme&message_id=Call+us+to+unlock",
        "/ops/messages/acme/real?kind=message&replayed=queued",
        "/ops?notice=AAAAAAAAAAAAAAAAAAAAAAAA",  # a name the server never gave
        "/ops?notice=../../etc",
    ):
        response = ops_client.get(link, headers=OPS)
        assert response.status_code == 200, link
        assert page(response).notice == "", link
        assert "Call us" not in response.get_data(as_text=True)


def test_a_notice_names_the_replayed_message_as_text(ops_client: FlaskClient, db: Store) -> None:
    dead_message(ops_client, db, SCRIPT_ID, "boom")

    response = submit(ops_client, replay_form(ops_client, "message", SCRIPT_ID))

    shown = ops_client.get(response.headers["Location"], headers=OPS)
    assert "<script>" not in shown.get_data(as_text=True)
    assert page(shown).notice == f"Message {SCRIPT_ID} of acme: replayed, queued for a worker."


def test_a_replay_form_works_once(ops_client: FlaskClient, db: Store, publisher: Publisher) -> None:
    dead_message(ops_client, db, "once", "boom")
    form = replay_form(ops_client, "message", "once")
    publisher.published.clear()
    assert submit(ops_client, form).status_code == 303
    settle(db, "once", "dead")  # dead again: a replay would be taken

    again = submit(ops_client, form)

    assert again.status_code == 403
    assert "already used" in page(again).text
    assert publisher.published == [("acme.order_ready", "once")]
    assert submit(ops_client, replay_form(ops_client, "message", "once")).status_code == 303


def test_two_pages_of_the_same_second_get_forms_of_their_own(
    ops_client: FlaskClient, db: Store
) -> None:
    dead_message(ops_client, db, "two-pages", "boom")

    first = replay_form(ops_client, "message", "two-pages")["token"]
    second = replay_form(ops_client, "message", "two-pages")["token"]

    assert first != second


# -- errors and protection ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("path", "says"),
    [
        ("/ops/nowhere/at/all", "no such page"),
        ("/ops/messages/acme", "no such page"),
        ("/ops/messages/nope/some-id", "No integration 'nope'"),
        ("/ops/messages/acme/never-received", "No message 'never-received' for 'acme'"),
    ],
)
def test_bad_paths_unknown_integrations_and_messages_are_404_pages(
    ops_client: FlaskClient, path: str, says: str
) -> None:
    response = ops_client.get(path, headers=OPS)

    assert response.status_code == 404
    assert says in page(response).text


def test_redis_down_is_a_503_page(db: Store, publisher: Publisher) -> None:
    server = fakeredis.FakeServer()
    down = Store.on(fakeredis.FakeRedis(server=server, decode_responses=True), Timing())
    client = app_with(down, publisher, ops_password=OPS_PASSWORD).test_client()
    server.connected = False
    settings = unit_settings(ops_password=OPS_PASSWORD)
    form = {
        "action": "/ops/replay",
        "kind": "message",
        "integration": "acme",
        "message_id": "m",
        "token": ops.form_token(settings, "message", "acme", "m"),
    }

    for response in (
        client.get("/ops", headers=OPS),
        client.get("/ops/messages/acme/m", headers=OPS),
        submit(client, form),
    ):
        assert response.status_code == 503
        assert response.mimetype == "text/html"
        assert response.headers["Retry-After"] == "5"
        assert "Redis is unavailable" in page(response).text


def test_the_page_cannot_be_framed_cached_or_run_scripts(ops_client: FlaskClient) -> None:
    for response in (ops_client.get("/ops", headers=OPS), ops_client.get("/ops")):
        assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
        assert "script-src" not in response.headers["Content-Security-Policy"]
        assert response.headers["X-Frame-Options"] == "DENY"
        assert response.headers["Cache-Control"] == "no-store"


def test_an_unexpected_error_is_a_500_page_that_tells_nothing_inside(
    ops_client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(_: object) -> None:
        raise RuntimeError(f"internal detail {OPS_PASSWORD}")

    monkeypatch.setattr(ops, "overview", broken)

    response = ops_client.get("/ops", headers=OPS)

    assert response.status_code == 500 and response.mimetype == "text/html"
    assert "it was logged" in page(response).text
    assert "internal detail" not in response.get_data(as_text=True)


# -- failed, dead and retrying messages -------------------------------------------------------
def test_the_failed_view_lists_by_state_and_store_a_page_at_a_time(
    ops_client: FlaskClient, db: Store
) -> None:
    headers = {"X-Hub-Token": ENDPOINT_KEY}
    for n, store in enumerate(("shop-a", "shop-a", "shop-a", "shop-b")):
        body = {
            "message_id": f"f-{n}",
            "message": "order:ready",
            "payload": {"order": {"number": f"N{n}"}},
        }
        ops_client.post("/acme/send_order", json=body, headers={**headers, "X-Hub-Store": store})
        settle(db, f"f-{n}", "failed" if n else "dead", error=f"refused {n}")

    first = page(ops_client.get("/ops/failed?store=shop-a&limit=2", headers=OPS))
    (older,) = [link for link in first.links if "cursor=" in link]
    second = page(ops_client.get(older, headers=OPS))
    only_dead = page(ops_client.get("/ops/failed?status=dead&integration=acme", headers=OPS))
    overview = page(ops_client.get("/ops", headers=OPS))

    assert [row[:4] for row in first.table("listed-message")] == [
        ["failed", "acme", "f-2", "shop-a"],
        ["failed", "acme", "f-1", "shop-a"],
    ]
    assert first.table("listed-message")[0][7] == "refused 2"
    assert [row[2] for row in second.table("listed-message")] == ["f-0"]
    assert not [link for link in second.links if "cursor=" in link]
    assert [row[2] for row in only_dead.table("listed-message")] == ["f-0"]
    assert only_dead.form_for("message", "f-0")["back"] == "failed"
    assert dict(overview.table("in-state")) == {"failed": "3", "dead": "1", "retrying": "0"}


@pytest.mark.parametrize(
    ("query", "status", "says"),
    [
        ("store=a:b", 400, "store has a ':'"),
        ("status=lost", 400, "status 'lost' is not one of"),
        ("limit=0", 400, "limit must be"),
        ("cursor=nope", 400, "cursor is not"),
        ("integration=nope", 404, "No integration 'nope'"),
    ],
)
def test_the_failed_view_names_a_bad_filter(
    ops_client: FlaskClient, query: str, status: int, says: str
) -> None:
    response = ops_client.get(f"/ops/failed?{query}", headers=OPS)

    assert response.status_code == status
    assert says in page(response).text


# -- the message tabs (/ops/messages) --------------------------------------------------------
def post_in(client: FlaskClient, message_id: str, store: str, number: str = "N-1") -> None:
    body = {
        "message_id": message_id,
        "message": "order:ready",
        "payload": {"order": {"number": number}},
    }
    response = client.post(
        "/acme/send_order", json=body, headers={"X-Hub-Token": ENDPOINT_KEY, "X-Hub-Store": store}
    )
    assert response.status_code == 200, response.json


def tab(client: FlaskClient, query: str) -> Page:
    response = client.get(f"/ops/messages?{query}", headers=OPS)
    assert response.status_code == 200, response.get_data(as_text=True)[-2000:]
    return page(response)


def listed_ids(shown: Page) -> list[str]:
    return [row[0] for row in shown.table("tab-message")]


def test_each_tab_lists_its_messages_with_a_count(
    ops_client: FlaskClient, db: Store, pushes: list[tuple[str, str, str]]
) -> None:
    for name in ("waiting", "working", "trying", "refused", "gone", "pushing", "unpushed"):
        post_in(ops_client, name, "shop-a")
    db.attempts.begin("acme", "working", "lease-working")
    db.attempts.begin("acme", "trying", "lease-trying")
    next_attempt = time.time() + 600
    assert db.attempts.mark_retrying("acme", "trying", "HTTP 503", next_attempt, "lease-trying")
    settle(db, "refused", "failed", error="unknown SKU")
    settle(db, "gone", "dead", error="HTTP 500")
    settle(db, "pushing", "succeeded", push=True)
    settle(db, "unpushed", "succeeded", push=True)
    outbox = Outbox(db.redis, db.timing)
    claim = outbox.claim("acme", "unpushed")
    assert claim is not None and outbox.take("acme", "unpushed", claim, 10) is not None
    assert outbox.failed("acme", "unpushed", claim, "hub answered HTTP 503", None) == "dead"

    shown = {
        name: tab(ops_client, f"tab={name}")
        for name in ("queued", "processing", "retrying", "failed", "dead", "pushes", "dead-pushes")
    }

    assert {name: listed_ids(p) for name, p in shown.items()} == {
        "queued": ["waiting"],
        "processing": ["working"],
        "retrying": ["trying"],
        "failed": ["refused"],
        "dead": ["gone"],
        "pushes": ["pushing"],
        "dead-pushes": ["unpushed"],
    }
    assert shown["failed"].by_id["tabs"] == (
        "Queued 1 Processing 1 Retrying 1 Failed 1 Dead 1 Pending pushes 1 Dead pushes 1"
    )
    (retrying,) = shown["retrying"].table("tab-message")
    assert retrying[:5] == ["trying", "acme", "shop-a", "order:ready", "retrying"]
    assert retrying[6] == ops.when(next_attempt) and retrying[8] == "HTTP 503"
    (dead_push,) = shown["dead-pushes"].table("tab-message")
    assert dead_push[4] == "dead" and dead_push[8] == "hub answered HTTP 503"
    assert shown["failed"].form_for("message", "refused")
    assert shown["dead-pushes"].form_for("delivery", "unpushed")
    assert "/ops/messages/acme/refused" in shown["failed"].links


def test_tabs_filter_by_integration_and_store(ops_client: FlaskClient, db: Store) -> None:
    for name, store in (("a-1", "shop-a"), ("b-1", "shop-b"), ("a-2", "shop-a")):
        post_in(ops_client, name, store)
        settle(db, name, "failed", error="refused")
    post_in(ops_client, "a-queued", "shop-a")
    post_in(ops_client, "b-queued", "shop-b")

    failed_a = tab(ops_client, "tab=failed&integration=acme&store=shop-a")
    queued_b = tab(ops_client, "tab=queued&store=shop-b")

    assert listed_ids(failed_a) == ["a-2", "a-1"]
    assert listed_ids(queued_b) == ["b-queued"]
    assert failed_a.by_id["tabs"].startswith("Queued 1 Processing 0 Retrying 0 Failed 2 ")
    stores = [f for f in failed_a.forms if f.get("tab") == "failed" and "q" in f]
    assert stores, failed_a.forms  # the filter form keeps the tab


def test_search_finds_a_message_by_id_or_by_shipment_number(
    ops_client: FlaskClient, db: Store
) -> None:
    post_in(ops_client, "first", "shop-a", number="R100")
    post_in(ops_client, "second", "shop-b", number="R100")
    post_in(ops_client, "other", "shop-a", number="R200")
    settle(db, "second", "dead", error="HTTP 500")

    by_number = tab(ops_client, "q=R100")
    by_id = tab(ops_client, "q=other")
    in_store = tab(ops_client, "q=R100&store=shop-a")
    nothing = tab(ops_client, "q=R999")

    assert listed_ids(by_number) == ["second", "first"]  # newest first
    assert [row[4] for row in by_number.table("tab-message")] == ["dead", "queued"]
    assert by_number.form_for("message", "second")  # a dead one found is replayable from here
    assert listed_ids(by_id) == ["other"]
    assert listed_ids(in_store) == ["first"]
    assert listed_ids(nothing) == [] and "None." in nothing.text


def test_a_number_is_indexed_bounded_and_expiring(ops_client: FlaskClient, db: Store) -> None:
    post_in(ops_client, "numbered", "shop-a", number="R300")

    key = "shiphub:number:R300"
    assert db.redis.zrange(key, 0, -1) == ["acme:numbered"]
    assert 0 < db.redis.ttl(key) <= db.timing.record_ttl_seconds + 24 * 3600


def test_pages_are_newest_first_and_follow_each_other_without_gaps(
    ops_client: FlaskClient, db: Store
) -> None:
    for n in range(5):
        post_in(ops_client, f"p-{n}", "shop-a")
        settle(db, f"p-{n}", "failed", error="refused")
    for n in range(5):
        post_in(ops_client, f"q-{n}", "shop-a")

    seen: dict[str, list[list[str]]] = {"failed": [], "queued": []}
    for name in seen:
        url: str | None = f"/ops/messages?tab={name}&limit=2"
        while url:
            shown = page(ops_client.get(url, headers=OPS))
            seen[name].append(listed_ids(shown))
            url = next((link for link in shown.links if "cursor=" in link), None)

    assert seen["failed"] == [["p-4", "p-3"], ["p-2", "p-1"], ["p-0"]]
    assert [i for ids in seen["queued"] for i in ids] == [f"q-{n}" for n in (4, 3, 2, 1, 0)]


@pytest.mark.parametrize(
    ("query", "says"),
    [
        ("tab=lost", "tab 'lost' is not one of queued, processing"),
        ("integration=nope", "integration 'nope' is not one of"),
        ("store=a:b", "store has a ':'"),
        ("limit=0", "limit must be"),
        ("limit=x", "limit must be"),
        ("cursor=nope", "cursor is not"),
        ("q=" + "x" * 201, "q is longer than 200 characters"),
    ],
)
def test_a_bad_tab_query_is_a_400_page_naming_it(
    ops_client: FlaskClient, query: str, says: str
) -> None:
    response = ops_client.get(f"/ops/messages?{query}", headers=OPS)

    assert response.status_code == 400
    assert says in page(response).text


def bulk_form(client: FlaskClient, query: str) -> dict[str, str]:
    shown = tab(client, query)
    return next(f for f in shown.forms if f["action"] == "/ops/replay-list")


def test_bulk_replay_replays_the_filtered_list_once(
    ops_client: FlaskClient, db: Store, publisher: Publisher
) -> None:
    for name, store in (("d-1", "shop-a"), ("d-2", "shop-a"), ("d-3", "shop-b")):
        post_in(ops_client, name, store)
        settle(db, name, "dead", error="HTTP 500")
    form = bulk_form(ops_client, "tab=dead&store=shop-a")
    publisher.published.clear()

    response = submit(ops_client, form)

    assert response.status_code == 303
    target = urlsplit(response.headers["Location"])
    assert target.path == "/ops/messages"
    assert parse_qs(target.query)["store"] == ["shop-a"]
    assert sorted(m for _, m in publisher.published) == ["d-1", "d-2"]
    shown = page(ops_client.get(response.headers["Location"], headers=OPS))
    assert shown.notice == (
        "Replay of the dead list: 2 messages replayed (queued for a worker), 0 skipped."
    )
    assert listed_ids(shown) == []
    assert db.messages.get("acme", "d-3").status == "dead"  # type: ignore[union-attr]
    again = submit(ops_client, form)
    assert again.status_code == 403 and "already used" in page(again).text


def test_bulk_replay_leaves_what_came_after_the_page_and_says_what_it_skipped(
    ops_client: FlaskClient, db: Store, publisher: Publisher
) -> None:
    post_in(ops_client, "before", "shop-a")
    settle(db, "before", "failed", error="refused")
    settings = unit_settings(ops_password=OPS_PASSWORD)
    form = {
        "action": "/ops/replay-list",
        "tab": "failed",
        "integration": "",
        "store": "",
        "token": ops.form_token(settings, "list:failed", "", "", issued=int(time.time()) - 5),
    }
    publisher.published.clear()

    response = submit(ops_client, form)  # a page made before "before" failed

    shown = page(ops_client.get(response.headers["Location"], headers=OPS))
    assert publisher.published == []
    assert shown.notice == (
        "Replay of the failed list: 0 messages replayed (queued for a worker), 0 skipped."
    )


def test_bulk_replay_says_what_it_skipped_and_why(
    ops_client: FlaskClient, db: Store, publisher: Publisher
) -> None:
    post_in(ops_client, "runs", "shop-a")
    settle(db, "runs", "dead", error="HTTP 500")
    fields = {"message": "order:withdrawn", "store": "shop-a"}  # a type acme no longer takes
    assert accept(db, "acme", "withdrawn", "fp", fields) == "created"
    settle(db, "withdrawn", "dead", error="HTTP 500")
    form = bulk_form(ops_client, "tab=dead")
    publisher.published.clear()

    response = submit(ops_client, form)

    shown = page(ops_client.get(response.headers["Location"], headers=OPS))
    assert shown.notice == (
        "Replay of the dead list: 1 message replayed (queued for a worker), 1 skipped: "
        "1 their integration takes no such message any more."
    )
    assert publisher.published == [("acme.order_ready", "runs")]
    assert db.messages.get("acme", "withdrawn").status == "dead"  # type: ignore[union-attr]


def test_bulk_replay_of_dead_pushes_pushes_them_again(
    ops_client: FlaskClient, db: Store, pushes: list[tuple[str, str, str]]
) -> None:
    dead_delivery(ops_client, db, "unpushed", "hub answered HTTP 503")
    form = bulk_form(ops_client, "tab=dead-pushes")

    response = submit(ops_client, form)

    shown = page(ops_client.get(response.headers["Location"], headers=OPS))
    assert shown.notice == (
        "Replay of the dead pushes list: 1 delivery replayed (pushed to the hub shortly), "
        "0 skipped."
    )
    assert [task[:2] for task in pushes] == [("acme", "unpushed")]


@pytest.mark.parametrize(
    ("change", "headers", "says"),
    [
        ({}, {"Origin": "https://evil.example"}, "another site"),
        ({}, {"Referer": "https://evil.example/page"}, "another site"),
        ({"store": "shop-b"}, {}, "stale or not ours"),  # another filter than the token's
        ({"tab": "failed"}, {}, "stale or not ours"),
        ({"token": "1.2.3"}, {}, "stale or not ours"),
        ({"tab": "queued"}, {}, "can be replayed"),
    ],
)
def test_bulk_replay_is_refused_from_another_site_or_with_another_filter(
    ops_client: FlaskClient,
    db: Store,
    publisher: Publisher,
    change: dict[str, str],
    headers: dict[str, str],
    says: str,
) -> None:
    post_in(ops_client, "kept", "shop-a")
    settle(db, "kept", "dead", error="HTTP 500")
    form = {**bulk_form(ops_client, "tab=dead&store=shop-a"), **change}
    publisher.published.clear()

    response = submit(ops_client, form, headers)

    assert response.status_code in (400, 403)
    assert says in page(response).text
    assert publisher.published == []
    assert db.messages.get("acme", "kept").status == "dead"  # type: ignore[union-attr]
