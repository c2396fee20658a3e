"""Start Daphne with the project's production flags, draining on SIGTERM and SIGINT.

``python -m botrix_site.serve [--host 127.0.0.1] [--port 8000 | --fd 0] [daphne options...]``

Every place the project starts Daphne (``make run``, the tests, ``docker/``)
runs this module, so keepalive, backlog and the drain are the same
everywhere. Its flags come from :func:`daphne_argv`:

* ``--ping-interval 30``: ping a client that has sent nothing for 30 s;
* ``--ping-timeout 60``: drop it if the pong does not come within 60 s, so a
  dead client is gone within about 90 s (checks run every 2 s);
* ``--websocket_timeout -1``: an idle client that answers pings stays
  connected indefinitely (Daphne's default closes every socket after 24 h);
* ``backlog=4096``: Twisted's default listen backlog of 50 overflows on ramps;
* ``--fd N`` (a socket opened by the process manager, as supervisor's
  ``fcgi-program`` does) replaces the TCP endpoint; its backlog is the manager's.

It serves with :class:`jobupdates.delivery.drain_server.DrainingServer`: on SIGTERM or
SIGINT it stops listening and closes each WebSocket client with
``server_restarting`` and 1012, spread over ``JOBUPDATES_DRAIN_SECONDS``.
"""

from __future__ import annotations

import argparse
import sys

PING_INTERVAL = 30
PING_TIMEOUT = 60
BACKLOG = 4096
APPLICATION = "botrix_site.asgi:application"


CONNECT_TIMEOUT = 10
"""Seconds Daphne gives the application to accept (its default, 5, is the first to go
in a reconnect storm: docs/performance.md); jobupdates.js gives up after 10 s too."""


def daphne_argv(host: str, port: int, *extra: str, fd: int | None = None) -> list[str]:
    """Return Daphne's command-line arguments for the project (``fd``: listen on that
    inherited socket instead of ``host:port``)."""
    endpoint = (
        ["--fd", str(fd)]
        if fd is not None
        else ["-e", f"tcp:port={port}:interface={host}:backlog={BACKLOG}"]
    )
    return [
        *endpoint,
        "--ping-interval",
        str(PING_INTERVAL),
        "--ping-timeout",
        str(PING_TIMEOUT),
        "--websocket_timeout",
        "-1",
        "--websocket_connect_timeout",
        str(CONNECT_TIMEOUT),
        *extra,
        APPLICATION,
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000, help="0 picks a free port (it is logged)")
    parser.add_argument("--fd", type=int, help="listen on this inherited socket instead")
    args, extra = parser.parse_known_args(argv)
    from jobupdates.delivery.drain_server import DrainingCommandLineInterface

    DrainingCommandLineInterface().run(daphne_argv(args.host, args.port, *extra, fd=args.fd))


if __name__ == "__main__":
    main(sys.argv[1:])
