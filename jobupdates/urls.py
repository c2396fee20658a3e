"""HTTP routes of the app: monitoring endpoints (include with ``path("", include(...))``)."""

from __future__ import annotations

from django.urls import path

from jobupdates import views

urlpatterns = [
    path("ws/stats", views.ws_stats, name="jobupdates-stats"),
    path("metrics", views.metrics_view, name="jobupdates-metrics"),
]
