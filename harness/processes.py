"""The project's real processes: Daphne, run_bridge, management commands, and their logs.

Each :class:`Process` collects its output line by line in a thread, and
:meth:`Process.wait_for` blocks until a line matches, so tests and benchmarks
wait on what a process says rather than on fixed sleeps.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LISTENING = r"Listening on TCP address 127\.0\.0\.1:(\d+)"
"""Daphne's line once it listens; group 1 is the port."""


def _as_from_a_terminal() -> None:
    """Let the child take SIGINT as when started from a terminal.

    A shell without job control (CI, ``cmd &``) starts background commands
    with SIGINT ignored, and their children inherit that: Python then installs
    no handler for it, and neither does Twisted, so a SIGINT test would test
    nothing but the inheritance.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Process:
    """A child process whose merged stdout/stderr is kept and searchable."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        self.name = name
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._ended = False
        """Whether every line is collected (end of the output, not just the exit)."""
        self.popen = subprocess.Popen(
            argv,
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            preexec_fn=_as_from_a_terminal,
        )
        threading.Thread(target=self._collect, daemon=True).start()

    def _collect(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._ended = True
            self._changed.notify_all()

    def mark(self) -> int:
        """Return the index of the next line, to wait for lines after this point."""
        with self._changed:
            return len(self.lines)

    def wait_for(self, pattern: str, *, after: int = 0, timeout: float = 20.0) -> re.Match[str]:
        """Block until a line at index >= ``after`` matches ``pattern``; return the match."""
        return self.wait_for_count(pattern, 1, after=after, timeout=timeout)[0]

    def wait_for_count(
        self, pattern: str, count: int, *, after: int = 0, timeout: float = 20.0
    ) -> list[re.Match[str]]:
        """Block until ``count`` lines at index >= ``after`` match ``pattern``; return
        their matches. Fails at the timeout, or once the output ended without them
        (after the exit, the lines still in the pipe are collected first)."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        found: list[re.Match[str]] = []
        seen = after
        with self._changed:
            while True:
                for line in self.lines[seen:]:
                    match = regex.search(line)
                    if match:
                        found.append(match)
                        if len(found) == count:
                            return found
                seen = max(seen, len(self.lines))
                left = deadline - time.monotonic()
                if left <= 0 or self._ended:
                    raise AssertionError(
                        f"{self.name}: expected {count} line(s) matching {pattern!r} within"
                        f" {timeout}s, got {len(found)} (exit code {self.popen.poll()});"
                        f" output:\n{self.output()}"
                    )
                self._changed.wait(min(left, 0.5))

    def matching(self, pattern: str, *, after: int = 0) -> list[str]:
        """The lines at index >= ``after`` that match ``pattern``."""
        regex = re.compile(pattern)
        with self._changed:
            return [line for line in self.lines[after:] if regex.search(line)]

    def output(self) -> str:
        with self._changed:
            return "\n".join(self.lines[-200:])

    @property
    def running(self) -> bool:
        return self.popen.poll() is None

    def signal(self, signum: int) -> None:
        self.popen.send_signal(signum)

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM, then wait; SIGKILL if it does not exit in time. Return the exit code."""
        if self.running:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        return self.popen.returncode

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        self.popen.kill()
        self.popen.wait()


def child_env(**overrides: str) -> dict[str, str]:
    """The environment of a project process: production settings, no stray JOBUPDATES_*."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JOBUPDATES_", "DJANGO_"))}
    env.update(
        DJANGO_SETTINGS_MODULE="botrix_site.settings",
        DJANGO_SECRET_KEY="e2e-secret-key",  # noqa: S106 (throwaway processes)
        DJANGO_ALLOWED_HOSTS="127.0.0.1,localhost",
        PYTHONUNBUFFERED="1",
    )
    env.update(overrides)
    return env


def start_daphne(
    env: dict[str, str], *extra: str, port: int = 0, name: str = "daphne"
) -> tuple[Process, int]:
    """Start Daphne as the project does (``python -m botrix_site.serve``); return it,
    once it listens, and its port.

    Args:
        env: The process environment (:func:`child_env`).
        extra: Daphne options after the project's, where a later flag wins
            (``"--ping-interval", "1"``).
        port: 0 for a free port; a given one to start again where a stopped one was.
        name: The name in the process's failure messages.
    """
    argv = [sys.executable, "-m", "botrix_site.serve", "--port", str(port), *extra]
    process = Process(name, argv, env)
    try:
        listening = process.wait_for(LISTENING)
    except BaseException:
        process.stop()
        raise
    return process, int(listening.group(1))


def start_bridge(env: dict[str, str], *, active: bool = True, timeout: float = 20.0) -> Process:
    """Start ``manage.py run_bridge``; return once it is subscribed (and active, if asked).

    A bridge restarted after a kill -9 becomes active only once the dead
    one's lease expires (JOBUPDATES_BRIDGE_LEASE_TTL).
    """
    process = Process("bridge", [sys.executable, "manage.py", "run_bridge"], env)
    process.wait_for(r"-> subscribed", timeout=timeout)
    if active:
        process.wait_for(r"is now the active bridge", timeout=timeout)
    return process


def run_manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """Run a management command to completion, whatever its exit status."""
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def manage(env: dict[str, str], *args: str) -> str:
    """Run a management command to completion and return its output; fail if it fails."""
    result = run_manage(env, *args)
    assert result.returncode == 0, (
        f"manage.py {' '.join(args)} failed:\n{result.stdout}{result.stderr}"
    )
    return result.stdout


def session_cookie(env: dict[str, str], username: str) -> str:
    """Create a session for ``username`` in the database (the admin login refuses non-staff)."""
    code = (
        "from django.contrib.auth.models import User;"
        "from django.contrib.sessions.backends.db import SessionStore;"
        f"u = User.objects.get(username={username!r}); s = SessionStore();"
        "s['_auth_user_id'] = str(u.pk);"
        "s['_auth_user_backend'] = 'django.contrib.auth.backends.ModelBackend';"
        "s['_auth_user_hash'] = u.get_session_auth_hash(); s.create(); print(s.session_key)"
    )
    return f"sessionid={manage(env, 'shell', '-c', code).split()[-1]}"


def migrated_database(path: Path, setup: str) -> str:
    """Migrate a new SQLite database at ``path``, run ``setup`` in ``manage.py shell``;
    return its ``DATABASE_URL``."""
    url = f"sqlite:///{path}"
    env = child_env(DATABASE_URL=url)
    manage(env, "migrate", "--verbosity", "0")
    manage(env, "shell", "-c", setup)
    return url
