"""``python -m simulators.ecomdash --host 127.0.0.1 --port 8101``."""

from simulators.ecomdash.app import main

main()
