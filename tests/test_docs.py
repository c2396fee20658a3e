"""The documentation cannot drift from the code.

* ``docs/configuration.md`` lists every setting of :class:`jobupdates.conf.Settings`
  with its default, and every system check id of ``jobupdates/checks.py``,
  and nothing that no longer exists;
* README.md links every document, and every relative link in the docs resolves.

The shell snippets themselves are run by ``tests/e2e/test_doc_snippets.py``.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from jobupdates.conf import SETTING_NAMES, Settings

ROOT = Path(__file__).resolve().parents[1]
CONFIGURATION = ROOT / "docs" / "configuration.md"
CHECKS = ROOT / "jobupdates" / "checks.py"
README = ROOT / "README.md"
PROJECT_SETTINGS = {"LOG_LEVEL"}  # JOBUPDATES_LOG_LEVEL: read by botrix_site/settings.py
DOCUMENTS = [
    "docs/protocol.md",
    "docs/client.md",
    "docs/security.md",
    "docs/performance.md",
    "docs/architecture.md",
    "docs/integration.md",
    "docs/deployment.md",
    "docs/configuration.md",
    "docs/troubleshooting.md",
    "docs/reliability.md",
    "docker/README.md",
    "CHANGELOG.md",
]
ROW = re.compile(r"^\| `JOBUPDATES_([A-Z0-9_]+)` \| ([^|]*) \|", re.MULTILINE)
CHECK_ROW = re.compile(r"^\| `(jobupdates\.[EW]\d{3})` \|", re.MULTILINE)
CHECK_ID = re.compile(r"""["'](jobupdates\.[EW]\d{3})["']""")
LINK = re.compile(r"\]\(([^)\s]+)\)")


def setting_rows() -> dict[str, str]:
    """Map each setting documented in a table row to its default cell."""
    rows: dict[str, str] = {}
    for name, cell in ROW.findall(CONFIGURATION.read_text()):
        assert name not in rows, f"JOBUPDATES_{name} has two rows in {CONFIGURATION.name}"
        rows[name] = cell
    return rows


def expected_in_cell(name: str, value: object) -> list[str]:
    """What the default cell of a setting must contain for ``value``, its (non-empty) default."""
    if name == "REDIS_URL":  # the default is the project's REDIS_URL, then a fixed URL
        return ["`REDIS_URL`", "`redis://127.0.0.1:6379/0`"]
    if isinstance(value, bool):
        return [f"`{str(value).lower()}`"]
    if isinstance(value, int):
        return [f"`{value}`"]
    if isinstance(value, float):
        return [f"`{value:g}`"]
    if isinstance(value, str):
        return [f"`{value}`"]
    if isinstance(value, tuple):
        return [str(item) for item in value]
    raise AssertionError(f"expected a str, number, bool or tuple default, got {value!r}")


@pytest.mark.parametrize("name", SETTING_NAMES)
def test_every_setting_is_documented_with_its_default(name, settings):
    for key in [k for k in dir(settings) if k.startswith("JOBUPDATES_")]:
        delattr(settings, key)  # the defaults, whatever the test settings say
    rows = setting_rows()
    assert name in rows, f"expected a row for JOBUPDATES_{name} in {CONFIGURATION}"
    cell = rows[name]
    default = getattr(Settings(), name)
    if isinstance(default, (str, tuple)) and not default:
        assert "empty" in cell or "none" in cell, (
            f"expected JOBUPDATES_{name}'s default to read 'empty' or 'none', got {cell!r}"
        )
        return
    for text in expected_in_cell(name, default):
        assert text in cell, (
            f"expected JOBUPDATES_{name}'s default {default!r} as {text!r} in "
            f"{CONFIGURATION.name}, got {cell.strip()!r}"
        )


def test_no_documented_setting_is_stale():
    stale = set(setting_rows()) - set(SETTING_NAMES) - PROJECT_SETTINGS
    assert not stale, f"documented but not in jobupdates.conf.Settings: {sorted(stale)}"
    text = CONFIGURATION.read_text()
    for name in PROJECT_SETTINGS:
        assert f"`JOBUPDATES_{name}`" in text


def test_every_system_check_is_documented():
    in_code = set(CHECK_ID.findall(CHECKS.read_text()))
    documented = set(CHECK_ROW.findall(CONFIGURATION.read_text()))
    assert in_code, "expected check ids in jobupdates/checks.py"
    assert in_code - documented == set(), f"undocumented checks: {sorted(in_code - documented)}"
    assert documented - in_code == set(), f"documented, not in code: {documented - in_code}"


@pytest.mark.parametrize(
    "variable",
    [
        "DJANGO_SECRET_KEY",
        "DJANGO_DEBUG",
        "DJANGO_ALLOWED_HOSTS",
        "REDIS_URL",
        "DATABASE_URL",
        "JOBUPDATES_LOG_LEVEL",
        "PROMETHEUS_MULTIPROC_DIR",
    ],
)
def test_every_project_variable_is_documented(variable):
    source = (ROOT / "botrix_site" / "settings.py").read_text()
    source += (ROOT / "jobupdates" / "checks.py").read_text()
    assert variable in source, f"{variable} is no longer read: drop it from the docs"
    assert re.search(rf"^\| `{variable}` \| [^|]*\S[^|]* \|", CONFIGURATION.read_text(), re.M), (
        f"expected a row for {variable} with its default in {CONFIGURATION.name}"
    )


def test_readme_links_every_document():
    readme = README.read_text()
    linked = set(LINK.findall(readme))
    missing = [doc for doc in DOCUMENTS if doc not in linked]
    assert not missing, f"expected README.md to link {missing}"


@pytest.mark.parametrize(
    "document",
    [
        README,
        ROOT / "CHANGELOG.md",
        *sorted((ROOT / "docs").glob("*.md")),
        ROOT / "docker" / "README.md",
    ],
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_relative_links_resolve(document):
    broken = []
    for target in LINK.findall(document.read_text()):
        if re.match(r"^[a-z]+:", target) or target.startswith("#"):
            continue
        path = target.split("#", 1)[0]
        if not (document.parent / path).exists():
            broken.append(target)
    assert not broken, f"{document.relative_to(ROOT)} links to missing files: {broken}"
