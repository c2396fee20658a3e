"""``manage.py mint_ws_token <username> [--ttl SECONDS]``: a WebSocket token for a service."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from jobupdates.access.minting import mint
from jobupdates.conf import conf


class Command(BaseCommand):
    help = (
        "Print a single-use WebSocket token for an active user. A client offers it as the "
        "subprotocols 'jobupdates.v1, token.<token>' (Sec-WebSocket-Protocol)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username", help="The user the token authenticates as.")
        parser.add_argument(
            "--ttl",
            type=float,
            help="Seconds the token stays valid, at most JOBUPDATES_TOKEN_TTL (the default).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        username: str = options["username"]
        model = get_user_model()
        user = model._default_manager.filter(**{model.USERNAME_FIELD: username}).first()
        if user is None:
            raise CommandError(f"expected an existing user, got unknown user {username!r}")
        if not user.is_active:
            raise CommandError(f"expected an active user, got inactive user {username!r}")
        max_ttl = conf.TOKEN_TTL
        ttl = options["ttl"] if options["ttl"] is not None else max_ttl
        try:
            minted = mint(user.pk, ttl=ttl, max_ttl=max_ttl)
        except ValueError as exc:
            raise CommandError(f"--ttl: {exc} (JOBUPDATES_TOKEN_TTL)") from None
        self.stdout.write(minted.token)
