"""Shipping Order API (seed 002, the Delivery Solutions API) simulator.

Behaves like the real service as the seed document and providers.md describe it, the awkward
parts included. Run with ``python -m simulators.shipping_orders --host 127.0.0.1 --port 8102``.
All state is in memory under one lock; a lifecycle clock thread moves orders along and a sender
thread delivers webhooks (never under the lock).

API (JSON; routes under ``base_path``, default "")
--------------------------------------------------
Every route needs the headers ``x-api-key`` and ``tenantId`` (names case-insensitive):
no key -> 403 ``FORBIDDEN`` "Forbidden"; unknown key -> 401 ``UNAUTHORIZED`` "Invalid Api Key!";
tenantId missing or not the key's tenant -> 401 ``UNAUTHORIZED`` "Invalid tenantId".
Every error body is ``{"type", "message", "errors": [{"type", "message", ...}]}``; a delivery
provider's refusal carries its own item ``{"provider", "type", "message", "code"}`` instead.
The routes below describe the seed's shape; see "Shapes" for the vendor's.

``POST /shipments``
    Create. Required: locationExternalId, orderExternalId (<= 100 characters), deliveryAddress
    {street1, city, postalCode, countryCode}, deliveryContact.name -> else 400 VALIDATION_ERROR
    naming the field. Unknown location -> 422 INVALID_DATA; orderExternalId taken (per tenant)
    -> 422 DUPLICATE_ID; address not geocodable -> 422 GEOCODING_FAILED; no provider assigned to
    the location -> 422 NO_PROVIDER_ASSIGNED; no estimate left -> 422 NO_PROVIDER_MATCHED.
    A refused create stores nothing. 201: the stored order (posted fields echoed, plus id,
    tenantId, brandExternalId, pickupAddress/pickupContact of the location, status
    ORDER_DISPATCHED, provider, trackingId, estimatedPickupTime/estimatedDeliveryTime, amount,
    fee, currencyCode, referenceLinks, proposedProviders, createdAt/lastUpdatedAt, null
    actualPickupTime/actualDeliveryTime). Its history reads REQUEST_RECEIVED, ESTIMATES_RECEIVED,
    ORDER_DISPATCHED. ``orderAttributes.simScenario`` picks the order's lifecycle scenario.
``GET /shipments/{orderExternalId}``
    The order; 404 NOT_FOUND "Not Found: Order with id, X, is not found"; an id over 100
    characters -> 422 INVALID_DATA "Invalid data: Invalid Order Id" (retry: "Order Id value is
    invalid").
``PUT /shipments/{orderExternalId}``
    Partial edit: each top-level field sent replaces the stored one (service fields such as
    status or provider are ignored; orderExternalId cannot change). orderValue < 0 -> 400
    INVALID_DATA; package/itemList changed at PICKUP_COMPLETED or later -> 400 VALIDATION_ERROR
    "packages parameter cannot be changed post order dispatch"; a delivered, undeliverable,
    failed-with-exception or cancelled order cannot be edited (400 VALIDATION_ERROR, our
    choice). Before pickup a changed deliveryAddress, locationExternalId or package re-runs
    orchestration (GEOCODING_FAILED, NO_PROVIDER_* possible; the order is then unchanged); a new
    provider means a new trackingId and status ORDER_DISPATCHED. 200 with the order.
``DELETE /shipments/{orderExternalId}``
    Cancel -> 200 with the order in ORDER_CANCELLED (provider and tracking kept, as the list
    samples show). Already cancelled -> 409 ORDER_ALREADY_CANCELED; picked up and on its way ->
    422 ORDER_CANCELLATION_FAILED with the provider's item (UPS: ``{"provider": "UPS Shipping",
    "type": "NON_CANCELABLE_DELIVERY", "message": "No shipment found within the allowed void
    period", "code": 400}``); delivered, undeliverable or ERROR_EXCEPTION -> 403
    CANCELLATION_NOT_ALLOWED; a failed order (ORDER_FAILED...) can be cancelled.
``POST /shipments/{orderExternalId}/retry``
    From ORDER_FAILED, ESTIMATES_FAILED or PENDING_AUTORETRY: orchestration again -> 201, the
    order back in ORDER_DISPATCHED with a new trackingId (a ``failed``-scenario order then
    follows ``delivered``); if orchestration fails now the order goes to ESTIMATES_FAILED and
    the answer is that 422. Otherwise 409 INVALID_OPERATION "The Order can no longer be retried".
``GET /shipments/{orderExternalId}/status-history``
    ``[{"orderId", "tenantId", "orderStatus": [{"status", "updatedAt" ("April 27th 2022,
    2:45:45 am CDT", America/Chicago), "updatedAtEpoch" (ms), "note", "statusUser", "retry",
    "workflow", optional "eventReason" {code, title, note}, "subStatus"}], "trackingUrl"}]``;
    an unknown order answers ``[]`` (the seed lists no 404 here).
``POST /shipments/list``
    Filters: limit (default and most 1000), lastUpdatedAt / createdAt ``{startsAt, endsAt}``
    (epoch ms; startsAt required, endsAt defaults to now; at most 30 days; not older than a
    year), orderExternalIds / locationExternalIds (<= 100 each), status (list), groupId,
    pickupTime.startsAt + deliveryTime.endsAt (only together), paginationToken. Without a date
    filter: createdAt within the last 24 h. Sorted by (lastUpdatedAt, id) ascending. Answer
    ``{"data": [...], "paginationToken": {"next", "previous"}}``. Tokens are base64 JSON of the
    tenant, the filters and a keyset position; with a token the body's other filters are
    ignored (limit still counts); every change moves an order's lastUpdatedAt strictly forward,
    so an order updated while a client pages is seen again later, never skipped. A token that
    does not decode -> 400 INVALID_DATA. Errors here are all 400 INVALID_DATA.

Shapes (``shape``: ``seed`` by default, or ``vendor``)
-----------------------------------------------------
Orders are kept in the seed's shape and answered (create, get, list, edit, cancel, retry, the
control reports) and sent by webhook in the configured one. ``vendor`` is the vendor's real
order objects (providers.md; ``shapes`` has the details): ``provider`` a string (``""`` until a
delivery provider is chosen), ``trackingNumber`` (``""`` until then; all-digit numbers such as
FedEx's as JSON integers), a top-level ``trackingUrl`` (null until then; ``referenceLinks``
keeps only ``qrcodeLink``), ``estimatedPickupTime`` / ``estimatedPickupTimeStarts`` /
``...Ends`` as epoch ms and ``estimatedDeliveryTime`` (ISO 8601 with the Central offset, no
ms) / ``estimatedDeliveryTimeStarts`` / ``...Ends`` (ISO 8601 with ms and Z), ``orderId``
for ``id``, ``storeExternalId`` for ``locationExternalId``, and ``receivedAtEpoch`` (ms).
In ``vendor`` a create (checked, geocoded and orchestrated as in ``seed``: the same errors)
answers 201 ``REQUEST_RECEIVED`` with ``provider``, ``trackingNumber``, ``createdAt`` and
``lastUpdatedAt`` all ``""``; the order is dispatched later, as the first steps of its path
(``REQUEST_RECEIVED``, ``ESTIMATES_RECEIVED``, ``ORDER_DISPATCHED`` with the provider chosen at
the create, then the scenario), by the clock or the advance route, a webhook for each. An edit
of the address, location or package before the dispatch re-runs orchestration for it; a cancel
before it leaves the order without a provider. ``INVALID_DATA`` and ``ORDER_CANCELLATION_FAILED``
answer HTTP 400 (the seed's table: 422). Requests are the seed's in both shapes
(``locationExternalId``, ``{startsAt, endsAt}`` windows): the vendor's request shapes are not
in the material we have.

Rate limit: with ``rate_limit_per_second`` set, a key's requests beyond that many within one
second (sliding window) -> 429 TOO_MANY_REQUESTS "Too many requests received per second.". The
real threshold and whether a Retry-After header is sent are unknown: none is sent.

Orchestration
-------------
Simulated providers (``orchestration.PROVIDERS``): UPS Ground (anywhere, cheap, a day or more),
FedEx Express (anywhere, dearer, next day), DoorDash (same-day local: only within the location's
state, US/CA), Roadie (same day, US, at most 50 lb). Each estimate's price comes from distance,
weight and order value, and its pickup/delivery times from the clock, deterministically. The
location's rules choose: ``cheapest``, ``fastest``, ``preferred`` (its estimate if it gave one
within the cap, else cheapest), after ``price_cap`` drops dearer estimates; ``providers`` lists
which providers are assigned (empty: NO_PROVIDER_ASSIGNED). ``proposedProviders`` lists every
provider that gave an estimate. "Geocoding": a country code that is not two letters, a postal
code implausible for the country (US: 5 digits or ZIP+4; CA, GB, DE, FR, ES, IT, NL, AU by their
formats; others loosely) or "UNKNOWN" in street1 -> GEOCODING_FAILED; otherwise latitude and
longitude are derived (US: a region by the ZIP's first digit, plus a hashed offset) unless the
address brings its own.

Lifecycle
---------
The clock moves each non-terminal order one step ``step_seconds`` after its last status change
(0: never by itself; use the advance control route). Scenarios (``orderAttributes.simScenario``,
else the config's ``scenario``), after ORDER_DISPATCHED:

* ``delivered``: ORDER_ASSIGNED, PICKUP_STARTED, PICKUP_COMPLETED, IN_TRANSIT, OUT_FOR_DELIVERY,
  ORDER_DELIVERED;
* ``delayed``: as delivered with ORDER_DELAYED after IN_TRANSIT;
* ``redelivery``: ... OUT_FOR_DELIVERY, ORDER_REDELIVERY, OUT_FOR_DELIVERY, ORDER_DELIVERED;
* ``undeliverable``: ... OUT_FOR_DELIVERY, ORDER_UNDELIVERABLE (eventReason CUSTOMER_REJECTED,
  subStatus RETURN_AT_LOCATION, as the seed's sample);
* ``failed``: ORDER_FAILED (retry allowed);
* ``exception``: ... IN_TRANSIT, ERROR_EXCEPTION.

Each step moves lastUpdatedAt, adds a history entry (statusUser: the provider's name; the
platform's own steps say "Default_Business_Key"), sets actualPickupTime (epoch ms) at
PICKUP_COMPLETED and actualDeliveryTime at ORDER_DELIVERED, and sends a webhook; so does every
change made through the API (create, edit, cancel, retry: one webhook each).

Webhooks
--------
With ``webhook_url`` set: POST of the order JSON (in the configured shape) plus
``storeExternalId`` (its location), ``Content-Type: application/json``, ``X-DS-Signature``:
lowercase hex HMAC-SHA256 of the raw body keyed with ``webhook_secret`` (an assumption: the
vendor documents only "a hash of the payload"), empty when there is no secret. One sender
thread, in event order; retry policy (unknown for the real one): retried after 0.5 s, 1 s and
2 s on connection errors, timeouts and non-2xx answers, then given up (``webhook_retry_delays``
changes it).

Faults (``POST /_sim/faults``)
------------------------------
``{"route": R, "kind": K, "count": 1, "delay_seconds": ..., "type": ..., "message": ...}``;
R is one of create, list, get, edit, cancel, retry, history, webhook; faults of a route are
taken one per authenticated request, first queued first.

* ``http_500``: 500 INTERNAL_SERVER_ERROR, nothing done;
* ``error`` with ``type`` from the route's row of the seed's error table (either spelling):
  that type with the table's HTTP code and message (``message`` overrides), nothing done;
* ``slow``: wait ``delay_seconds`` (default 5) then answer normally;
* ``lost_answer``: do the work (the order IS stored, changed...), then answer 502 with an HTML
  gateway page: the client cannot know it succeeded;
* ``odd_answer`` with ``set`` (``{field: value}``) and/or ``remove`` (``[field, ...]``): do the
  work, then answer with those top-level fields of each order answered (every order of a list,
  every entry of a status history) written over or taken out: an answer a client cannot fully
  read;
* route ``webhook``: ``drop`` (the next webhook is lost), ``duplicate`` (sent twice),
  ``delay`` (held ``delay_seconds``, default 2, while later ones go first: out of order).

Control API (``/_sim/``, no auth)
---------------------------------
``GET /_sim/health`` -> ``{"ok": true}``; ``POST /_sim/reset`` -> ``{"ok": true}`` (orders,
faults, webhook log and counts cleared; settings and locations stay);
``GET /_sim/faults`` -> ``{"faults": [...]}``; ``POST /_sim/faults`` -> 201 the fault;
``GET /_sim/config`` -> settings and locations; ``POST /_sim/config`` ``{accounts,
step_seconds, webhook_url, webhook_secret, error_spelling, shape, rate_limit_per_second, scenario,
webhook_retry_delays, webhook_timeout_seconds, locations: [location, ...]}`` (any subset;
base_path is fixed at start-up; the secret is reported only as ``webhook_secret_set``) ->
settings;
``GET /_sim/orders[?tenantId=]`` -> ``{"orders": [{"tenantId", "orderExternalId", "status",
"scenario", "path", "order" (as the API answers it), "statusHistory"}], "count"}``;
``GET /_sim/orders/{id}`` -> one of those (404 ``{"error"}`` when unknown);
``POST /_sim/orders/{id}/advance`` ``{}`` (one step), ``{"to": STATUS}`` (step along the path
up to STATUS) or ``{"to": STATUS, "force": true}`` (set it, e.g. PENDING_AUTORETRY), optional
``"tenantId"`` -> the order (400 when there is no such step);
``GET /_sim/webhooks`` -> ``{"webhooks": [{"seq", "orderExternalId", "status",
"outcome" (delivered|failed|dropped), "http_status", "attempts", "duplicate", "delayed",
"error", "logged_at"}], "pending"}``; ``GET /_sim/locations`` -> ``{"locations": [...]}``;
``POST /_sim/locations`` ``{"tenantId"?, "locationExternalId", "name"?, "address"?,
"contact"?, "rules"?: {"strategy", "preferred_provider", "price_cap", "providers"}}`` -> the
location (added, or changed: rules merge key by key); ``GET /_sim/requests`` ->
``{"requests": {route: count}, "total", "rate_limited"}``. Bad control requests -> 400
``{"error"}``.

Environment (``python -m simulators.shipping_orders``)
------------------------------------------------------
``SHIPPING_ORDERS_SIM_ACCOUNTS`` (``key:tenant,...``; default ``demo-so-key:demo-tenant``),
``SHIPPING_ORDERS_SIM_BASE_PATH``, ``SHIPPING_ORDERS_SIM_LOCATIONS`` (JSON list of
``/_sim/locations`` objects, on top of store-1), ``SHIPPING_ORDERS_SIM_STEP_SECONDS`` (5),
``SHIPPING_ORDERS_SIM_WEBHOOK_URL``, ``SHIPPING_ORDERS_SIM_WEBHOOK_SECRET``,
``SHIPPING_ORDERS_SIM_ERROR_SPELLING`` (seed|vendor), ``SHIPPING_ORDERS_SIM_SHAPE`` (seed|vendor),
``SHIPPING_ORDERS_SIM_RATE_LIMIT_PER_SECOND``,
``SHIPPING_ORDERS_SIM_SCENARIO`` (delivered), ``SHIPPING_ORDERS_SIM_WEBHOOK_RETRY_DELAYS``
(``0.5,1,2``), ``SHIPPING_ORDERS_SIM_WEBHOOK_TIMEOUT_SECONDS`` (5). Every tenant without
locations of its own gets ``store-1`` (345 Harrison Avenue, Boston MA 02118, "Store One", all
providers, cheapest).

Error spelling: ``seed`` writes NO_PROVIDER_MATCHED and ORDER_ALREADY_CANCELED, ``vendor``
NO_DSP_MATCHED and ORDER_ALREADY_CANCELLED (and "DSP failed to cancel order").
"""

from simulators.shipping_orders.app import (
    EXTENSION,
    LOST_ANSWER_PAGE,
    api_call,
    create_app,
    main,
    register_api_routes,
    register_shipping_orders_control_routes,
)
from simulators.shipping_orders.config import (
    DEFAULT_ADDRESS,
    DEFAULT_CONTACT,
    DEFAULT_LOCATION_ID,
    DEFAULT_TENANT,
    Location,
    SimulatorConfig,
    config_from_env,
    parse_accounts,
)
from simulators.shipping_orders.errors import (
    ERROR_TABLE,
    TRANSIENT_TYPES,
    VENDOR_SPELLING,
    ApiError,
)
from simulators.shipping_orders.lifecycle import SCENARIO_PATHS, SCENARIOS, STATUSES, TERMINAL
from simulators.shipping_orders.orchestration import PROVIDERS, STRATEGIES, Provider, Rules
from simulators.shipping_orders.shapes import SHAPES, VENDOR_HTTP_STATUS
from simulators.shipping_orders.simulator import Order, ShippingOrdersSimulator
from simulators.shipping_orders.webhooks import SIGNATURE_HEADER, signature

__all__ = [
    "DEFAULT_ADDRESS",
    "DEFAULT_CONTACT",
    "DEFAULT_LOCATION_ID",
    "DEFAULT_TENANT",
    "ERROR_TABLE",
    "EXTENSION",
    "LOST_ANSWER_PAGE",
    "PROVIDERS",
    "SCENARIOS",
    "SCENARIO_PATHS",
    "SHAPES",
    "SIGNATURE_HEADER",
    "STATUSES",
    "STRATEGIES",
    "TERMINAL",
    "TRANSIENT_TYPES",
    "VENDOR_HTTP_STATUS",
    "VENDOR_SPELLING",
    "ApiError",
    "Location",
    "Order",
    "Provider",
    "Rules",
    "ShippingOrdersSimulator",
    "SimulatorConfig",
    "api_call",
    "config_from_env",
    "create_app",
    "main",
    "parse_accounts",
    "register_api_routes",
    "register_shipping_orders_control_routes",
    "signature",
]
