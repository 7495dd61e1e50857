"""The Shipping Order API (seed 002, the Delivery Solutions API): multi-provider delivery
orchestration. Shipments are sent as shipping orders (``orderExternalId`` = the hub shipment
number), placed by the API with the delivery provider its orchestration rules choose, and
tracked through their lifecycle by webhook (``POST /webhooks/shipping_orders``, signed with
``X-DS-Signature``) and by poll, each status reported to the hub once, in the canonical status
model (``worker.hub.status``).

The package: ``settings`` (``SHIPPING_ORDERS_*``), ``client`` (JSON over HTTP, errors by the
API's type and severity), ``mapping`` (pure functions both ways), ``handlers`` (the services
and the webhook).
"""

from worker.integrations.shipping_orders.handlers import shipping_orders

__all__ = ["shipping_orders"]
