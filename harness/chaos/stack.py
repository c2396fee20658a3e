"""The chaos run's deployment: one persistent Redis, two bridges, two servers.

Started the documented way: ``RedisServer(persistent=True)`` (an append-only
file, so :meth:`Stack.restart_redis` keeps the data), a migrated SQLite
database, two ``manage.py run_bridge`` (the first active, the second a standby)
and two ``python -m botrix_site.serve`` on fixed ports, so a restarted server
comes back where it was. Every setting is the default one.

The per-user limit (``JOBUPDATES_MAX_CONNECTIONS_PER_USER``, 20 per server
process) is kept: the clients log in as several staff users, at most
:data:`CLIENTS_PER_USER` each, so even all of them on one server stay under it.

Every process ever started is kept with its output, for :meth:`Stack.write_logs`.
"""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

from botrix_site.redis_server import RedisServer, free_port
from harness.clients import login
from harness.processes import (
    Process,
    child_env,
    migrated_database,
    start_bridge,
    start_daphne,
)

CLIENTS_PER_USER = 10
"""Clients sharing one user: half of the per-user limit per server process (20)."""
PASSWORD = "chaos-password-1"  # noqa: S105 (a throwaway database's users)
ROLE = r"is now the active bridge|is now a standby|released the lease"
"""A bridge's log line when its role changes."""
ACTIVE = "is now the active bridge"


class Stack:
    """Redis, two bridges and two servers; the nemesis's handles on them."""

    def __init__(self, directory: Path, clients: int) -> None:
        """Args:
        directory: Where the database goes.
        clients: How many clients will connect (to make enough users).
        """
        self.directory = directory
        self.users = [f"chaos-{i}" for i in range(-(-clients // CLIENTS_PER_USER))]
        self.redis = RedisServer(persistent=True)
        first = free_port()
        second = free_port()
        while second == first:
            second = free_port()
        self.ports = [first, second]
        self.env: dict[str, str] = {}
        self.bridges: list[Process] = []
        """The bridges that should be running (one may be SIGSTOPped)."""
        self.servers: dict[int, Process] = {}
        self.started: list[tuple[str, Process]] = []
        """Every process ever started, with its name in the run directory."""
        self.stopped: set[Process] = set()
        """Bridges SIGSTOPped and not yet continued."""
        self.cookies: list[str] = []
        self._lock = threading.Lock()

    def start(self) -> None:
        """Start everything; return once both bridges and both servers are ready."""
        self.redis.start()
        users = "; ".join(
            f"User.objects.create_user({user!r}, password={PASSWORD!r}, is_staff=True)"
            for user in self.users
        )
        database = migrated_database(
            self.directory / "db.sqlite3", f"from django.contrib.auth.models import User; {users}"
        )
        self.env = child_env(REDIS_URL=self.redis.url, DATABASE_URL=database)
        for port in self.ports:
            self.start_server(port)
        self._add_bridge(start_bridge(self.env, active=True))
        standby = self._add_bridge(start_bridge(self.env, active=False))
        standby.wait_for(r"-> subscribed: .* as a standby")
        self.cookies = [login(self.ports[0], user, PASSWORD) for user in self.users]

    def cookie(self, client: int) -> str:
        """The session cookie of the user that client number ``client`` logs in as."""
        return self.cookies[client // CLIENTS_PER_USER]

    def _name(self, kind: str) -> str:
        count = sum(1 for name, _ in self.started if name.startswith(kind))
        return f"{kind}-{count + 1}"

    def _add_bridge(self, process: Process) -> Process:
        with self._lock:
            process.name = self._name("bridge")
            self.started.append((process.name, process))
            self.bridges.append(process)
        return process

    def start_server(self, port: int, attempts: int = 3) -> Process:
        """Start a server on ``port``; return once it listens (tried ``attempts`` times)."""
        for attempt in range(1, attempts + 1):
            name = self._name(f"server-{port}")
            try:
                process, _ = start_daphne(self.env, port=port, name=name)
            except AssertionError:
                if attempt == attempts:
                    raise
                time.sleep(1.0)
                continue
            with self._lock:
                self.started.append((name, process))
                self.servers[port] = process
            return process
        raise AssertionError("unreachable")

    def start_standby(self) -> Process:
        """Start a replacement bridge, as a standby; return once it is subscribed."""
        return self._add_bridge(start_bridge(self.env, active=False))

    def forget_bridge(self, process: Process) -> None:
        with self._lock:
            self.bridges.remove(process)

    def pause(self, process: Process) -> None:
        process.signal(signal.SIGSTOP)
        self.stopped.add(process)

    def resume(self, process: Process) -> None:
        process.signal(signal.SIGCONT)
        self.stopped.discard(process)

    def active_bridges(self) -> list[Process]:
        """The running bridges whose last role line says active."""
        active = []
        for process in self.bridges:
            roles = process.matching(ROLE)
            if process.running and roles and ACTIVE in roles[-1]:
                active.append(process)
        return active

    def wait_for_one_active(self, timeout: float = 20.0) -> None:
        """Block until exactly one running bridge says it is the active one."""
        deadline = time.monotonic() + timeout
        while len(self.active_bridges()) != 1:
            if time.monotonic() > deadline:
                roles = {p.name: (p.matching(ROLE) or ["-"])[-1] for p in self.bridges}
                raise AssertionError(f"expected one active bridge within {timeout}s: {roles}")
            time.sleep(0.1)

    def marks(self) -> dict[Process, int]:
        """Every running process's next line index (to wait for lines after now)."""
        return {p: p.mark() for p in [*self.bridges, *self.servers.values()] if p.running}

    def stop(self) -> None:
        """Stop every process and Redis (continuing any stopped bridge first)."""
        for process in list(self.stopped):
            self.resume(process)
        for _, process in self.started:
            if process.running:
                process.stop(timeout=30)
        self.redis.stop()

    def write_logs(self, directory: Path) -> None:
        """Write every process's whole output to ``directory``: ``<name>.log``."""
        directory.mkdir(parents=True, exist_ok=True)
        for name, process in self.started:
            lines = list(process.lines)  # a copy: its thread may still append
            code = process.popen.poll()
            footer = f"# exit code {code}" if code is not None else "# still running"
            (directory / f"{name}.log").write_text("\n".join([*lines, footer, ""]))
        (directory / "redis.log").write_text("".join(self.redis.output))
