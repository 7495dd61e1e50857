"""``python -m simulators.duoplane --host 127.0.0.1 --port 8103``."""

from simulators.duoplane.app import main

main()
