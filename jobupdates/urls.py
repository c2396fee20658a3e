"""HTTP routes of the app: token minting and monitoring.

Include them with ``path("", include("jobupdates.urls"))``.
"""

from __future__ import annotations

from django.urls import path

from jobupdates import views

urlpatterns = [
    path("ws/token", views.ws_token, name="jobupdates-token"),
    path("ws/stats", views.ws_stats, name="jobupdates-stats"),
    path("metrics", views.metrics_view, name="jobupdates-metrics"),
]
