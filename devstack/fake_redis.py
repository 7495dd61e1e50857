"""Fallback Redis for ``bin/run`` where no redis-server can be had: fakeredis over TCP.

It keeps nothing on disk (no AOF): fine for a demo, never for production.
"""

from __future__ import annotations

import argparse

from fakeredis import TcpFakeServer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=6390)
    args = parser.parse_args()
    server = TcpFakeServer((args.host, args.port), server_type="redis")
    try:
        server.serve_forever()
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
