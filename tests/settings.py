"""Settings for the test process: the project's, made safe to test with.

The test process itself never talks to a Redis it did not start: the
channel layer is in memory, and ``REDIS_URL`` points at a port nothing
listens on. Tests that need Redis start their own (``tests/conftest.py``)
and pass its URL to the processes they start.
"""

from __future__ import annotations

import os

for _name in [n for n in os.environ if n.startswith("JOBUPDATES_")]:
    del os.environ[_name]  # a developer's environment must not change what the tests see
os.environ.setdefault("DJANGO_SECRET_KEY", "tests-only-secret-key")
os.environ["REDIS_URL"] = "redis://127.0.0.1:9/0"  # discard port: never a real Redis

from botrix_site.settings import *  # noqa: E402, F403

CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
