"""Duoplane (seed 003, dropship) simulator.

Behaves like Duoplane's legacy ``.json`` API as the seed document and providers.md describe it,
the awkward parts included. Run with ``python -m simulators.duoplane --host 127.0.0.1 --port
8103``. All state is in memory under one lock; one retailer's data is shared by every API user.

API (JSON)
----------
Every route needs HTTP Basic auth, user = API key, password = API password; otherwise 401
``text/plain`` "HTTP Basic: Access denied." with ``WWW-Authenticate: Basic realm="Application"``
(what Rails' HTTP Basic answers; the real body is [unknown]).

Rate limit: a leaky bucket per API user, ``rate_capacity`` requests (40) draining
``rate_per_second`` (2). Each authenticated request adds one; a request that finds the bucket
full is answered 429 ``{"errors": ["Rate limit exceeded. Retry in N seconds."]}`` and still adds
one (up to twice the capacity), so requests made while limited lengthen the wait. Every answer
past authentication carries ``Duoplane-Retry-After-Seconds``: the seconds until one more request
fits (0.00 while there is room), with two decimals (our choice; the real unit is seconds).

``GET /shipments.json``
    ``search[updated_at_min|updated_at_max|created_at_min|created_at_max]`` (ISO 8601; a time
    without an offset is read in the API user's zone, ``time_zone``, default America/New_York,
    as the seed says; inclusive bounds; a time that does not parse -> 400 ``{"errors": [...]}``),
    ``search[tracking]`` (partial match), ``search[purchase_order_number]``,
    ``search[purchase_order_id]`` (a simulator extension, not in the seed); other search keys
    (customer_name, vendor_id, retailer_id, invoiced_at_*) are accepted and ignored.
    ``per_page`` default 250, larger values are cut to 250 silently (a client that compares a
    page's length with what it asked for stops early); ``page`` from 1. Sorted by id ascending.
    The answer is a bare JSON array; a short page is the last. ``include_shipment_purchase_order``
    = 1/true adds ``purchase_order`` to each shipment.
``POST /purchase_orders/{id}/shipments.json`` ``{"shipment": {...}}``
    Exactly one of shipper_id / shipper_name / shipper_scac_code, matching a carrier of the
    account (the seed's 1 UPS UPSN, 2 FedEx FEDX, 17 US Postal USPS, 395 DHL eCommerce, plus
    9 OnTrac EMSY and 31 Canada Post); ``shipment_items_attributes`` [{order_item_id, quantity
    >= 1}] (>= 1, each an item of this purchase order); ``shipment_trackings_attributes``
    [{tracking}] (>= 1). Unknown purchase order -> 404 ``{"errors": ["Purchase order N not
    found"]}``. Invalid -> 422 ``{"errors": {"shipper"|"shipment_items"|"shipment_trackings":
    [...]}}`` (``error_format`` "object") or ``{"errors": ["Shipper ...", ...]}`` ("list"); the
    real body is [unknown]. Success -> 200 with the shipment as a bare object (id,
    purchase_order_id, purchase_order_public_reference, created_at, updated_at (UTC, ms, Z),
    shipper_*, vendor_* and shipper_* costs, shipment_trackings_attributes [{id, tracking}],
    shipment_items_attributes [{id, order_item_id, quantity, cost, order_item_name,
    serial_codes}]). A repeated POST creates a second shipment, as the real API does: nothing
    checks duplicates or over-shipping.
``PUT /shipments/{id}.json`` ``{"shipment": {...}}``
    Partial update of vendor_invoice_reference and the cost fields; moves updated_at; 404 when
    unknown.

Faults (``POST /_sim/faults``)
------------------------------
``{"route": "list"|"create"|"update" (or null: any), "kind": K, "count": 1, "delay_seconds":
..., "retry_after_seconds": ...}``, taken one per authenticated request that the bucket admits:
``http_500`` (nothing done), ``slow`` (wait ``delay_seconds``, default 5, then do it and
answer: a client that dies meanwhile still finds it done), ``lost_answer`` (do it, then answer
502 with an HTML gateway page), ``rate_limited`` (429 with Duoplane-Retry-After-Seconds =
``retry_after_seconds``, default 2, nothing done).

Control API (``/_sim/``, no auth)
---------------------------------
``GET /_sim/health``; ``POST /_sim/reset`` (shipments, buckets, counts and faults cleared,
purchase orders back to the seeded ones: 987654 "1001-1" with items 239417 and 239418 as in the
seed's sample, 987655 "1002-1" with 239419 and 239420, 987656 "1003-1" with 239421; settings
stay); ``GET/POST /_sim/faults``; ``GET /_sim/config``; ``POST /_sim/config`` ``{accounts:
{key: password}, rate_capacity, rate_per_second, time_zone, error_format, carriers: [{id, name,
scac}] (added to the seed's)}`` -> settings (passwords not shown);
``GET /_sim/shipments[?purchase_order_id=]`` -> ``{"shipments": [...], "count"}`` (every
shipment created or injected); ``POST /_sim/shipments`` ``{"count", "purchase_order_id",
"updated_at", "step_seconds", "trackings", "shipper_id", "tracking_prefix"}`` -> 201 ``{"count",
"ids"}`` (shipments made as a vendor would, quickly: 10,000 in well under a second);
``GET /_sim/purchase_orders``; ``POST /_sim/purchase_orders`` ``{"id"?, "public_reference"?,
"order_items": [{"id"?, "name", "sku", "quantity", "cost"}]}`` -> 201 the purchase order;
``GET /_sim/requests[?since=epoch]`` -> ``{"requests": {route: n}, "total", "rate_limited",
"statuses": {code: n}, "log": [{"route", "status", "at"}]}`` (the log keeps the last 20,000).

Environment
-----------
``DUOPLANE_SIM_ACCOUNTS`` (``key:password,...``; default ``demo-dp-key:demo-dp-password``),
``DUOPLANE_SIM_RATE_CAPACITY`` (40), ``DUOPLANE_SIM_RATE_PER_SECOND`` (2),
``DUOPLANE_SIM_TIME_ZONE`` (America/New_York), ``DUOPLANE_SIM_ERROR_FORMAT`` (object|list).
"""

from simulators.duoplane.app import (
    DEFAULT_PORT,
    LOST_ANSWER_PAGE,
    RETRY_AFTER_HEADER,
    api_call,
    create_app,
    main,
)
from simulators.duoplane.simulator import (
    DEFAULT_ACCOUNTS,
    SEED_CARRIERS,
    SEED_PURCHASE_ORDERS,
    ApiError,
    Config,
    DuoplaneSimulator,
    LeakyBucket,
    config_from_env,
    parse_accounts,
)

__all__ = [
    "DEFAULT_ACCOUNTS",
    "DEFAULT_PORT",
    "LOST_ANSWER_PAGE",
    "RETRY_AFTER_HEADER",
    "SEED_CARRIERS",
    "SEED_PURCHASE_ORDERS",
    "ApiError",
    "Config",
    "DuoplaneSimulator",
    "LeakyBucket",
    "api_call",
    "config_from_env",
    "create_app",
    "main",
    "parse_accounts",
]
