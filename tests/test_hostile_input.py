"""Input that should never reach a handler: every case is a 4xx in the usual error shape that
names the problem; never a 500, never accepted, nothing recorded or published.

Flask test client over fakeredis; the same cases through real gunicorn are in
tests/pipeline/test_hostile_input.py."""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import random
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask.testing import FlaskClient
from gunicorn.http.errors import InvalidChunkSize

from endpoint.app import create_app
from endpoint.body import MAX_DEPTH
from tests.conftest import Publisher, auth, unit_settings
from worker.basics.errors import ConfigurationError
from worker.basics.settings import settings
from worker.hub import messages as hub
from worker.store.bundle import Store


@pytest.fixture
def roomy(db: Store, publisher: Publisher) -> Iterator[FlaskClient]:
    """The receiver with the default body limit (1 MiB), for bodies over the usual 4 KiB."""
    app = create_app(unit_settings(max_body_bytes=1024 * 1024), db, publisher)
    with app.test_client() as test_client:
        yield test_client


def order_text(
    message_id: str = "m-1", quantity: str = "1", message: str = "order:ready", extra: str = ""
) -> str:
    """A hub message as text, so that what json.dumps cannot write (1e400, NaN, a lone
    surrogate escape, any nesting) can be put into it."""
    return (
        f'{{"message_id": {json.dumps(message_id)}, "message": {json.dumps(message)}, '
        f'"payload": {{{extra}"order": {{"number": "H1", "quantity": {quantity}}}}}}}'
    )


def post(client: FlaskClient, body: str | bytes, **headers: str) -> Any:
    return client.post(
        "/acme/send_order", data=body, headers=auth(**headers), content_type="application/json"
    )


def refused(response: Any, status: int) -> str:
    """Assert the usual error shape with ``status``; return the description to check."""
    assert response.status_code == status, response.get_data(as_text=True)
    notifications = response.json["notifications"]
    assert len(notifications) == 1
    assert notifications[0]["level"] == "error"
    assert notifications[0]["subject"]
    return notifications[0]["description"]


def nothing_taken(publisher: Publisher, db: Store) -> None:
    """Nothing recorded, nothing queued: neither pushed with a record (the intake's one step,
    onto the integration's broker list) nor published through Celery."""
    assert publisher.published == []
    assert db.redis.keys("shiphub:msg:*") == []
    assert db.redis.llen("acme") == 0


def nested(depth: int, kind: str = "list") -> str:
    """``depth`` levels of arrays or objects (the innermost empty)."""
    if kind == "list":
        return "[" * depth + "]" * depth
    return '{"a": ' * (depth - 1) + "{}" + "}" * (depth - 1)


# -- 1. numbers too long to convert ------------------------------------------------------------
@pytest.mark.parametrize("digits", [101, 4301, 5000])
def test_an_integer_too_long_is_406_naming_it(
    roomy: FlaskClient, publisher: Publisher, db: Store, digits: int
) -> None:
    response = post(roomy, order_text(quantity="9" * digits))

    assert "too long" in refused(response, 406)
    nothing_taken(publisher, db)


def test_a_float_too_long_is_406_naming_it(
    client: FlaskClient, publisher: Publisher, db: Store
) -> None:
    response = post(client, order_text(extra=f'"weight": 0.{"1" * 300}, '))

    assert "too long" in refused(response, 406)
    nothing_taken(publisher, db)


def test_a_number_as_long_as_a_64_bit_id_is_taken(client: FlaskClient) -> None:
    response = post(client, order_text(extra='"id": -18446744073709551615, "w": 1.5e300, '))

    assert response.status_code == 200


# -- 2. nesting --------------------------------------------------------------------------------
@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 250, 300, 900, 999, 5000])
@pytest.mark.parametrize("kind", ["list", "object"])
def test_nesting_deeper_than_the_limit_is_406_before_anything_else(
    roomy: FlaskClient, publisher: Publisher, db: Store, depth: int, kind: str
) -> None:
    # Counted from the body itself: the nested value sits two levels down (body, payload).
    response = post(roomy, order_text(extra=f'"deep": {nested(depth - 2, kind)}, '))

    assert "nested too deeply" in refused(response, 406)
    nothing_taken(publisher, db)


@pytest.mark.parametrize("kind", ["list", "object"])
def test_nesting_at_the_limit_is_taken(client: FlaskClient, kind: str) -> None:
    response = post(client, order_text(extra=f'"deep": {nested(MAX_DEPTH - 2, kind)}, '))

    assert response.status_code == 200


def test_a_deep_body_that_is_not_an_object_is_406_nested_too_deeply(client: FlaskClient) -> None:
    assert "nested too deeply" in refused(post(client, nested(MAX_DEPTH + 1)), 406)


# -- 3. a body that cannot be read (through real gunicorn: tests/pipeline) --------------------
class MalformedChunks(io.BytesIO):
    """A de-chunking server's input stream that meets a chunk size line ``zz``."""

    def read(self, size: int | None = -1) -> bytes:
        raise InvalidChunkSize(b"zz")

    def readinto(self, buffer: Any) -> int:
        raise InvalidChunkSize(b"zz")


def test_a_malformed_chunked_body_is_400_naming_it(
    client: FlaskClient, publisher: Publisher, db: Store
) -> None:
    response = client.post(
        "/acme/send_order",
        input_stream=MalformedChunks(),
        headers={**auth(), "Transfer-Encoding": "chunked", "Content-Type": "application/json"},
        environ_overrides={"wsgi.input_terminated": True},  # as gunicorn sets it
    )

    assert refused(response, 400) == "The chunked body is malformed: Invalid chunk size: b'zz'"
    nothing_taken(publisher, db)


# -- 4. numbers that are not finite ------------------------------------------------------------
@pytest.mark.parametrize("number", ["1e400", "-1e400", "NaN", "Infinity", "-Infinity"])
@pytest.mark.parametrize("where", ["quantity", "extra"])
def test_a_number_that_is_not_finite_is_406_naming_it(
    client: FlaskClient, publisher: Publisher, db: Store, number: str, where: str
) -> None:
    body = (
        order_text(quantity=number)
        if where == "quantity"
        else order_text(extra=f'"weight": [{number}], ')
    )

    description = refused(post(client, body), 406)

    assert "not finite" in description
    assert number in description
    nothing_taken(publisher, db)


# -- lone surrogates: not Unicode, so they cannot be stored or hashed --------------------------
@pytest.mark.parametrize(
    "extra", ['"note": "\\ud800", ', '"\\udc00": 1, ', '"notes": ["ok", {"x": "a\\udfffb"}], ']
)
def test_a_lone_surrogate_is_406_naming_it(
    client: FlaskClient, publisher: Publisher, db: Store, extra: str
) -> None:
    assert "surrogate" in refused(post(client, order_text(extra=extra)), 406)
    nothing_taken(publisher, db)


def test_a_surrogate_pair_is_ordinary_text(client: FlaskClient) -> None:
    assert post(client, order_text(extra='"note": "\\ud83d\\udce6", ')).status_code == 200


# -- 5. message_id, message and the store ------------------------------------------------------
UNFIT_TEXT = [
    "a\nb",
    "a\rb",
    "\x00",
    "a\tb",
    "red\x1b[31m",
    "del\x7f",
    "line\u2028sep",
    "rtl\u202eoverride",
    "nbsp\u00a0",
    " leading",
    "trailing ",
    " ",
    "x" * 201,
]


@pytest.mark.parametrize("message_id", UNFIT_TEXT)
def test_a_message_id_that_is_not_printable_text_is_406_naming_the_field(
    client: FlaskClient, publisher: Publisher, db: Store, message_id: str
) -> None:
    response = post(client, order_text(message_id=message_id))

    assert refused(response, 406).startswith("message_id:")
    assert "message_id" not in response.json  # not echoed: it is not an id we can name
    nothing_taken(publisher, db)


@pytest.mark.parametrize("message", UNFIT_TEXT)
def test_a_message_that_is_not_printable_text_is_406_naming_the_field(
    client: FlaskClient, publisher: Publisher, db: Store, message: str
) -> None:
    response = post(client, order_text(message=message))

    assert refused(response, 406).startswith("message:")
    assert response.json["message_id"] == "m-1"
    nothing_taken(publisher, db)


@pytest.mark.parametrize("message_id", ["/lead", "trail/", "x//y", "./x", "x/../y", "x/.", ".."])
def test_a_message_id_a_url_cannot_carry_is_406(
    client: FlaskClient, publisher: Publisher, db: Store, message_id: str
) -> None:
    """Such an id is read back under another id's route: werkzeug redirects //x to /x, and
    clients and proxies normalise dot segments and merge slashes."""
    response = post(client, order_text(message_id=message_id))

    assert refused(response, 406).startswith("message_id:")
    nothing_taken(publisher, db)


@pytest.mark.parametrize(
    "message_id", ["51af1dc5fe53543f1200f519", "a:b", "x/y", "a.b", "..x", "é 漢 📦", "x" * 200]
)
def test_printable_ids_are_taken(client: FlaskClient, message_id: str) -> None:
    assert post(client, order_text(message_id=message_id)).status_code == 200


@pytest.mark.parametrize(
    "store", ["a:b", ":", "s\x01", "del\x7f", "nbsp\u00a0", "s" * 101, "caf\u00e9", "a b"]
)
def test_a_store_header_that_cannot_be_a_key_part_is_400_naming_it(
    client: FlaskClient, publisher: Publisher, db: Store, store: str
) -> None:
    response = post(client, order_text(), **{"X-Hub-Store": store})

    assert "X-Hub-Store" in refused(response, 400)
    nothing_taken(publisher, db)


@pytest.mark.parametrize("store", ["店舗-1", "caf\u00e9", "a:b", "a b"])
def test_a_webhook_store_outside_the_safe_set_is_400_naming_store(
    client: FlaskClient,
    publisher: Publisher,
    db: Store,
    monkeypatch: pytest.MonkeyPatch,
    store: str,
) -> None:
    """``?store=`` of a webhook URL: a store no push could carry (outside Latin-1) used to be
    taken, and every push of its answers then raised; it is refused before anything is kept."""
    secret = "hostile-input-webhook-secret"
    monkeypatch.setenv("SHIPPING_ORDERS_WEBHOOK_SECRET", secret)
    event = json.dumps(
        {"orderExternalId": "S1", "status": "ORDER_DISPATCHED", "lastUpdatedAt": 1}
    ).encode()
    signature = hmac.new(secret.encode(), event, hashlib.sha256).hexdigest()

    response = client.post(
        "/webhooks/shipping_orders",
        query_string={"store": store},
        data=event,
        headers={"X-DS-Signature": signature},
        content_type="application/json",
    )

    description = refused(response, 400)
    assert description.startswith("store "), description
    nothing_taken(publisher, db)


def test_a_hub_store_setting_that_cannot_be_a_key_part_stops_the_process(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("HUB_STORE", "shop:eu")
    settings.cache_clear()
    try:
        with pytest.raises(ConfigurationError) as stopped:
            settings()
    finally:
        settings.cache_clear()

    assert stopped.value.code == ConfigurationError.EXIT_STATUS
    assert "HUB_STORE" in str(stopped.value)
    assert "HUB_STORE" in capsys.readouterr().err


@pytest.mark.parametrize(
    "store", ["default", "store-1", "Acme_Store.EU", "1", "s" * 100, "shop-42.eu_west"]
)
def test_store_problem_takes_names_of_the_safe_set(store: str) -> None:
    assert hub.store_problem(store) is None


@pytest.mark.parametrize(
    ("store", "problem"),
    [
        ("", "empty"),
        ("a:b", "':'"),
        (" s", "' '"),
        ("s\n", "U+000A"),
        ("s" * 101, "100"),
        # Outside Latin-1: no push could carry it in its X-Hub-Store header.
        ("店舗-1", "U+5E97"),
        ("café", "U+00E9"),
        ("Acme Store (EU)", "' '"),
        ("-shop", "starts with a letter or a digit"),
        (".", "starts with a letter or a digit"),
    ],
)
def test_store_problem_names_the_problem(store: str, problem: str) -> None:
    found = hub.store_problem(store)

    assert found is not None and problem in found


# -- 6. one route, one record ------------------------------------------------------------------
def test_each_message_route_reads_exactly_its_own_record(client: FlaskClient, db: Store) -> None:
    """Ids that share prefixes around ':' and '/' each read back their own record, and the
    replay route of one is never another's status route."""
    ids = ["a", "a:b", "a:b:c", "b", "x", "x/y", "x/y/z", "y", "x/replay", "x:y"]
    for n, message_id in enumerate(ids):
        response = post(client, order_text(message_id=message_id, quantity=str(n + 1)))
        assert response.status_code == 200
    for message_id in ids:
        for path in (message_id, message_id.replace("/", "%2F").replace(":", "%3A")):
            response = client.get(f"/messages/acme/{path}", headers=auth())
            assert response.status_code == 200, path
            assert response.json["integration"] == "acme"
            assert response.json["message_id"] == message_id
    assert db.messages.get("acme", "x/replay") is not None
    assert client.post("/messages/acme/x/replay", headers=auth()).json["message_id"] == "x"
    assert client.get("/messages/acme/nope:a", headers=auth()).status_code == 404
    assert client.get("/messages/acme/a:", headers=auth()).status_code == 404


def test_an_integration_with_a_colon_reads_no_record(client: FlaskClient) -> None:
    post(client, order_text(message_id="a:b"))

    assert client.get("/messages/acme:a/b", headers=auth()).status_code == 404


# -- fuzz --------------------------------------------------------------------------------------
FUZZ_SEED = 20240611
FUZZ_CASES = 1500
TOKENS = ["NaN", "Infinity", "-Infinity", "1e400", "-0", "1" * 120, "0.5e-400", "true", "null"]


def fuzz_text(rng: random.Random) -> str:
    """Mostly plain text, sometimes a control, a separator, a surrogate escape or a ':'."""
    pool = "ab:/ .-_é漢📦\n\r\t\x00\x1b\x7f\u2028\u202e\u00a0"
    text = "".join(rng.choice(pool) for _ in range(rng.randint(0, 12)))
    escaped = json.dumps(text)
    if rng.random() < 0.1:
        escaped = escaped[:-1] + rng.choice(["\\ud800", "\\udfff", "\\ud83d\\udce6"]) + '"'
    return escaped


def fuzz_value(rng: random.Random, depth: int = 0) -> str:
    """A JSON-ish value as text: valid most of the time, and anything json.dumps cannot write."""
    roll = rng.random()
    if depth > rng.choice([3, 8, 70]) or roll < 0.35:
        return rng.choice(
            [
                fuzz_text(rng),
                str(rng.randint(-(10**30), 10**30)),
                repr(rng.uniform(-1e308, 1e308)),
                rng.choice(TOKENS),
                nested(rng.choice([10, 70, 300, 600]), rng.choice(["list", "object"])),
            ]
        )
    if roll < 0.65:
        items = [fuzz_value(rng, depth + 1) for _ in range(rng.randint(0, 4))]
        return "[" + ", ".join(items) + "]"
    pairs = [f"{fuzz_text(rng)}: {fuzz_value(rng, depth + 1)}" for _ in range(rng.randint(0, 4))]
    return "{" + ", ".join(pairs) + "}"


def fuzz_message(rng: random.Random) -> str:
    """A hub message whose fields are anything, often around a payload the service takes, so
    that what is odd in it gets past the schema to intake."""
    extra = "".join(f"{fuzz_text(rng)}: {fuzz_value(rng)}, " for _ in range(rng.randint(0, 3)))
    payload = rng.choice(
        [
            fuzz_value(rng),
            '{"order": {"number": "H1", "quantity": ' + fuzz_value(rng) + "}}",
            "{" + extra + '"order": {"number": "H1", "quantity": 1}}',
        ]
    )
    fields = {
        "message_id": fuzz_text(rng) if rng.random() < 0.3 else json.dumps(f"f-{rng.random()}"),
        "message": fuzz_text(rng) if rng.random() < 0.2 else '"order:ready"',
        "payload": payload,
    }
    kept = [(k, v) for k, v in fields.items() if rng.random() < 0.97]
    return "{" + ", ".join(f'"{k}": {v}' for k, v in kept) + "}"


def fuzz_bytes(rng: random.Random) -> bytes:
    """Random bytes, or a valid message with bytes flipped, cut or spliced in."""
    if rng.random() < 0.3:
        return rng.randbytes(rng.randint(0, 200))
    data = bytearray(order_text(message_id=f"b-{rng.random()}").encode())
    for _ in range(rng.randint(1, 4)):
        at = rng.randrange(len(data) + 1)
        action = rng.choice(["flip", "cut", "splice"])
        if action == "flip" and at < len(data):
            data[at] = rng.randrange(256)
        elif action == "cut":
            del data[at : at + rng.randint(1, 8)]
        else:
            data[at:at] = rng.choice([b"[", b"{", b'"', b"\\u", b"\xff", b"NaN", b"9" * 50])
    return bytes(data)


def fuzz_headers(rng: random.Random) -> dict[str, str]:
    """Sometimes an odd store, sometimes an odd wait (never one that would really wait)."""
    headers: dict[str, str] = {}
    if rng.random() < 0.2:
        pool = "ab: \x01\x7f\t\u00a0é"
        headers["X-Hub-Store"] = "".join(rng.choice(pool) for _ in range(rng.randint(1, 120)))
    if rng.random() < 0.1:
        headers["X-Hub-Wait"] = rng.choice(["0", "nan", "inf", "-1", "1e400", "0x10", "", "1e-9"])
    return headers


def fuzz_cases(seed: int, count: int) -> Iterator[tuple[bytes, dict[str, str]]]:
    rng = random.Random(seed)
    makers: list[Callable[[random.Random], str | bytes]] = [fuzz_message, fuzz_bytes, fuzz_value]
    for _ in range(count):
        body = rng.choice(makers)(rng)
        raw = body.encode("utf-8", "surrogatepass") if isinstance(body, str) else body
        yield raw, fuzz_headers(rng)


def fuzz(client: FlaskClient, seed: int, count: int) -> dict[int, int]:
    """Post every case; fail on the first 5xx or reply out of shape. Returns counts by status."""
    seen: dict[int, int] = {}
    for body, headers in fuzz_cases(seed, count):
        response = post(client, body, **headers)
        assert response.status_code < 500, (body, headers, response.get_data(as_text=True))
        reply = response.json
        assert isinstance(reply, dict) and reply["notifications"], (body, reply)
        if response.status_code >= 400:
            assert reply["notifications"][0]["level"] == "error", (body, reply)
        seen[response.status_code] = seen.get(response.status_code, 0) + 1
    return seen


def test_fuzzed_bodies_never_answer_500(client: FlaskClient) -> None:
    seen = fuzz(client, FUZZ_SEED, FUZZ_CASES)

    assert set(seen) <= {200, 202, 400, 406, 409, 413, 422}
    assert seen.get(200) and seen.get(406) and seen.get(422)  # the fuzz reaches every stage
