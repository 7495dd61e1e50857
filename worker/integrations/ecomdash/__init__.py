"""ecomdash (seed 001): inventory management and marketplaces. ``send_tracking`` takes the
hub's ``shipment:confirm`` and submits the tracking with ``POST Shipments/submitTrackingInfo``,
confirmations of one account coalesced into one call (``batching``).

The package: ``settings`` (``ECOMDASH_*``), ``client`` (transport: both keys, errors naming the
wrong key), ``mapping`` (pure functions both ways), ``batching`` (the per-account queue in
Redis), ``handlers`` (the service).
"""

from worker.integrations.ecomdash.handlers import ecomdash

__all__ = ["ecomdash"]
