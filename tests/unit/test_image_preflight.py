"""Preflight: every stop names its code and fix; warnings never stop the run."""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path

import pytest

from ci_report.image.preflight import run_preflight, unmaintained_warning

FAKE = Path(__file__).resolve().parents[1] / "data" / "kaniko" / "fake-executor"
DEST = "127.0.0.1:5999/team/app:1"


@pytest.fixture
def ws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PATH", str(Path(sys.executable).parent), prepend=":")
    (tmp_path / "ctx" / "target").mkdir(parents=True)
    (tmp_path / "ctx" / "target" / "app.jar").write_bytes(b"x" * 100)
    (tmp_path / "ctx" / "Dockerfile").write_text("FROM scratch\nCOPY target/app.jar /app/app.jar\n")
    auth = base64.b64encode(b"ci:secret").decode()
    (tmp_path / "dc").mkdir()
    (tmp_path / "dc" / "config.json").write_text(
        json.dumps({"auths": {"127.0.0.1:5999": {"auth": auth}}})
    )
    return tmp_path


def check(ws: Path, **kw):
    args = dict(
        context=str(ws / "ctx"),
        dockerfile=None,
        destinations=[DEST],
        executor=str(FAKE),
        docker_config=str(ws / "dc"),
    )
    args.update(kw)
    return run_preflight(**args)


def codes(pf) -> list[str]:
    return [p.code for p in pf.problems]


def test_all_good_reads_the_executor_version(ws: Path) -> None:
    pf = check(ws)
    assert pf.ok, pf.problems
    assert pf.executor_version == "v1.23.2"
    assert any("archived" in w for w in pf.warnings)  # Google release <= v1.24.0
    assert ("credentials 127.0.0.1:5999", "auths[127.0.0.1:5999].auth") in pf.facts


def test_dockerfile_missing_and_skip(ws: Path) -> None:
    assert codes(check(ws, dockerfile="nope/Dockerfile")) == ["dockerfile-missing"]
    pf = check(ws, dockerfile="nope/Dockerfile", skip_if_no_dockerfile=True)
    assert pf.skipped and not pf.problems


def test_copy_source_missing_names_the_line(ws: Path) -> None:
    (ws / "ctx" / "target" / "app.jar").unlink()
    pf = check(ws)
    assert codes(pf) == ["copy-source-missing"]
    assert pf.problems[0].evidence == ["Dockerfile:2: COPY target/app.jar /app/app.jar"]


def test_from_with_an_unset_build_arg_stops_before_the_executor(ws: Path) -> None:
    (ws / "ctx" / "Dockerfile").write_text("ARG BASE\nFROM $BASE\nCOPY target/app.jar /a.jar\n")
    pf = check(ws)
    assert codes(pf) == ["base-image-not-found"]
    problem = pf.problems[0]
    assert "BASE have no value" in problem.message
    assert problem.evidence == ["Dockerfile:2: FROM $BASE"]
    assert "--build-arg BASE=" in problem.fix
    assert not any("Docker Hub" in w for w in pf.warnings)
    # given after --, the build arg resolves the base and preflight passes
    pf = check(ws, extra_args=["--build-arg", "BASE=127.0.0.1:5999/base:1"])
    assert pf.ok, pf.problems


def test_copy_source_excluded_by_dockerignore(ws: Path) -> None:
    (ws / "ctx" / ".dockerignore").write_text("target\n")
    pf = check(ws)
    assert codes(pf) == ["copy-source-missing"]
    assert ".dockerignore" in pf.problems[0].message


def test_destination_must_name_a_registry(ws: Path) -> None:
    # a bare name would go to docker.io/library/..., where nobody can push
    assert codes(check(ws, destinations=["app:1"])) == ["name-unknown"]


def test_docker_hub_short_name_is_a_docker_hub_push(ws: Path) -> None:
    # user/app is a valid Docker Hub destination: it needs docker.io credentials, not a stop
    pf = check(ws, destinations=["team/app:1"])
    assert codes(pf) == ["registry-auth"]
    assert "no credentials for docker.io" in pf.problems[0].message
    assert '"https://index.docker.io/v1/"' in pf.problems[0].fix
    assert any("Kaniko pushes it to Docker Hub" in w for w in pf.warnings)
    auth = base64.b64encode(b"ci:secret").decode()
    (ws / "dc" / "config.json").write_text(
        json.dumps({"auths": {"https://index.docker.io/v1/": {"auth": auth}}})
    )
    pf = check(ws, destinations=["team/app:1"])
    assert pf.ok, pf.problems


def test_missing_context_is_named(ws: Path) -> None:
    pf = check(ws, context=str(ws / "nope"))
    assert codes(pf) == ["dockerfile-missing"]
    assert "build context" in pf.problems[0].message and "--context" in pf.problems[0].fix


def test_dockerfile_that_is_a_directory(ws: Path) -> None:
    (ws / "ctx" / "Dockerfile.d").mkdir()
    pf = check(ws, dockerfile="Dockerfile.d")
    assert "is a directory, not a file" in pf.problems[0].message


def test_credentials_missing_or_broken(ws: Path) -> None:
    assert codes(check(ws, destinations=["127.0.0.1:6000/team/app:1"])) == ["registry-auth"]
    (ws / "dc" / "config.json").write_text(
        json.dumps({"auths": {"127.0.0.1:5999": {"auth": base64.b64encode(b"nocolon").decode()}}})
    )
    pf = check(ws)
    assert codes(pf) == ["registry-auth"] and "user:password" in pf.problems[0].message


def test_cred_helper_counts(ws: Path) -> None:
    (ws / "dc" / "config.json").write_text(json.dumps({"credHelpers": {"127.0.0.1:5999": "ecr"}}))
    assert check(ws).ok


def test_no_push_needs_no_credentials(ws: Path) -> None:
    pf = check(ws, destinations=["127.0.0.1:6000/team/app:1"], extra_args=["--no-push"])
    assert pf.ok


def test_executor_missing(ws: Path) -> None:
    assert codes(check(ws, executor=str(ws / "no-executor"))) == ["executor-missing"]
    assert check(ws, executor=str(ws / "no-executor"), mode="split").ok


def test_unmaintained_images() -> None:
    assert unmaintained_warning(image="gcr.io/kaniko-project/executor:v1.23.2-debug")
    assert unmaintained_warning(version="v1.24.0")
    assert unmaintained_warning(version="v1.28.3") is None
    assert unmaintained_warning(image="ghcr.io/osscontainertools/kaniko:v1.28.3") is None


def test_docker_hub_base_without_credentials_warns(ws: Path) -> None:
    (ws / "ctx" / "Dockerfile").write_text("FROM eclipse-temurin:21-jre-alpine\n")
    pf = check(ws)
    assert pf.ok and any("TOOMANYREQUESTS" in w for w in pf.warnings)
