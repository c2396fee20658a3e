"""The project's settings with channels_redis's core layer instead of the fast path.

End-to-end tests run under both, to show the component still works with a
standard channel layer.
"""

from __future__ import annotations

from botrix_site.settings import *  # noqa: F403
from botrix_site.settings import REDIS_URL

CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {"hosts": [{"address": REDIS_URL, "socket_timeout": 30}]},
    }
}
