"""``python -m simulators.shipping_orders --host 127.0.0.1 --port 8102``."""

from simulators.shipping_orders.app import main

main()
