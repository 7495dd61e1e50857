"""Dotcom Distribution (3PL): send shipments, poll what shipped.

The package: ``settings`` (the ``DOTCOM_*`` environment), ``client`` (signed XML over HTTP,
transport only), ``documents`` (reading Dotcom's XML answers), ``mapping`` (pure functions: hub
shipment → Dotcom order, shipped release → ``shipment:confirm``), ``handlers`` (the services).

Two services, as the classic endpoint had them:

* ``send_shipment`` takes ``shipment:ready``, maps the hub shipment to Dotcom's
  ``<orders><order>`` and POSTs it to ``{DOTCOM_API_URL}/order``.
* ``tracking`` takes ``dotcom:shipment_results:poll`` (hourly, or from the beat), GETs
  ``{DOTCOM_API_URL}/shipment?fromShipDate=&toShipDate=`` and answers one ``shipment:confirm``
  per shipped release, with the window's end as the cursor ``dotcom.last_polling_datetime``.

Numbers. Dotcom's ``order-number`` is the hub *shipment* number (``H67606710123``: 12 of the 20
characters Dotcom allows) and ``invoice-number`` is the hub *order* number (``R805661123``). A
polled ``client_order_number`` is therefore the shipment number itself; the hub order number is
recovered from what ``send_shipment`` kept when it sent the order (the classic endpoint
concatenated both numbers, 22 characters for the seed sample, and split them on the letter H).

Reading Dotcom's XML: answers are parsed with defusedxml (no entity expansion, no external
resources) and elements are found by their *local* name wherever they are, whatever the root or
the namespace (the real service wraps them in ``<response>`` with WCF namespaces). Anything that
is not the expected XML is a transient error with a clear message.
"""

from worker.integrations.dotcom.handlers import dotcom

__all__ = ["dotcom"]
