"""``ciReport.install()``'s installer (``shared-library/resources/io/cireport/install/install.py``)
run for real: a venv, the shipped hash-pinned requirements, pip, and sources on 127.0.0.1.

The library writes install.py and the requirements file next to the venv and runs install.py with
the venv's Python (``tests/integration/test_library_cli_contract.py`` runs the whole step through
the pipeline harness). Here each source is checked on its own: a wheelhouse (offline), a private
index behind a login, a wheel URL with its hash; and what must be refused: a dependency that is not
the file pinned for it, a wheel that is not the one named, a wrong login. The agent's own pip
settings point at an index that records what it is asked, to prove it is never used.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import urllib.parse
from pathlib import Path
from typing import Iterator

import pytest
from install_wheelhouse import INSTALLER, REQUIREMENTS, VERSION, SimpleIndex, build_wheelhouse

pytestmark = pytest.mark.integration

USER = "ci-bot"
PASSWORD = "p@ss w0rd/:x%"  # every character that needs quoting in a URL


@pytest.fixture(scope="module")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_wheelhouse(tmp_path_factory.mktemp("wheelhouse"))


@pytest.fixture(scope="module")
def venv_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True, timeout=120)
    return path


@pytest.fixture
def venv(venv_template: Path, tmp_path: Path) -> Path:
    """A fresh venv (a copy of one made once: the installer runs with its Python)."""
    dest = tmp_path / "tools" / f"ci-report-{VERSION}"
    shutil.copytree(venv_template, dest, symlinks=True)
    return dest


@pytest.fixture
def decoy(tmp_path: Path) -> Iterator[SimpleIndex]:
    """The agent's own index (environment and pip.conf): must see no request at all."""
    empty = tmp_path / "decoy"
    empty.mkdir()
    with SimpleIndex(empty) as index:
        yield index


def run_installer(
    venv: Path, decoy: SimpleIndex, tmp_path: Path, **source: str
) -> subprocess.CompletedProcess[str]:
    conf = tmp_path / "pip.conf"
    conf.write_text(f"[global]\nindex-url = {decoy.url}/simple\nextra-index-url = {decoy.url}/x\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "CI_REPORT_"))}
    env.update(
        PIP_INDEX_URL=f"{decoy.url}/simple",
        PIP_EXTRA_INDEX_URL=f"{decoy.url}/extra",
        PIP_FIND_LINKS=str(tmp_path),
        PIP_CONFIG_FILE=str(conf),
        CI_REPORT_VERSION=VERSION,
        CI_REPORT_REQUIREMENTS=str(source.pop("requirements", REQUIREMENTS)),
    )
    env.update({f"CI_REPORT_{k.upper()}": v for k, v in source.items()})
    return subprocess.run(
        [str(venv / "bin" / "python"), str(INSTALLER)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def installed(venv: Path) -> dict[str, str]:
    out = subprocess.run(
        [str(venv / "bin" / "python"), "-I", "-m", "pip", "list", "--format=freeze"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    pairs = (line.split("==", 1) for line in out.split() if "==" in line)
    return {re.sub(r"[-_.]+", "-", name).lower(): version for name, version in pairs}


def pinned_for_this_python() -> dict[str, str]:
    """What the shipped requirements pin for the running interpreter (markers evaluated)."""
    from packaging.markers import Marker

    pins = {}
    for line in REQUIREMENTS.read_text().splitlines():
        m = re.match(r"^([a-z0-9-]+)==([^ ;]+)(?: ; (.+?))? \\$", line)
        if m and (m.group(3) is None or Marker(m.group(3)).evaluate()):
            pins[m.group(1)] = m.group(2)
    return pins


def version_of(venv: Path) -> str:
    exe = venv / "bin" / "ci-report"
    return subprocess.run([str(exe), "--version"], capture_output=True, text=True).stdout.strip()


def test_a_wheelhouse_installs_offline_every_dependency_as_pinned(
    venv: Path, wheelhouse: Path, decoy: SimpleIndex, tmp_path: Path
) -> None:
    r = run_installer(venv, decoy, tmp_path, wheelhouse=str(wheelhouse))
    assert r.returncode == 0, r.stdout + r.stderr
    assert version_of(venv) == f"ci-report {VERSION}"
    have = installed(venv)
    pins = pinned_for_this_python()
    assert {k: have.get(k) for k in pins} == pins
    assert have["ci-report"] == VERSION
    assert decoy.requests == []


def test_a_dependency_that_is_not_the_pinned_file_is_refused_and_nothing_is_installed(
    venv: Path, wheelhouse: Path, decoy: SimpleIndex, tmp_path: Path
) -> None:
    pins = pinned_for_this_python()
    # the wheelhouse's click is a different file than the one pinned: every pinned hash is changed
    lines = REQUIREMENTS.read_text().splitlines(keepends=True)
    tampered, in_click = [], False
    for line in lines:
        if line.startswith("click=="):
            in_click = True
        elif not line.startswith(" "):
            in_click = False
        tampered.append(
            re.sub(r"sha256:[0-9a-f]{64}", "sha256:" + "0" * 64, line) if in_click else line
        )
    forged = tmp_path / "requirements.txt"
    forged.write_text("".join(tampered))
    r = run_installer(venv, decoy, tmp_path, wheelhouse=str(wheelhouse), requirements=str(forged))
    assert r.returncode == 1, r.stdout + r.stderr
    assert "ciReport.install: the pinned dependencies: a downloaded file does not match" in r.stderr
    assert str(forged) in r.stderr
    have = installed(venv)
    assert not set(pins) & set(have), have  # hash-checking mode installs all or nothing
    assert "ci-report" not in have
    assert not (venv / "bin" / "ci-report").exists()


def test_a_requirements_file_without_hashes_is_refused(
    venv: Path, wheelhouse: Path, decoy: SimpleIndex, tmp_path: Path
) -> None:
    plain = tmp_path / "plain.txt"
    plain.write_text("".join(f"{k}=={v}\n" for k, v in pinned_for_this_python().items()))
    r = run_installer(venv, decoy, tmp_path, wheelhouse=str(wheelhouse), requirements=str(plain))
    assert r.returncode == 1, r.stdout + r.stderr
    assert f"{plain} pins a requirement without its hash" in r.stderr
    assert "ci-report" not in installed(venv)


def test_a_private_index_with_a_login_is_the_only_source_and_the_password_never_shows(
    venv: Path, wheelhouse: Path, decoy: SimpleIndex, tmp_path: Path
) -> None:
    with SimpleIndex(wheelhouse, login=(USER, PASSWORD)) as index:
        r = run_installer(
            venv,
            decoy,
            tmp_path,
            index_url=f"{index.url}/simple",
            index_user=USER,
            index_password=PASSWORD,
        )
        seen = list(index.requests)
    assert r.returncode == 0, r.stdout + r.stderr
    assert version_of(venv) == f"ci-report {VERSION}"
    assert any(q["path"].startswith("/simple/ci-report") for q in seen)
    assert all(q["authorization"] for q in seen if q["path"].startswith("/files/"))
    assert decoy.requests == []  # neither PIP_*INDEX*/PIP_FIND_LINKS nor pip.conf was used
    for secret in (PASSWORD, urllib.parse.quote(PASSWORD, safe="")):
        assert secret not in r.stdout + r.stderr


def test_a_wrong_login_says_so_without_the_password(
    venv: Path, wheelhouse: Path, decoy: SimpleIndex, tmp_path: Path
) -> None:
    with SimpleIndex(wheelhouse, login=(USER, PASSWORD)) as index:
        r = run_installer(
            venv,
            decoy,
            tmp_path,
            index_url=f"{index.url}/simple",
            index_user=USER,
            index_password="wrong " + PASSWORD,
        )
    assert r.returncode == 1, r.stdout + r.stderr
    assert f"the index {index.url}/simple refused the login (HTTP 401)" in r.stderr
    assert "credentialsId" in r.stderr
    for secret in (PASSWORD, urllib.parse.quote(PASSWORD, safe="")):
        assert secret not in r.stdout + r.stderr


def test_a_wheel_url_is_installed_only_when_it_is_the_file_its_sha256_names(
    venv_template: Path, wheelhouse: Path, decoy: SimpleIndex, tmp_path: Path
) -> None:
    wheel = next(wheelhouse.glob("ci_report-*.whl"))
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    with SimpleIndex(wheelhouse) as index:
        url = f"{index.url}/files/{wheel.name}"
        wrong = tmp_path / "wrong"
        shutil.copytree(venv_template, wrong, symlinks=True)
        refused = run_installer(
            wrong,
            decoy,
            tmp_path,
            wheel_url=url,
            index_url=f"{index.url}/simple",
            wheel_sha256="f" * 64,
        )
        right = tmp_path / "right"
        shutil.copytree(venv_template, right, symlinks=True)
        ok = run_installer(
            right,
            decoy,
            tmp_path,
            wheel_url=url,
            index_url=f"{index.url}/simple",
            wheel_sha256=digest.upper(),
        )
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "ciReport.install: ci-report itself: a downloaded file does not match" in refused.stderr
    assert f"the wheel {url}" in refused.stderr
    assert not (wrong / "bin" / "ci-report").exists()
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert version_of(right) == f"ci-report {VERSION}"
    assert decoy.requests == []


def test_no_source_or_two_sources_are_refused_before_pip_runs(
    venv: Path, wheelhouse: Path, decoy: SimpleIndex, tmp_path: Path
) -> None:
    none = run_installer(venv, decoy, tmp_path)
    assert none.returncode == 1
    assert "ciReport.install: no source given" in none.stderr
    both = run_installer(venv, decoy, tmp_path, wheelhouse=str(wheelhouse), index_url=decoy.url)
    assert both.returncode == 1
    assert "give one source" in both.stderr
    missing = run_installer(venv, decoy, tmp_path, wheelhouse=str(tmp_path / "nope"))
    assert missing.returncode == 1
    assert "is not a folder on this agent" in missing.stderr
    assert installed(venv).keys() <= {"pip", "setuptools"}
    assert decoy.requests == []
