"""ecomdash (seed 001) simulator: ``POST Shipments/submitTrackingInfo`` behind an Azure API
Management gateway, with the real service's keys, limits and per-record answers.

Run with ``python -m simulators.ecomdash --host 127.0.0.1 --port 8101``. State is in memory
under one lock; a call's simulated work (``call_seconds``) runs outside it, so concurrent calls
overlap and the concurrency limit can be observed.

API (under ``base_path``, default ``/api``: ``ECOMDASH_API_URL=http://host:port/api``)
------------------------------------------------------------------------------------
``POST /api/Shipments/submitTrackingInfo`` (the path is matched case-insensitively, as
APIM does), checked in this order:

1. The gateway's key, header ``Ocp-Apim-Subscription-Key``: missing -> 401
   ``{"statusCode": 401, "message": "Access denied due to missing subscription key. ..."}``;
   not one of ``subscription_keys`` -> 401 ``"Access denied due to invalid subscription key.
   ..."`` (lower-case keys, as the gateway writes them).
2. The rate limit, per account (the ``ecd-subscription-key`` value): at most ``rate_limit``
   calls in any ``rate_window_seconds`` (120 in 60 s), else 429 with ``Retry-After`` (whole
   seconds until the oldest call leaves the window) and ``{"statusCode": 429, "message": "Rate
   limit is exceeded. Try again in N seconds."}``. Every call past step 1 counts.
3. Concurrency, per account and operation: at most ``max_concurrent`` (3) calls in progress,
   else 429 without ``Retry-After``, ``{"Message": "Too many concurrent requests for this
   account and operation."}`` (wording ours: unknown).
4. The customer's key, ``ecd-subscription-key``: missing, unknown, or an account without a
   current subscription (``active: false``) -> 403 ``{"Message": "The provided
   'ecd-subscription-key' / 'application-id' combination is not valid or does not belong to a
   company with a current ecomdash subscription."}`` (the seed's words).
5. A queued fault (route ``submitTrackingInfo``): ``http_500`` -> 500 ``{"Message": "Oops,
   something went wrong while processing your request"}``; ``rate_limited`` -> 429 with
   ``Retry-After`` (the fault's ``retry_after``, default 1); ``concurrency`` -> 429 without it;
   ``slow`` -> ``delay_seconds`` more work, then processed; ``lost_answer`` -> processed, then
   502 with an HTML page (the records were taken).
6. The call takes ``call_seconds`` (0.05 by default), then the body is read: not a JSON array
   -> 400 ``{"Message": "The request is invalid."}``.
7. 200 ``{"status": "Success", "messages": ["Found N shipments associated with this request"],
   "pagination": null, "data": [{"Request", "WasSuccessful", "Messages"}]}``, one result per
   record, in order. ``messages`` is not empty on success (as the real one can be).

Per record (``WasSuccessful: false`` with ``Messages``; our wording, the real one is unknown):
``ShipmentId`` missing or not a whole number ("ShipmentId is required."), not one of the
account's shipments ("Shipment 123 was not found."); ``CarrierId`` not one of the account's
carriers ("Carrier 9 was not found."); a LineItemId not on that shipment ("LineItem 99 was not
found on shipment 123."); no ``TrackingNumber`` and no ``LineItems`` ("TrackingNumber is
required when LineItems are not provided."); a line item with no number of its own nor the
record's ("TrackingNumber is required for LineItem 99."); a ``ShippedDate`` that is not a date
("ShippedDate is not a valid date."). Ids are accepted as decimals (``20405.0``) and echoed as
integers; dates are echoed as sent. A shipment submitted again is accepted again (what the real
service does is unknown) and listed again at ``/_sim/tracking``, so repeats can be counted.

Seed data: subscription key ``demo-apim-key``; account ``demo-ecd-key`` (name ``demo``,
active) with shipments 20404 and 20405 (line items ``ShipmentId*10+1`` and ``+2``), carriers
1 UPS, 2 FedEx, 3 USPS; account ``lapsed-ecd-key`` (name ``lapsed``, subscription lapsed).

Control API (``/_sim/``, JSON)
------------------------------
The kit's: ``GET /_sim/health``, ``POST /_sim/reset`` (seed data back, counts and faults
cleared, config kept), ``GET|POST /_sim/faults``, ``GET|POST /_sim/config`` (call_seconds,
rate_limit, rate_window_seconds, max_concurrent, subscription_keys). And:

* ``POST /_sim/accounts`` ``{"ecd_key", "name"?, "active"?}``: add or change an account.
* ``POST /_sim/shipments`` ``{"ecd_key", "first", "count", "items"?: 2}``: shipments ``first``
  .. ``first+count-1``, each with line items ``id*10+1`` .. ``id*10+items``.
* ``GET /_sim/tracking[?shipment=ID]``: every record taken, in order: ``{"account",
  "ShipmentId", "TrackingNumber", "CarrierId", "TrackingURL", "ShippedDate", "LineItems",
  "call"}``.
* ``GET /_sim/stats``: ``{"calls", "answered": {status: n}, "records", "max_concurrency",
  "in_flight"}``: calls past the gateway key, by HTTP status, records taken, the most calls in
  progress at once for one account.

Environment: ``ECOMDASH_SIM_CALL_SECONDS``, ``ECOMDASH_SIM_RATE_LIMIT``,
``ECOMDASH_SIM_RATE_WINDOW_SECONDS``, ``ECOMDASH_SIM_MAX_CONCURRENT``,
``ECOMDASH_SIM_SUBSCRIPTION_KEYS`` (comma separated), ``ECOMDASH_SIM_BASE_PATH``.
"""
