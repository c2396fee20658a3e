"""HTTP routes of the botrix_site project."""

from __future__ import annotations

from django.contrib import admin
from django.urls import include, path
from django.views.generic import TemplateView

urlpatterns = [
    path("", TemplateView.as_view(template_name="index.html"), name="index"),
    path("admin/", admin.site.urls),
    path("", include("jobupdates.monitoring.console")),  # /console/: the staff console
    path("", include("jobupdates.urls")),  # /ws/stats and /metrics
]
