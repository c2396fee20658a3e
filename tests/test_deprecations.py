"""The old import paths that settings name still work for one release, with a warning.

See CHANGELOG.md, "Deprecated".
"""

from __future__ import annotations

import importlib
import re
import sys

import pytest

from jobupdates.access import permissions
from jobupdates.delivery import layers


@pytest.mark.parametrize(
    ("old", "new", "names"),
    [
        ("jobupdates.layers", layers, ["JobUpdatesChannelLayer"]),
        (
            "jobupdates.permissions",
            permissions,
            ["can_view_job", "can_view_all_jobs", "forbidden_jobs"],
        ),
    ],
)
def test_an_old_path_warns_and_gives_the_same_objects(monkeypatch, old, new, names):
    monkeypatch.delitem(sys.modules, old, raising=False)  # the warning comes on first import
    with pytest.warns(
        DeprecationWarning, match=re.escape(f"{old} is deprecated: name {new.__name__}.")
    ):
        module = importlib.import_module(old)
    for name in names:
        assert getattr(module, name) is getattr(new, name), name
    assert sorted(module.__all__) == sorted(names)
