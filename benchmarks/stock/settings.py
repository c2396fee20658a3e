"""Settings of the stock target: the project's, with the tutorial's core Redis layer.

``socket_timeout`` is explicit: redis-py 8's 5 s default kills the core
layer's 5 s blocking receive (channels_redis#422).
"""

from __future__ import annotations

from botrix_site.settings import *  # noqa: F403
from botrix_site.settings import REDIS_URL

ASGI_APPLICATION = "benchmarks.stock.asgi.application"

CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {"hosts": [{"address": REDIS_URL, "socket_timeout": 30}]},
    },
}
