"""App configuration: registers the system checks and the revocation signals."""

from __future__ import annotations

from django.apps import AppConfig
from django.core import checks


class JobUpdatesConfig(AppConfig):
    """The ``jobupdates`` Django app."""

    name = "jobupdates"
    verbose_name = "Job updates"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from jobupdates.access import signals
        from jobupdates.checks import (
            check_channel_layer,
            check_internals,
            check_monitoring,
            check_origins,
            check_revocation,
            check_settings,
        )

        checks.register(check_settings)
        checks.register(check_origins)
        checks.register(check_channel_layer)
        checks.register(check_monitoring)
        checks.register(check_revocation)
        checks.register(check_internals)
        signals.connect()
