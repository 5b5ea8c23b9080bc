"""The hash-pinned requirements ``ciReport.install()`` ships (one file per ci-report version).

The library installs the dependencies with ``pip install --require-hashes --no-deps -r`` this file,
then ci-report itself with ``--no-deps``: so the file must pin every runtime dependency of
``pyproject.toml`` (and theirs), for every Python the project supports, with hashes, at versions
that satisfy the project's own specifiers. ``scripts/lock-install-requirements`` writes it.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
INSTALL = ROOT / "shared-library" / "resources" / "io" / "cireport" / "install"
STEP_OPTIONS = ROOT / "shared-library" / "src" / "io" / "cireport" / "StepOptions.groovy"
PYTHONS = ["3.9", "3.10", "3.11", "3.12", "3.13", "3.14"]


def pins(text: str) -> list[tuple[Requirement, list[str]]]:
    """(requirement, hashes) for each entry of a pip requirements file with continuation lines."""
    entries = []
    for block in re.sub(r"\\\n\s*", " ", text).splitlines():
        block = block.strip()
        if not block or block.startswith("#"):
            continue
        hashes = re.findall(r"--hash=sha256:(\S+)", block)
        spec = re.sub(r"\s--hash=\S+", "", block).strip()
        entries.append((Requirement(spec), hashes))
    return entries


def applies(req: Requirement, python: str, platform: str = "linux") -> bool:
    env = {"python_version": python, "python_full_version": f"{python}.0", "sys_platform": platform}
    return req.marker is None or req.marker.evaluate(env)


def test_the_library_pins_the_projects_version_and_ships_its_requirements() -> None:
    default = re.search(r"DEFAULT_VERSION = '([^']+)'", STEP_OPTIONS.read_text())
    assert default is not None
    assert default.group(1) == PROJECT["version"]
    assert (INSTALL / f"requirements-{PROJECT['version']}.txt").is_file()


@pytest.mark.parametrize("path", sorted(INSTALL.glob("requirements-*.txt")), ids=lambda p: p.name)
def test_every_entry_is_an_exact_pin_with_sha256_hashes(path: Path) -> None:
    entries = pins(path.read_text())
    assert entries
    for req, hashes in entries:
        specs = list(req.specifier)
        assert len(specs) == 1 and specs[0].operator == "==", req
        assert hashes and all(re.fullmatch(r"[0-9a-f]{64}", h) for h in hashes), req


@pytest.mark.parametrize("python", PYTHONS)
def test_each_dependency_has_exactly_one_pin_that_satisfies_pyproject(python: str) -> None:
    entries = pins((INSTALL / f"requirements-{PROJECT['version']}.txt").read_text())
    for dep in map(Requirement, PROJECT["dependencies"]):
        if not applies(dep, python):
            continue
        chosen = [r for r, _ in entries if canonicalize_name(r.name) == canonicalize_name(dep.name)]
        chosen = [r for r in chosen if applies(r, python)]
        assert len(chosen) == 1, (python, dep, chosen)
        pinned = next(iter(chosen[0].specifier)).version
        assert dep.specifier.contains(pinned, prereleases=True), (python, dep, pinned)


def test_the_requirements_parser_of_this_test_sees_markers_and_hashes() -> None:
    sample = "a==1.0 ; python_full_version < '3.10' \\\n    --hash=sha256:" + "0" * 64 + "\n"
    [(req, hashes)] = pins(sample)
    assert req.marker == Marker("python_full_version < '3.10'")
    assert hashes == ["0" * 64]
