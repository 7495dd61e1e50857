"""Duoplane (seed 003, dropship): tracking numbers sent to purchase orders as shipments, and the
shipments vendors enter polled back as ``shipment:confirm``.

The package: ``settings`` (``DUOPLANE_*``), ``client`` (JSON over HTTP Basic, paced by
Duoplane's leaky bucket), ``mapping`` (pure functions both ways), ``handlers`` (the services).
"""

from worker.integrations.duoplane.handlers import duoplane

__all__ = ["duoplane"]
