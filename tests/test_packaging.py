"""The package as it ships: a wheel and an sdist with every module, template,
static file and ``py.typed`` (``python -m build``, as a release makes them), and
dependencies declared in the ranges the project is tested on."""

from __future__ import annotations

import email
import re
import tarfile
import tomllib
import zipfile
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from jobupdates.delivery.internals import TESTED

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "jobupdates"
DAPHNE_FLOOR = Version("4.2.2")
"""daphne 4.2.2 fixed unbounded WebSocket message and frame sizes and header injection
on the upgrade path: no release may accept an older one."""


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


def declared(requirements: list[str]) -> dict[str, Requirement]:
    parsed = [Requirement(text) for text in requirements]
    return {canonicalize_name(r.name): r for r in parsed if r.marker is None}


def test_the_declared_ranges_are_the_tested_ones():
    """pyproject.toml's ranges for the packages whose private names the project relies on
    are jobupdates/delivery/internals.py's TESTED, autobahn and Twisted included (the code
    imports them), and no daphne before 4.2.2 is accepted."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    dependencies = declared(project["dependencies"])
    for package, tested in TESTED.items():
        requirement = dependencies.get(canonicalize_name(package))
        assert requirement is not None, f"expected {package} declared in pyproject.toml"
        assert requirement.specifier == Requirement(f"{package}{tested.specifier}").specifier, (
            f"{package}: pyproject.toml says {requirement.specifier}, the probe was tested on "
            f"{tested.specifier}"
        )
    daphne = dependencies["daphne"].specifier
    floors = [Version(s.version) for s in daphne if s.operator == ">="]
    assert floors, "expected a floor for daphne"
    assert min(floors) >= DAPHNE_FLOOR
    assert not daphne.contains("4.2.1")


def test_the_pins_are_inside_the_tested_ranges():
    pins = dict(
        re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)", (ROOT / "requirements.txt").read_text(), re.M)
    )
    pinned = {canonicalize_name(name): version for name, version in pins.items()}
    for package, tested in TESTED.items():
        version = pinned.get(canonicalize_name(package))
        assert version is not None, f"expected {package} pinned in requirements.txt"
        assert tested.contains(version), f"{package}=={version} is outside {tested.specifier}"


def test_the_wheel_declares_the_tested_ranges(dist):
    [wheel] = dist.glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        [name] = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        metadata = email.message_from_bytes(archive.read(name))
    requires = declared(metadata.get_all("Requires-Dist") or [])
    for package, tested in TESTED.items():
        assert (
            requires[canonicalize_name(package)].specifier
            == Requirement(f"{package}{tested.specifier}").specifier
        ), package
