"""docs/protocol.md cannot drift from jobupdates/protocol/.

Every error code, close code, message type and reset reason the code defines
has its row in the matching section of the document, and every row there
names one that exists.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from jobupdates.protocol import ClientMessageType, CloseCode, ErrorCode, ServerMessageType
from jobupdates.protocol.positions import ResetReason

PROTOCOL = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"
CODE_ROW = re.compile(r"^\| `([a-z_]+)` \|", re.MULTILINE)
CLOSE_ROW = re.compile(r"^\| (\d{4}) \|", re.MULTILINE)
FRAME_TYPE = re.compile(r"^\| `\{\"type\":\"([a-z_]+)\"", re.MULTILINE)


def section(title: str) -> str:
    """The text of the ``## title`` section, up to the next ``## `` heading."""
    text = PROTOCOL.read_text()
    found = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", text, re.MULTILINE | re.DOTALL)
    assert found, f"expected a '## {title}' section in {PROTOCOL.name}"
    return found.group(1)


def rows(pattern: re.Pattern[str], title: str) -> list[str]:
    found = pattern.findall(section(title))
    assert len(found) == len(set(found)), f"expected no repeated row in '{title}': {found}"
    return found


@pytest.mark.parametrize(
    ("title", "pattern", "expected"),
    [
        ("Error codes", CODE_ROW, {c.value for c in ErrorCode}),
        ("Close codes", CLOSE_ROW, {str(c.value) for c in CloseCode}),
        ("Server → client", FRAME_TYPE, {t.value for t in ServerMessageType}),
        ("Client → server", FRAME_TYPE, {t.value for t in ClientMessageType}),
        ("Resuming", CODE_ROW, {r.value for r in ResetReason}),
    ],
    ids=["error-codes", "close-codes", "server-frames", "client-frames", "reset-reasons"],
)
def test_every_value_has_a_row_and_every_row_a_value(title, pattern, expected):
    documented = set(rows(pattern, title))
    if title == "Close codes":
        documented.discard("1006")  # the browser's abnormal closure, sent by no one
    assert expected - documented == set(), f"undocumented in '{title}'"
    assert documented - expected == set(), f"documented in '{title}' but not in the code"
