"""Which permessage-deflate offers the server accepts, and what it answers."""

from __future__ import annotations

import pytest
from autobahn.websocket.compress import PerMessageDeflateOffer

from jobupdates.delivery.compression import accept_offers

BOTH = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"


def offer(*params: tuple[str, list[str | bool]]) -> PerMessageDeflateOffer:
    return PerMessageDeflateOffer.parse(dict(params))


@pytest.mark.parametrize(
    "params",
    [
        (),  # websockets, and most clients
        (("client_max_window_bits", [True]),),  # browsers
        (("server_no_context_takeover", [True]),),
        (("server_max_window_bits", ["15"]),),
    ],
)
def test_an_offer_is_answered_with_no_context_takeover_both_ways(params):
    accept = accept_offers([offer(*params)])
    assert accept is not None
    answer = accept.get_extension_string()
    parts = answer.split("; ")
    assert parts[0] == "permessage-deflate", answer
    assert set(BOTH.split("; ")) <= set(parts), answer
    assert len(parts) == len(set(parts)), answer


def test_an_offer_asking_for_a_smaller_server_window_is_declined():
    small = offer(("server_max_window_bits", ["10"]))
    assert accept_offers([small]) is None
    accept = accept_offers([small, offer()])
    assert accept is not None, "expected the client's next offer accepted"
    assert "server_max_window_bits" not in accept.get_extension_string()


def test_other_extensions_are_not_accepted():
    assert accept_offers([object()]) is None
    assert accept_offers([]) is None
