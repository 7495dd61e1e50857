"""gunicorn's configuration beyond the Procfile's command line: its logs, and a control socket
of each receiver's own.

gunicorn reads ``./gunicorn.conf.py`` by default, so every way of starting the receiver from the
checkout (the Procfile, ``bin/run``, the tests) gets the same structured lines as the workers
(``worker.basics.logs``): gunicorn's error log (the master's and its workers' lines) and its access
log, one line per request, go through the root logger's handler at ``LOG_LEVEL``. An access line
gives the method, the path without its query string (a query may carry a secret), the status,
the size and the time taken, and the message it was about (for a message or event offered, what
became of it: the intake); never a request header.

gunicorn 25 and later open a control socket (for ``gunicornc``) at one path per user by default,
``$XDG_RUNTIME_DIR/gunicorn.ctl`` or ``~/.gunicorn/gunicorn.ctl``: a second gunicorn on the host
takes the first one's path, and stopping either deletes the socket the other is serving. Each
receiver gets its own instead, named after the address it listens on, in the same directory
(``~/.gunicorn/shiphub-127.0.0.1-8000.ctl``): ``gunicornc -s <that path>`` reaches that receiver's
master. A ``--control-socket`` or ``--no-control-socket`` given to gunicorn is kept.
"""

from __future__ import annotations

import logging
import os
import re
from datetime import timedelta
from typing import Any

from gunicorn import glogging

from worker.basics import logs


class StructuredLogger(glogging.Logger):
    """gunicorn's logger class, writing through ``worker.basics.logs`` instead of its own
    handlers."""

    def setup(self, cfg: Any) -> None:
        self.cfg = cfg
        self._access_log_enabled = True
        logs.configure()
        for logger in (self.error_log, self.access_log):
            for handler in list(logger.handlers):
                logger.removeHandler(handler)
            logger.setLevel(logging.NOTSET)  # LOG_LEVEL, on the root logger, decides
            logger.propagate = True

    def access(self, resp: Any, req: Any, environ: dict[str, Any], request_time: timedelta) -> None:
        status = resp.status.split(None, 1)[0] if isinstance(resp.status, str) else resp.status
        method, path = environ.get("REQUEST_METHOD", "-"), environ.get("PATH_INFO", "-")
        duration_ms = round(request_time.total_seconds() * 1000, 1)
        # A message or event offered: what became of it rides on this line (``endpoint.app``).
        level, words, intake = environ.get(logs.INTAKE_ENVIRON, (logging.INFO, "", {}))
        try:
            self.access_log.log(
                level,
                "%s %s %s in %s ms%s",
                method,
                path,
                status,
                duration_ms,
                f": {words}" if words else "",
                extra={
                    **intake,
                    "method": method,
                    "path": path,
                    "status": int(status),
                    "bytes": getattr(resp, "sent", None),
                    "duration_ms": duration_ms,
                    "remote_addr": environ.get("REMOTE_ADDR"),
                },
            )
        finally:
            logs.clear()  # this greenlet may serve the connection's next request


# gunicorn reads every name of this module that is a setting's name as that setting: helpers are
# named otherwise (``own_control_socket``, not ``control_socket``).


def own_control_socket(default: str, addresses: list[Any]) -> str:
    """This receiver's control socket: gunicorn's default directory, a name of its own made from
    the addresses it listens on (only one gunicorn can listen on an address)."""
    listens_on = "_".join(
        "-".join(map(str, address)) if isinstance(address, tuple) else str(address)
        for address in addresses
    )
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", listens_on).strip("-") or str(os.getpid())
    return os.path.join(os.path.dirname(default), f"shiphub-{name}.ctl")


def on_starting(server: Any) -> None:
    """gunicorn's hook before it listens and starts its control socket: the socket's path, if
    the command line left gunicorn's one-per-user default."""
    cfg = server.cfg
    if "control_socket" not in cfg.settings:  # gunicorn before 25: no control socket
        return
    if cfg.control_socket == cfg.settings["control_socket"].default:
        cfg.set("control_socket", own_control_socket(cfg.control_socket, cfg.address))


logger_class = StructuredLogger
