"""``/ops/activity`` and ``/ops/stale``: the operations page's chart of messages handled and
failed per minute, and the shipments that stopped moving. Routes of the ``/ops`` blueprint
(``endpoint.ops``: same login, same headers, same error pages), in templates of their own.

**The chart** (``/ops/activity?hours=3``, 1 to 24 hours): messages finished per minute, all
integrations together and each integration with any, read from the per-minute counts
(``worker.store.per_minute``: one pipelined round trip), drawn on the server as inline SVG (no
script, nothing fetched): a title and a description for screen readers, a legend, axis labels,
and the same numbers as a table.

**Shipments that stopped moving** (``/ops/stale``): shipments whose last canonical status is in
transit or out for delivery with no news for ``STALE_SHIPMENT_DAYS``, the longest silent first,
by integration, a page at a time (``worker.store.moving``)."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from flask import Response, render_template, request, url_for

from endpoint.access import wiring
from endpoint.ops import blueprint, when
from worker.integrations import registry
from worker.store.moving import MovingShipment
from worker.store.per_minute import Minute, minute_of

DEFAULT_HOURS, MAX_HOURS = 3, 24
STALE_PER_PAGE = 50
MAX_PAGE = 10_000
# The chart's drawing, in SVG user units.
WIDTH, HEIGHT = 760, 226
LEFT, RIGHT, TOP, BOTTOM = 56, 14, 30, 46
HANDLED, FAILED = ("handled", "#1f5fa8"), ("failed", "#c0392b")
ALL = "all integrations"


class BadParameter(Exception):
    """A query parameter out of its bounds: a 400 page naming it."""


# -- the chart -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Tick:
    at: float  # x or y, in SVG units
    label: str


@dataclass(frozen=True)
class Chart:
    """One integration's (or all of them together) handled and failed per minute, drawn."""

    name: str
    slug: str
    handled: list[int]
    failed: list[int]
    title: str
    description: str
    handled_points: str
    failed_points: str
    x_ticks: list[Tick]
    y_ticks: list[Tick]

    @property
    def total_handled(self) -> int:
        return sum(self.handled)

    @property
    def total_failed(self) -> int:
        return sum(self.failed)


def nice_ceiling(value: int) -> int:
    """The y axis's top: 1, 2 or 5 times a power of ten, at least ``value`` (and 1)."""
    if value <= 1:
        return 1
    power = 10 ** math.floor(math.log10(value))
    return next(step * power for step in (1, 2, 5, 10) if step * power >= value)


def _points(values: list[int], top: int) -> str:
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    step = plot_w / max(len(values) - 1, 1)
    return " ".join(
        f"{LEFT + i * step:.1f},{TOP + plot_h - v / top * plot_h:.1f}" for i, v in enumerate(values)
    )


def _x_ticks(first: int, count: int) -> list[Tick]:
    """A tick at each whole hour (each quarter of an hour for a window of two hours or less)."""
    every = 15 if count <= 120 else 60 if count <= 6 * 60 else 180
    step = (WIDTH - LEFT - RIGHT) / max(count - 1, 1)
    return [
        Tick(LEFT + i * step, datetime.fromtimestamp((first + i) * 60, UTC).strftime("%H:%M"))
        for i in range(count)
        if (first + i) % every == 0
    ]


def _y_ticks(top: int) -> list[Tick]:
    plot_h = HEIGHT - TOP - BOTTOM
    values = sorted({0, top // 2, top}) if top >= 2 else [0, 1]
    return [Tick(TOP + plot_h - v / top * plot_h, str(v)) for v in values]


def chart(name: str, handled: list[int], failed: list[int], first: int, hours: int) -> Chart:
    top = nice_ceiling(max(handled, default=0))
    start = datetime.fromtimestamp(first * 60, UTC).strftime("%Y-%m-%d %H:%M")
    peak = max(handled, default=0)
    return Chart(
        name=name,
        slug=name.replace(" ", "-"),
        handled=handled,
        failed=failed,
        title=f"Messages of {name} handled and failed per minute, last {hours} h",
        description=(
            f"From {start} UTC, one point a minute: {sum(handled)} handled, {sum(failed)} "
            f"failed; at most {peak} handled in a minute."
        ),
        handled_points=_points(handled, top),
        failed_points=_points(failed, top),
        x_ticks=_x_ticks(first, len(handled)),
        y_ticks=_y_ticks(top),
    )


def charts(minutes: list[Minute], integrations: list[str], hours: int) -> list[Chart]:
    """All integrations together, then each integration that finished anything."""
    first = minutes[0].minute if minutes else minute_of(time.time())
    seen = {i for m in minutes for i, _ in m.counts}
    shown = [i for i in integrations if i in seen] + sorted(seen - set(integrations))
    drawn = [
        chart(
            ALL,
            [sum(m.counts.values()) for m in minutes],
            [sum(n for (_, o), n in m.counts.items() if o != "succeeded") for m in minutes],
            first,
            hours,
        )
    ]
    for name in shown:
        handled = [m.of(name) for m in minutes]
        failed = [m.of(name, ("failed", "dead")) for m in minutes]
        drawn.append(chart(name, handled, failed, first, hours))
    return drawn


@dataclass(frozen=True)
class MinuteRow:
    at: str
    integration: str
    succeeded: int
    failed: int
    dead: int


def minute_rows(minutes: list[Minute]) -> list[MinuteRow]:
    """The table beside the chart: each minute and integration that finished anything."""
    rows = []
    for m in minutes:
        at = datetime.fromtimestamp(m.minute * 60, UTC).strftime("%Y-%m-%d %H:%M")
        for integration in sorted({i for i, _ in m.counts}):
            counts = [m.counts.get((integration, o), 0) for o in ("succeeded", "failed", "dead")]
            rows.append(MinuteRow(at, integration, *counts))
    return rows


def whole_number(name: str, default: int, low: int, high: int) -> int:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise BadParameter(f"{name} must be a whole number from {low} to {high} (got {raw!r})")
    return int(raw)


@blueprint.get("/activity")
def activity() -> Response:
    """Messages handled and failed per minute over the last ``hours``."""
    try:
        hours = whole_number("hours", DEFAULT_HOURS, 1, MAX_HOURS)
    except BadParameter as exc:
        return _bad_request(str(exc))
    now = time.time()
    last = minute_of(now)
    minutes = wiring().db.per_minute.read(last - hours * 60 + 1, last)
    return _page(
        "ops/activity.html",
        charts=charts(minutes, list(registry.integrations()), hours),
        rows=minute_rows(minutes),
        hours=hours,
        choices=(1, 3, 6, 12, 24),
        size=(WIDTH, HEIGHT, LEFT, RIGHT, TOP, BOTTOM),
        colours={"handled": HANDLED[1], "failed": FAILED[1]},
        now=when(now),
    )


# -- shipments that stopped moving -----------------------------------------------------------
def silent_for(seconds: float) -> str:
    """How long ago, as an operator reads it: ``9 d 3 h``, ``5 h 12 min``, ``42 s``."""
    seconds = max(0, int(seconds))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min {secs} s" if minutes else f"{secs} s"


@dataclass(frozen=True)
class StaleRow:
    integration: str
    store: str
    number: str
    status: str
    provider_status: str
    carrier: str
    tracking: str
    news_at: str
    silent_for: str
    message_id: str

    @classmethod
    def of(cls, shipment: MovingShipment, now: float) -> StaleRow:
        return cls(
            integration=shipment.integration,
            store=shipment.store,
            number=shipment.number,
            status=shipment.status,
            provider_status=shipment.provider_status,
            carrier=shipment.carrier,
            tracking=shipment.tracking,
            news_at=when(shipment.news_at),
            silent_for=silent_for(now - shipment.news_at),
            message_id=shipment.message_id,
        )


@blueprint.get("/stale")
def stale() -> Response:
    """Shipments in transit or out for delivery with no news for STALE_SHIPMENT_DAYS."""
    integrations = list(registry.integrations())
    integration = request.args.get("integration", "")
    if integration and integration not in integrations:
        return _bad_request(f"integration: no integration {integration!r}")
    try:
        page = whole_number("page", 1, 1, MAX_PAGE)
    except BadParameter as exc:
        return _bad_request(str(exc))
    w = wiring()
    now = time.time()
    days = w.settings.stale_shipment_days
    before = now - w.settings.stale_shipment_seconds
    counts = w.db.moving.counts(integrations, before, now)  # pruned first
    found, total = w.db.moving.stale(
        before, integration, (page - 1) * STALE_PER_PAGE, STALE_PER_PAGE
    )
    pages = max(1, math.ceil(total / STALE_PER_PAGE))
    filters = {"integration": integration} if integration else {}
    return _page(
        "ops/stale.html",
        rows=[StaleRow.of(s, now) for s in found],
        counts=counts,
        total=total,
        days=f"{days:g}",
        integration=integration,
        integrations=integrations,
        page=page,
        pages=pages,
        newer=url_for("ops.stale", **filters, page=page - 1) if page > 1 else None,
        older=url_for("ops.stale", **filters, page=page + 1) if page < pages else None,
        now=when(now),
    )


# -- pages -----------------------------------------------------------------------------------
def _page(template: str, **context: Any) -> Response:
    return Response(render_template(template, **context), mimetype="text/html")


def _bad_request(description: str) -> Response:
    html = render_template(
        "ops/error.html", status=400, title="Bad request", description=description
    )
    return Response(html, status=400, mimetype="text/html")
