"""Spectrum (seed 004): a product customizer. A confirmed shipment's tracking numbers are sent
to Spectrum as one ship notification (``POST {SPECTRUM_API_URL}/api/order/ship-notification``,
token in the ``SPECTRUM_API_TOKEN`` header), per purchase order and recipe set, once per
shipment, paced under Spectrum's rate limit (it answers 403 past it).

The package: ``settings`` (``SPECTRUM_*``), ``client`` (JSON over HTTP, Spectrum's 403/404/409
sorted out), ``mapping`` (pure functions, hub shipment to notification), ``handlers`` (the
``send_tracking`` service).
"""

from worker.integrations.spectrum.handlers import spectrum

__all__ = ["spectrum"]
