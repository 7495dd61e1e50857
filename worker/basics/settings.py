"""Service configuration: environment variables, typed and checked once at start-up.

Each field's ``description`` is its line in ``docs/configuration.md``, which is generated from
them (``python -m shiphub_cli.configuration_docs``). Provider credentials live in each
integration's own settings class (``DOTCOM_API_KEY``...), next to its code.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import SettingsConfigDict
from redis.connection import parse_url

from worker.basics.backoff import RetryPolicy
from worker.basics.errors import refuse_to_start
from worker.basics.sealing import key_problem
from worker.basics.secret_settings import SecretsChecked
from worker.hub.messages import store_problem
from worker.hub.standard_webhooks import secrets_problem, signing_keys


class Settings(SecretsChecked):
    # Every secret (ENDPOINT_KEY, HUB_ACCESS_TOKEN, OPS_PASSWORD...) must be one: not blank, no
    # whitespace around it, no control character (``SecretsChecked``).
    # An empty variable is an unset one (TASK_MAX_ATTEMPTS= means no attempt limit).
    model_config = SettingsConfigDict(extra="ignore", env_ignore_empty=True)

    port: int = Field(
        8000,
        description="the receiver's port (the Procfile's `web` line binds `${PORT:-8000}`)",
    )
    # redis://[:password@]host:port/db, or Redis Sentinel: sentinel://host:port;sentinel://...
    # (each sentinel a part; password and db may be on any part) with REDIS_SENTINEL_MASTER.
    redis_url: str = Field(
        "redis://127.0.0.1:6379/0",
        description=(
            "records, outbox, cursors and the Celery broker: **one and the same Redis**, which "
            "the receiver relies on (a new message's record and its broker message are written by "
            "one Lua script): `redis://[:password@]host:port/db`, or Redis Sentinel: "
            "`sentinel://[:password@]host:port[/db];sentinel://host:port;...` (one part per "
            "sentinel; the password is the Redis nodes' one, and the password and the database "
            "may be written on any part, the same wherever given). Run Redis with AOF on and "
            "`maxmemory-policy noeviction`. `bin/run`: its own Redis on port 6390"
        ),
    )
    redis_sentinel_master: str = Field(
        "mymaster",
        description=(
            "with a `sentinel://` `REDIS_URL`: the name the sentinels monitor the master under "
            "(`sentinel monitor <name> ...`)"
        ),
    )
    # Answer a message 200 only once this many replicas acknowledged its record (Redis WAIT),
    # waiting at most REDIS_REPLICAS_TIMEOUT_SECONDS (under the records client's 5 s socket
    # timeout); 0: do not wait for replicas.
    redis_min_replicas_acked: int = Field(
        0,
        ge=0,
        description=(
            "answer a message 200 only once this many replicas have its record (Redis `WAIT`); "
            "otherwise 503. Workers push an answer only once this many replicas have it "
            "(docs/deployment.md, the replica setting). 0: do not wait for replicas"
        ),
    )
    redis_replicas_timeout_seconds: float = Field(
        1.0,
        gt=0,
        le=4,
        description=(
            "how long the receiver waits for those replicas before it answers 503 (at most 4)"
        ),
    )
    # Redis connections per process for records (the broker has its own pool): more requests or
    # threads than this wait their turn rather than each opening a connection.
    redis_max_connections: int = Field(
        50,
        ge=2,
        description=(
            "Redis connections per process for records (the broker has its own pool); more "
            "concurrent requests or threads wait their turn (up to 5 s)"
        ),
    )

    # The hub's token for requests to us; required unless insecure development mode is on.
    endpoint_key: SecretStr | None = Field(
        None,
        description=(
            "the hub's token (`X-Hub-Token`, or the older `X-Augury-Token`). **Required**: "
            "without it nothing starts, unless `SHIPHUB_INSECURE_DEV`"
        ),
    )
    shiphub_insecure_dev: bool = Field(
        False,
        description=(
            "let requests in without a token when `ENDPOINT_KEY` is unset, and parameters be "
            "stored unsealed when `SHIPHUB_SECRET_KEY` is: local development only (`bin/run` sets "
            "it when you give no key)"
        ),
    )
    # Seals message parameters (credentials) while they are stored (worker/basics/sealing.py);
    # required unless insecure development mode is on.
    shiphub_secret_key: SecretStr | None = Field(
        None,
        description=(
            "Fernet key(s), comma separated, sealing the parameters (credentials) a message "
            "carries while it is stored; the first seals, all open (rotate by putting the new key "
            "first, and drop the old one `RECORD_TTL_SECONDS` later). **Required** unless "
            "`SHIPHUB_INSECURE_DEV`; `bin/run` makes one in `.run/secret.key`. Make one with "
            '`.venv/bin/python -c "from cryptography.fernet import Fernet; '
            'print(Fernet.generate_key().decode())"`'
        ),
    )

    # Waiting for the worker (X-Hub-Wait overrides per request; the classic hub waited <= 180 s).
    hub_wait_seconds: float = Field(
        0.0,
        ge=0,
        le=180,
        description=(
            "how long the receiver waits for the answer when the request has no `X-Hub-Wait` (at "
            "most 180)"
        ),
    )
    # At most this many requests wait at once per receiver process; more get 202 at once.
    hub_wait_max_requests: int = Field(
        1000,
        ge=1,
        description=(
            "requests that may wait at once per receiver process; more are answered 202 at once"
        ),
    )
    max_body_bytes: int = Field(
        1024 * 1024,
        gt=0,
        description="larger bodies (chunked too) get 413",
    )
    # A provider's webhook is read before its signature is checked: at most this much of it
    # (its events are a few KB), so that unverified senders hold little memory.
    webhook_max_body_bytes: int = Field(
        64 * 1024,
        gt=0,
        description=(
            "a provider's webhook is read at most this far before its signature is checked: "
            "larger bodies get 413 as soon as they pass it (providers' events are a few KB; an "
            "unverified sender holds no more memory than this)"
        ),
    )
    # Messages arriving at one receiver process at the same time share a round trip to Redis,
    # at most this many per round trip (worker/pipeline/intake.py, ``Together``); 1: each its own.
    intake_round_trip_messages: int = Field(
        64,
        ge=1,
        le=1000,
        description=(
            "messages arriving at one receiver process at the same time share a round trip to "
            "Redis, at most this many per round trip (1: each message its own)"
        ),
    )

    # Answers pushed back to the hub. Failed pushes are retried from Redis for a time budget
    # (HUB_PUSH_RETRY_FOR_SECONDS), jittered exponential back-off from 1 s up to the cap.
    hub_push_url: str | None = Field(
        None,
        description=(
            "where finished answers are pushed (an http(s) URL); unset: answers are kept and "
            "returned to waiting requests and `GET /messages/...` only"
        ),
    )
    hub_store: str = Field(
        "default",
        description=(
            "the store of a message posted without an `X-Hub-Store` header (cursors, handler "
            "memory and pushes are per store); a store name: ASCII letters, digits, `-`, `_`, `.`"
        ),
    )
    hub_access_token: SecretStr | None = Field(
        None,
        description=(
            "token for pushes (required with `HUB_PUSH_URL`); also the HMAC key of "
            "`X-Hub-Signature`"
        ),
    )
    hub_sign_access_token: bool = Field(  # X-Hub-Access-Token as HMAC-SHA1, like the classic hub
        False,
        description=(
            "send `X-Hub-Access-Token` as the classic hub's HMAC-SHA1 of body + timestamp instead "
            "of the token itself"
        ),
    )
    # Standard Webhooks (worker/hub/standard_webhooks.py): each push also carries webhook-id,
    # webhook-timestamp and, with this set, webhook-signature (one v1 entry per secret).
    hub_push_secret: SecretStr | None = Field(
        None,
        description=(
            "the Standard Webhooks secret(s) pushes are signed with: `whsec_<base64 of a key of "
            "24 bytes or more>`; several, space separated, during a rotation (each signs: the "
            "hub verifies with either). Unset: pushes carry `webhook-id` and `webhook-timestamp` "
            "but no `webhook-signature` (the `X-Hub-*` signature stays either way). Make one with "
            '`.venv/bin/python -c "import base64, os; '
            "print('whsec_' + base64.b64encode(os.urandom(32)).decode())\"`"
        ),
    )
    hub_push_timeout_seconds: float = Field(
        10.0,
        gt=0,
        description=(
            "read timeout of one push; after pushes that timed out, the next gets twice the time "
            "(up to 8 times this)"
        ),
    )
    # An answer bigger than this goes out as several pushes, in order (our own receiver takes
    # at most 1 MiB; a hub's limit is likely similar).
    hub_push_max_bytes: int = Field(
        512 * 1024,
        ge=4096,
        description="an answer bigger than this is pushed in parts, in order",
    )
    hub_push_retry_for_seconds: float = Field(
        24 * 3600.0,
        gt=0,
        description=(
            "how long failed pushes of one answer are retried before the delivery is dead "
            "(listed, replayable)"
        ),
    )
    hub_push_max_attempts: int | None = Field(
        None,
        ge=1,
        description="if set, also make a delivery dead after this many pushes",
    )
    hub_push_retry_max_seconds: float = Field(
        300.0,
        gt=0,
        description=(
            "cap of the push back-off (1, 2, 4 ... s, each jittered to 50-100 %), also the cap on "
            "the hub's `Retry-After`"
        ),
    )

    # Handling messages: a transient failure is retried from Redis for a time budget
    # (RETRY_FOR_SECONDS), jittered exponential back-off from RETRY_BASE_SECONDS up to
    # RETRY_MAX_SECONDS; attempts only limit when TASK_MAX_ATTEMPTS is set.
    retry_for_seconds: float = Field(
        6 * 3600.0,
        gt=0,
        description=(
            "how long a message is retried after transient failures before it is dead; the last "
            "retry is pulled in to the end of this budget"
        ),
    )
    task_max_attempts: int | None = Field(
        None,
        ge=1,
        description=(
            "if set, also make a message dead after this many attempts (attempts are always "
            "counted and shown)"
        ),
    )
    retry_base_seconds: float = Field(
        2.0,
        gt=0,
        description="first back-off; doubles per attempt, jittered to 50-100 %",
    )
    retry_max_seconds: float = Field(
        300.0,
        gt=0,
        description="back-off cap, also the cap on a provider's `Retry-After`",
    )
    # One attempt's deadline: provider calls get what is left of it as their timeout.
    task_time_limit_seconds: float = Field(
        300.0,
        gt=0,
        description=(
            "one attempt's deadline, enforced at every provider call: provider calls get what is "
            "left of it as their timeout"
        ),
    )
    # A handler's lease (and a poll's per-store lock): renewed while the handler lives, so a
    # dead worker's message is taken up again within about this long.
    lease_seconds: float = Field(
        30.0,
        ge=1,
        description=(
            "a handler's lease on its message (and a poll's lock on its store), renewed every "
            "third of it while the handler lives: a dead worker's message is taken up again "
            "within about this long"
        ),
    )
    broker_visibility_timeout_seconds: float = Field(
        900.0,
        gt=0,
        description=(
            "how long kombu leaves a message a killed worker had reserved before it restores it "
            "(the watchdog usually republishes it sooner); retries never wait in the broker, so "
            "no back-off is tied to it"
        ),
    )
    pace_sleep_max_seconds: float = Field(
        1.0,
        ge=0,
        le=5,
        description=(
            "the longest wait for a provider's pace a handler sleeps through; a longer one ends "
            "the attempt and the message is scheduled for when its call may go (no thread waits)"
        ),
    )
    worker_concurrency: int = Field(
        16,
        ge=1,
        description="threads per worker process (the Procfile's `worker` line; `bin/run`: 8)",
    )
    # How often a worker looks for lost messages (one worker at a time does).
    watchdog_interval_seconds: float = Field(
        15.0,
        gt=0,
        description="how often one of the workers sweeps for lost messages",
    )
    # How long a published task may wait before someone asks the broker whether it still holds it.
    queued_deadline_seconds: float = Field(
        60.0,
        gt=0,
        description=(
            "how long a published task (a message's, a retry's, a push's) may wait unstarted "
            "before the broker is asked whether it still holds it: still queued, it is left "
            "alone and asked about again as long later; gone, it is published again"
        ),
    )

    # Records (and with them the de-duplication window) are kept this long after they finish.
    record_ttl_seconds: int = Field(
        7 * 24 * 3600,
        gt=0,
        description=(
            "how long a record is kept after its message finished and its answer was delivered "
            "(without `HUB_PUSH_URL`: after it finished), failed and dead ones included: the "
            "de-duplication window; dead listings leave with their records"
        ),
    )
    # What handlers keep (what was sent, what was confirmed): each entry is kept this long after
    # it was written, and at most a sixth more (worker.store.kept: buckets of time).
    handler_memory_ttl_seconds: int = Field(
        180 * 24 * 3600,
        gt=0,
        description=(
            "how long each thing a handler keeps (a shipment sent, a release confirmed) is kept, "
            "counted from when it was written, and at most a sixth more (it is kept in buckets "
            "of time, each expiring whole: 180 to 210 days); see [Redis settings and "
            "memory](deployment.md#redis-settings-and-memory)"
        ),
    )

    # Scheduled polls: "auto" polls every scheduled service of every integration whose
    # credentials are configured; or a comma list "dotcom.tracking=3600,ecomdash.x" (seconds,
    # default the service's own schedule); "off" disables polling.
    polls: str = Field(
        "auto",
        description=(
            "scheduled polls: `auto` (every scheduled service of every integration whose "
            "credentials are configured, at its `endpoint.json` schedule), `off`, or a list "
            "`dotcom.tracking=600,other.svc` (seconds; without `=` the service's schedule)"
        ),
    )

    # Extra integration modules to load (a plugin hook; the tests use it for a test integration).
    shiphub_integration_modules: str = Field(
        "",
        description=(
            "extra integration modules to load (comma list); the tests load their test "
            "integration this way"
        ),
    )
    # Operators. Logs: "json" (one object per line), "text", or "auto" (JSON unless on a
    # terminal). The /ops page: basic auth with OPS_PASSWORD (any user name), or the endpoint
    # token as the password when OPS_PASSWORD is unset.
    log_format: Literal["auto", "json", "text"] = Field(
        "auto",
        description=(
            "`json`: one JSON object per line; `text`: `time LEVEL logger [fields]: message`, for "
            "people; `auto`: JSON unless the output is a terminal (so JSON under `bin/run`, "
            "systemd, Docker, a Procfile platform)"
        ),
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO",
        description=(
            "`DEBUG`, `INFO`, `WARNING` or `ERROR`, for every logger of every process (Celery's "
            "`--loglevel` and gunicorn's `--log-level` are not used). `WARNING` leaves out the "
            "access lines and Celery's task lines"
        ),
    )
    ops_password: SecretStr | None = Field(
        None,
        description=(
            "the password of the operations page `/ops` (HTTP basic auth, any user name); unset: "
            "`ENDPOINT_KEY` is the password; with neither (insecure development) the page is open"
        ),
    )
    # Shipments that stopped moving (/ops/stale, shiphub_stale_shipments): in transit or out for
    # delivery, with no news for this long. At most 60 days: after 90 without news a shipment
    # is forgotten (worker.store.moving).
    stale_shipment_days: float = Field(
        7.0,
        gt=0,
        le=60,
        description=(
            "a shipment whose last status is `in_transit` or `out_for_delivery` and that has had "
            "no news for this many days (fractions allowed) stopped moving: listed on "
            "`/ops/stale` and counted by the `shiphub_stale_shipments` gauge"
        ),
    )

    @field_validator("shiphub_secret_key")
    @classmethod
    def _fernet_keys(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and (problem := key_problem(value.get_secret_value())):
            raise ValueError(f"SHIPHUB_SECRET_KEY {problem}")
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str) -> str:
        if value.startswith("sentinel://"):
            sentinels_in(value)  # raises ValueError naming the problem
        else:
            parse_url(value)  # raises ValueError naming the problem (never the password)
        return value

    @property
    def sentinels(self) -> Sentinels | None:
        """Where Redis is when ``REDIS_URL`` names Sentinels (None: a plain ``redis://``)."""
        if not self.redis_url.startswith("sentinel://"):
            return None
        return sentinels_in(self.redis_url, self.redis_sentinel_master)

    @field_validator("hub_push_url")
    @classmethod
    def _push_url(cls, value: str | None) -> str | None:
        if value is not None and (problem := http_url_problem(value)):
            raise ValueError(problem)  # the URL is not repeated: it may hold a password
        return value

    @field_validator("hub_push_secret")
    @classmethod
    def _push_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and (problem := secrets_problem(value.get_secret_value())):
            raise ValueError(f"HUB_PUSH_SECRET: {problem}")
        return value

    @property
    def push_signing_keys(self) -> tuple[bytes, ...]:
        """The Standard Webhooks keys pushes are signed with (none: no ``webhook-signature``)."""
        if self.hub_push_secret is None:
            return ()
        return signing_keys(self.hub_push_secret.get_secret_value())

    @field_validator("hub_store")
    @classmethod
    def _store_is_a_key_part(cls, value: str) -> str:
        if problem := store_problem(value):
            raise ValueError(f"HUB_STORE {problem}")
        return value

    @model_validator(mode="after")
    def _push_is_signed(self) -> Settings:
        if self.hub_push_url and self.hub_access_token is None:
            raise ValueError("HUB_PUSH_URL is set but HUB_ACCESS_TOKEN is not: pushes are signed")
        return self

    @property
    def stale_shipment_seconds(self) -> float:
        return self.stale_shipment_days * 86400

    @property
    def handler_retries(self) -> RetryPolicy:
        return RetryPolicy(
            base_seconds=self.retry_base_seconds,
            max_seconds=self.retry_max_seconds,
            for_seconds=self.retry_for_seconds,
            max_attempts=self.task_max_attempts,
        )

    @property
    def push_retries(self) -> RetryPolicy:
        return RetryPolicy(
            base_seconds=1.0,
            max_seconds=self.hub_push_retry_max_seconds,
            for_seconds=self.hub_push_retry_for_seconds,
            max_attempts=self.hub_push_max_attempts,
        )

    def require_endpoint_key(self) -> None:
        """Refuse to serve without a hub token, unless insecure development mode is explicit."""
        if self.endpoint_key is None and not self.shiphub_insecure_dev:
            refuse_to_start(
                "ENDPOINT_KEY is not set: refusing to accept unauthenticated hub messages. "
                "Set ENDPOINT_KEY, or SHIPHUB_INSECURE_DEV=1 for local development only."
            )

    def require_secret_key(self) -> None:
        """Refuse to store credentials in clear, unless insecure development mode is explicit."""
        if self.shiphub_secret_key is None and not self.shiphub_insecure_dev:
            refuse_to_start(
                "SHIPHUB_SECRET_KEY is not set: refusing to store message parameters "
                "(credentials) unsealed. Set it to a Fernet key, or SHIPHUB_INSECURE_DEV=1 for "
                "local development only."
            )


@dataclass(frozen=True)
class Sentinels:
    """Redis behind Sentinel: the sentinels to ask, the master's name, and what every connection
    to the master uses (its password, its database)."""

    addresses: tuple[tuple[str, int], ...]
    master: str
    db: int = 0
    password: str | None = None

    @property
    def kombu_url(self) -> str:
        """kombu's spelling: every part complete, because kombu parses each ``;`` part on its own
        when it moves on to the next one after a connection error."""
        auth = f":{self.password}@" if self.password else ""
        return ";".join(
            f"sentinel://{auth}{host}:{port}/{self.db}" for host, port in self.addresses
        )


def sentinels_in(url: str, master: str = "mymaster") -> Sentinels:
    """Parse ``sentinel://[:password@]host:port[/db];sentinel://host:port...``: a password or a
    database may be given on any part, and must agree where given on several."""
    addresses: list[tuple[str, int]] = []
    passwords: set[str] = set()
    dbs: set[int] = set()
    for part in filter(None, (piece.strip() for piece in url.split(";"))):
        where = urlsplit(part)
        if where.scheme != "sentinel" or not where.hostname:
            raise ValueError(f"REDIS_URL: {_hidden(part)!r} is not sentinel://host:port")
        try:
            addresses.append((where.hostname, where.port or 26379))
        except ValueError:
            raise ValueError(f"REDIS_URL: {_hidden(part)!r} has an invalid port") from None
        if where.password:
            passwords.add(where.password)
        if where.path.strip("/"):
            if not where.path.strip("/").isdigit():
                raise ValueError(f"REDIS_URL: {_hidden(part)!r}: the database is a number")
            dbs.add(int(where.path.strip("/")))
    if len(passwords) > 1 or len(dbs) > 1:
        raise ValueError("REDIS_URL: the sentinel parts name different passwords or databases")
    if not addresses:
        raise ValueError("REDIS_URL: no sentinel named")
    return Sentinels(tuple(addresses), master, dbs.pop() if dbs else 0, next(iter(passwords), None))


def http_url_problem(url: str) -> str | None:
    """What keeps ``url`` from being an http(s) URL requests can be sent to, or None (the URL
    is not repeated: it may hold a password)."""
    try:
        where = urlsplit(url)
        where.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        return "must be an http(s) URL (its host or port cannot be read)"
    if where.scheme not in ("http", "https"):
        return "must be an http(s) URL"
    if not where.hostname:
        return "must be an http(s) URL with a host (http://host[:port]/path)"
    if url != url.strip() or not url.isprintable() or " " in url:
        return "must be an http(s) URL without spaces or control characters"
    return None


def _hidden(part: str) -> str:
    """A URL part as an error may show it: without its password."""
    where = urlsplit(part)
    return part.replace(f":{where.password}@", ":***@") if where.password else part


@lru_cache(maxsize=1)
def settings() -> Settings:
    """The settings, read once; an invalid one stops the process, naming the variable."""
    try:
        return Settings()
    except ValidationError as exc:
        refuse_to_start("invalid settings: " + "; ".join(map(_described, exc.errors())))


def _described(error: dict) -> str:  # type: ignore[type-arg]
    where = ".".join(str(part) for part in error["loc"]).upper()
    return f"{where}: {error['msg']}" if where else str(error["msg"])
