"""``python -m simulators.dotcom --host 127.0.0.1 --port 8101``."""

from simulators.dotcom.app import main

main()
