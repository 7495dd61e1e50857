"""Spectrum (seed 004, a product customizer) simulator: its ship-notification endpoint.

Behaves like the real service as the seed document and providers.md describe it. Run with
``python -m simulators.spectrum --host 127.0.0.1 --port 8104``. All state is in memory under one
lock. Spectrum's environments (api., staging., dev., demo. hosts) are irrelevant here: one base
URL.

API
---
``POST /api/order/ship-notification`` (a trailing ``/`` is accepted too, as by the real API)
    Header ``SPECTRUM_API_TOKEN: <token>``, read from the raw request header lines (see ``app``:
    werkzeug's server, like most, drops header names with underscores, and a dashed
    ``SPECTRUM-API-TOKEN`` would look the same in the WSGI environ). Only that exact name, with
    its underscores, in any case, is taken: a dashed one is no token (counted as
    ``dashed_token_header``).
    Body ``{"purchaseOrderNumber", "lineItems": [{"recipeSetReadableId", "shipmentTracking",
    "serialNumbers"?}]}``.

    * 200 ``{"purchaseOrderNumber", "status": "OK", "details": "Updated tracking number for
      recipeSetReadableId(s): A, B."}``: every line item's tracking (and serial numbers) set.
    * 409 ``{"purchaseOrderNumber", "status": "Error", "details": "Unable to find
      recipeSetReadableId(s): X."}`` when any recipe set is not in the purchase order (an
      unknown purchase order: all of them): nothing is updated (all or nothing, as the seed
      says). With ``unknown_status`` 404 the same body comes with 404 (Spectrum's newer sibling
      endpoint does that).
    * 500 ``{"purchaseOrderNumber", "status": "Error", "details": "Ship Notification processing
      for X encountered an error."}`` (the ``http_500`` fault).
    * 403 ``{"message": "Forbidden"}`` for a missing or wrong token AND when throttled: more
      than ``rate_limit`` requests (default 100) within ``rate_window_seconds`` (default 60,
      sliding) to the endpoint, whatever the token. Every request not throttled counts, a bad
      token's included. The real 403 body is undocumented: ours is the same for both causes, so
      a client cannot tell them apart, as with the real one.
    * 400 ``{"purchaseOrderNumber", "status": "Error", "details"}`` for a body that is not the
      documented shape (undocumented: our choice).

Order of checks: the rate window, then the token, then a queued fault, then the body.

Control API (``/_sim/``)
------------------------
The kit's (``simulators.kit``): ``GET /_sim/health``, ``POST /_sim/reset`` (orders back to the
configured ones, notifications, rate window, counts and faults emptied), ``GET|POST
/_sim/faults`` (kinds ``http_500``, ``forbidden``, ``slow`` (default 2 s), ``lost_answer`` (the
update is made, then a 502 HTML page); route ``ship_notification`` or none), ``GET|POST
/_sim/config`` (``tokens`` [list], ``rate_limit``, ``rate_window_seconds``, ``unknown_status``
(409|404), ``orders`` {po: [ids]}; the report shows how many tokens, never which). Plus:

``GET /_sim/orders``
    ``{"orders": {po: {recipeSetReadableId: null | {"shipmentTracking", "serialNumbers"}}}}``.
``POST /_sim/orders``
    ``{"purchaseOrderNumber", "recipeSetReadableIds": [...]}`` adds an order, or recipe sets to
    one (201).
``GET /_sim/notifications[?purchaseOrderNumber=]``
    ``{"notifications": [{"purchaseOrderNumber", "lineItems", "at"}]}``: every notification
    accepted (200), in order.
``GET /_sim/requests``
    ``{"requests": {"received", "accepted", "throttled", "forbidden", "dashed_token_header",
    "unknown", "invalid", "internal_errors"}}`` (absent: 0).

Environment (``SPECTRUM_SIM_*``)
-------------------------------
``TOKENS`` (comma-separated; default ``demo-spectrum-token``), ``RATE_LIMIT`` (100),
``RATE_WINDOW_SECONDS`` (60), ``UNKNOWN_STATUS`` (409), ``ORDERS`` (JSON ``{po: [ids]}``;
default ``{"R805661123": ["ABCD1234", "EFGH5678"], "HA-US-DEV00011101": ["ABCD1234",
"MUEMVK2U"]}``).

Choices for the unknowns: the 403 body; whether throttled or bad-token requests count toward
the window (throttled ones do not, bad-token ones do); the limit is per endpoint for every token
together (the most cautious reading of "per endpoint"); a recipe set may be notified again (its
tracking replaced: Spectrum gives no sign that it refuses a second notification); a 400 for a
malformed body.
"""

from simulators.spectrum.app import (
    EXTENSION,
    PATH,
    RAW_HEADERS,
    RawHeadersRequestHandler,
    create_app,
    main,
)
from simulators.spectrum.config import (
    DEFAULT_ORDERS,
    DEFAULT_TOKEN,
    SimulatorConfig,
    config_from_env,
)
from simulators.spectrum.simulator import TOKEN_HEADER, Reply, SpectrumSimulator

__all__ = [
    "DEFAULT_ORDERS",
    "DEFAULT_TOKEN",
    "EXTENSION",
    "PATH",
    "RAW_HEADERS",
    "TOKEN_HEADER",
    "RawHeadersRequestHandler",
    "Reply",
    "SimulatorConfig",
    "SpectrumSimulator",
    "config_from_env",
    "create_app",
    "main",
]
