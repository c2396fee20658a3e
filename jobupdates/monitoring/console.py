"""The staff console: a live view of the job-updates feed, and a simulator.

Two views, both for staff only:

* :func:`console` (``/console/``) renders the page; its script,
  ``jobupdates/console.js``, drives ``jobupdates/jobupdates.js`` over ``/ws``.
  Anyone who is not logged in as staff is redirected to the admin login.
* :func:`simulate` (``POST /console/simulate``) PUBLISHes one update on
  ``JOBUPDATES_CHANNEL`` exactly as a worker does, so it runs the whole path:
  Redis, the bridge, Daphne, the page. The payload is built and checked by
  :func:`jobupdates.protocol.publishing.build_payload`, which runs the bridge's own
  parser (:func:`jobupdates.protocol.parse_job_update`): what the bridge would
  reject gets a 400 with the reason, and is not published.

Include it from the project's URLconf: ``path("", include("jobupdates.monitoring.console"))``.
"""

from __future__ import annotations

import logging
from typing import Any

import redis
from django.contrib.admin.views.decorators import staff_member_required
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import path
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect, ensure_csrf_cookie
from django.views.decorators.http import require_POST, require_safe

from jobupdates import redis_client
from jobupdates.conf import conf
from jobupdates.protocol.logs import loggable
from jobupdates.protocol.publishing import PublishError, build_payload, parse_data
from jobupdates.redis_url import redact_url

__all__ = ["app_name", "console", "simulate", "urlpatterns"]

logger = logging.getLogger(__name__)

ADMIN_CLIENTS_URL = "/admin/jobupdates/connectedclient/"
STATS_URL = "/ws/stats"


@never_cache
@ensure_csrf_cookie
@staff_member_required
@require_safe
def console(request: HttpRequest) -> HttpResponse:
    """Render the console page.

    Args:
        request: A GET from a logged-in staff user (others are redirected to
            the admin login by ``staff_member_required``).

    Returns:
        The page, with the configured statuses for the simulate form.
    """
    context: dict[str, Any] = {
        "statuses": conf.STATUSES,
        "channel": conf.CHANNEL,
        "admin_clients_url": ADMIN_CLIENTS_URL,
        "stats_url": STATS_URL,
    }
    return render(request, "jobupdates/console.html", context)


def _refusal(status: int, error: str, message: str) -> JsonResponse:
    return JsonResponse({"ok": False, "error": error, "message": message}, status=status)


@csrf_protect
@require_POST
def simulate(request: HttpRequest) -> JsonResponse:
    """PUBLISH one job update on the updates channel, as a worker does.

    Form fields: ``job_id``, ``status`` (one of ``JOBUPDATES_STATUSES``) and
    ``data`` (optional JSON text; empty means ``null``). The request must
    carry Django's CSRF token.

    Args:
        request: A POST from a logged-in staff user.

    Returns:
        200 with ``{"ok": true, "payload": ..., "receivers": n}``, where
        ``receivers`` is how many Redis subscribers (bridges) got it; 400 with
        ``{"ok": false, "error": "invalid", "message": ...}`` for input the
        bridge would reject; 403 for anyone but staff; 503 when Redis cannot
        be reached.
    """
    user = request.user
    if not (user.is_authenticated and user.is_active and user.is_staff):
        return _refusal(403, "forbidden", "expected a logged-in staff user")
    data_text = request.POST.get("data", "").strip()
    try:
        data = parse_data(data_text or None, label="data")
        payload = build_payload(
            request.POST.get("job_id", ""),
            request.POST.get("status", ""),
            data,
            statuses=conf.STATUSES,
            max_bytes=conf.MAX_PAYLOAD_BYTES,
        )
        url, channel = conf.REDIS_URL, conf.CHANNEL
    except (PublishError, ImproperlyConfigured) as exc:
        return _refusal(400, "invalid", str(exc))
    client = redis_client.sync_client(redis_client.Use.INTERACTIVE, url)
    try:
        receivers = int(client.publish(channel, payload))
    except (redis.RedisError, OSError) as exc:
        logger.warning("console simulate: cannot reach Redis at %s: %s", redact_url(url), exc)
        return _refusal(503, "redis_unavailable", f"cannot reach Redis: {type(exc).__name__}")
    finally:
        client.close()
    logger.info(
        "console simulate by %s: published %s on %r (%d receiver(s))",
        loggable(user.get_username()),
        loggable(payload.decode()),
        channel,
        receivers,
    )
    return JsonResponse({"ok": True, "payload": payload.decode(), "receivers": receivers})


app_name = "console"
urlpatterns = [
    path("console/", console, name="index"),
    path("console/simulate", simulate, name="simulate"),
]
