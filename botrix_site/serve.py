"""Start Daphne with the project's production flags.

``python -m botrix_site.serve [--host 127.0.0.1] [--port 8000] [daphne options...]``

Every place the project starts Daphne (``make run``, the tests, ``docker/``)
goes through :func:`daphne_argv`, so keepalive and backlog are the same
everywhere:

* ``--ping-interval 30``: ping a client that has sent nothing for 30 s;
* ``--ping-timeout 60``: drop it if the pong does not come within 60 s, so a
  dead client is gone within about 90 s (checks run every 2 s);
* ``--websocket_timeout -1``: an idle client that answers pings stays
  connected indefinitely (Daphne's default closes every socket after 24 h);
* ``backlog=4096``: Twisted's default listen backlog of 50 overflows on ramps.
"""

from __future__ import annotations

import argparse
import sys

PING_INTERVAL = 30
PING_TIMEOUT = 60
BACKLOG = 4096
APPLICATION = "botrix_site.asgi:application"


def daphne_argv(host: str, port: int, *extra: str) -> list[str]:
    """Return Daphne's command-line arguments for the project."""
    return [
        "-e",
        f"tcp:port={port}:interface={host}:backlog={BACKLOG}",
        "--ping-interval",
        str(PING_INTERVAL),
        "--ping-timeout",
        str(PING_TIMEOUT),
        "--websocket_timeout",
        "-1",
        *extra,
        APPLICATION,
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000, help="0 picks a free port (it is logged)")
    args, extra = parser.parse_known_args(argv)
    from daphne.cli import CommandLineInterface

    CommandLineInterface().run(daphne_argv(args.host, args.port, *extra))


if __name__ == "__main__":
    main(sys.argv[1:])
