"""HTTP endpoints: ``POST /ws/token``, ``GET /ws/stats`` (JSON) and ``GET /metrics``.

``POST /ws/token`` mints a WebSocket token (:mod:`jobupdates.access.minting`) for
the logged-in user: session authentication with Django's CSRF check, so a
page on another site cannot mint one. Anonymous requests get 401, a failed
CSRF check 403, both as JSON.

The monitoring endpoints answer staff sessions, and requests bearing their configured token
(``Authorization: Bearer <token>``: ``JOBUPDATES_MONITORING_TOKEN`` for
``/ws/stats``, ``JOBUPDATES_METRICS_TOKEN`` for ``/metrics``; an empty
setting turns token access off). Everyone else, anonymous or not, gets 403.
"""

from __future__ import annotations

import hmac
import logging
import time

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.middleware.csrf import CsrfViewMiddleware
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST
from redis.exceptions import RedisError

from jobupdates import redis_client
from jobupdates.access.minting import mint
from jobupdates.conf import conf
from jobupdates.ingest.dead_letters import read_dead_letters
from jobupdates.ingest.report import read_reports
from jobupdates.monitoring import metrics
from jobupdates.monitoring.reading import read_snapshot
from jobupdates.monitoring.stats import RECENT_DEAD_LETTERS, DeadLetters, stats_document

__all__ = ["metrics_view", "ws_stats", "ws_token"]

logger = logging.getLogger(__name__)

BEARER = "Bearer "


def allowed(request: HttpRequest, token: str) -> bool:
    """Return whether ``request`` is from a staff session or bears ``token`` (if set)."""
    user = getattr(request, "user", None)
    if user is not None and user.is_active and user.is_staff:
        return True
    given = request.headers.get("Authorization", "")
    if not token or not given.startswith(BEARER):
        return False
    return hmac.compare_digest(given[len(BEARER) :].strip().encode(), token.encode())


def _forbidden() -> JsonResponse:
    return JsonResponse(
        {"error": "forbidden", "message": "staff or a valid token only"}, status=403
    )


def _unavailable(exc: Exception) -> JsonResponse:
    logger.warning("could not read the registry (%s: %s)", type(exc).__name__, exc)
    return JsonResponse(
        {"error": "registry_unavailable", "message": f"Redis: {type(exc).__name__}"}, status=503
    )


@never_cache
@require_GET
def ws_stats(request: HttpRequest) -> HttpResponse:
    """Report who is connected across every instance, and the bridge's numbers."""
    if not allowed(request, conf.MONITORING_TOKEN):
        return _forbidden()
    client = redis_client.sync_client(redis_client.Use.REGISTRY)
    try:
        snapshot = read_snapshot(client)
        reports = read_reports(client)
        letters, kept = read_dead_letters(client, conf.DEAD_LETTER_KEY, RECENT_DEAD_LETTERS)
    except (RedisError, OSError) as exc:
        return _unavailable(exc)
    finally:
        client.close()
    dead = DeadLetters(letters, kept, conf.DEAD_LETTER_SIZE)
    return JsonResponse(stats_document(snapshot, reports, time.time(), dead_letters=dead))


@never_cache
@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    """Serve every series in the Prometheus text format."""
    if not allowed(request, conf.METRICS_TOKEN):
        return _forbidden()
    client = redis_client.sync_client(redis_client.Use.REGISTRY)
    try:
        reports = read_reports(client)
    except (RedisError, OSError) as exc:
        logger.warning("/metrics without the bridge's series (%s: %s)", type(exc).__name__, exc)
        reports = []
    finally:
        client.close()
    return HttpResponse(metrics.render(reports), content_type=metrics.CONTENT_TYPE_LATEST)


def _csrf_failure(request: HttpRequest) -> HttpResponse | None:
    """Run Django's CSRF check on a view exempted from the middleware's."""
    check = CsrfViewMiddleware(lambda _request: HttpResponse())
    check.process_request(request)
    return check.process_view(request, lambda _request: HttpResponse(), (), {})


@csrf_exempt  # checked below, once the user is known: anonymous requests get JSON 401
@never_cache
@require_POST
def ws_token(request: HttpRequest) -> HttpResponse:
    """Mint a single-use WebSocket token for the logged-in user."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated or not user.is_active:
        return JsonResponse(
            {"error": "unauthenticated", "message": "log in to get a WebSocket token"}, status=401
        )
    if _csrf_failure(request) is not None:
        return JsonResponse(
            {"error": "csrf_failed", "message": "expected a valid CSRF token (X-CSRFToken)"},
            status=403,
        )
    minted = mint(user.pk, ttl=conf.TOKEN_TTL, max_ttl=conf.TOKEN_TTL)
    logger.info("minted a WebSocket token for user %s", user.pk)
    return JsonResponse(minted.as_json())
