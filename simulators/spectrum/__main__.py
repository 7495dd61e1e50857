"""``python -m simulators.spectrum --host 127.0.0.1 --port 8104``."""

from simulators.spectrum.app import main

main()
