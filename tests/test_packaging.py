"""The package as it ships: a wheel and an sdist with every module, template,
static file and ``py.typed`` (``python -m build``, as a release makes them)."""

from __future__ import annotations

import tarfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "jobupdates"


def shipped() -> set[str]:
    """What the package must carry: its modules, templates, static files and py.typed."""
    files = {p for p in PACKAGE.rglob("*") if p.is_file() and "__pycache__" not in p.parts}
    wanted = {p for p in files if p.suffix == ".py" or p.name == "py.typed"}
    wanted |= {p for p in files if {"templates", "static"} & set(p.relative_to(PACKAGE).parts)}
    return {str(p.relative_to(ROOT)) for p in wanted}


def test_the_wheel_carries_the_whole_package(dist):
    [wheel] = dist.glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = shipped() - names
    assert not missing, f"expected in the wheel: {sorted(missing)}"
    assert "jobupdates/py.typed" in names
    assert not [n for n in names if n.startswith(("tests/", "botrix_site/", "benchmarks/"))]


def test_the_sdist_carries_the_whole_package(dist):
    [sdist] = dist.glob("*.tar.gz")
    with tarfile.open(sdist) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    missing = shipped() - names
    assert not missing, f"expected in the sdist: {sorted(missing)}"
