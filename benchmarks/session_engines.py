"""What a handshake's session lookup costs with each ``SESSION_ENGINE``.

``python -m benchmarks.session_engines [--sessions N]``: for each engine,
N sessions of the bench user are saved through the engine, then looked up
the way ``/ws`` does (:func:`jobupdates.access.sessions.session_user`:
the session, then the user row and the session hash check), one after
another, in this process. Reported per lookup: wall time and this process's
CPU time (Redis's is not counted). SQLite in a temporary file and a
throwaway ``redis-server``, as ``make bench`` uses.

``cached_db`` is measured twice: with the cache warm (the sessions were
saved through it, as a long-running site's are), and cold (the cache was
emptied first: a shared cache that lost its data, or a per-process cache
after a deploy, where every lookup reads the database and fills the cache).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.targets import USER, prepare_database
from botrix_site.redis_server import RedisServer
from harness.processes import child_env

ENGINES = [
    ("db", "django.contrib.sessions.backends.db", False),
    ("cached_db, warm", "django.contrib.sessions.backends.cached_db", False),
    ("cached_db, cold", "django.contrib.sessions.backends.cached_db", True),
    ("cache (Redis)", "django.contrib.sessions.backends.cache", False),
    ("signed_cookies", "django.contrib.sessions.backends.signed_cookies", False),
]
"""Label, engine, whether the cache is emptied before the lookups."""


def measure(engine: str, *, cold: bool, count: int) -> dict[str, float]:
    """Save ``count`` sessions with ``engine``, look each up once; return us per lookup."""
    from importlib import import_module

    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.auth.models import User
    from django.core.cache import cache

    from jobupdates.access.sessions import session_user

    user = User.objects.get(username=USER[0])
    store_class: Any = import_module(engine).SessionStore
    keys = []
    for _ in range(count):
        store = store_class()
        store[SESSION_KEY] = str(user.pk)
        store[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
        store[HASH_SESSION_KEY] = user.get_session_auth_hash()
        store.save()
        keys.append(store.session_key)
    if cold:
        cache.clear()
    wall, cpu = time.perf_counter(), time.process_time()
    for key in keys:
        found = session_user(key)
        if found.pk != user.pk:
            raise RuntimeError(f"{engine}: expected the bench user, got {found!r}")
    return {
        "wall_us": (time.perf_counter() - wall) / count * 1e6,
        "cpu_us": (time.process_time() - cpu) / count * 1e6,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=2000)
    args = parser.parse_args()
    redis = RedisServer().start()
    try:
        with tempfile.TemporaryDirectory(prefix="bench-sessions-") as directory:
            os.environ.update(
                child_env(DATABASE_URL=prepare_database(Path(directory)), REDIS_URL=redis.url)
            )
            import django
            from django.test.utils import override_settings

            django.setup()
            caches = {
                "default": {
                    "BACKEND": "django.core.cache.backends.redis.RedisCache",
                    "LOCATION": redis.url,
                }
            }
            print("| SESSION_ENGINE | wall us per lookup | CPU us per lookup |")
            print("| --- | ---: | ---: |")
            for label, engine, cold in ENGINES:
                with override_settings(SESSION_ENGINE=engine, CACHES=caches):
                    result = measure(engine, cold=cold, count=args.sessions)
                print(f"| {label} | {result['wall_us']:.0f} | {result['cpu_us']:.0f} |")
    finally:
        redis.stop()


if __name__ == "__main__":
    main()
