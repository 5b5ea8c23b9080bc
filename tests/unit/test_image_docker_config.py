"""Docker config.json variants: auths, aliases, helpers, locations, broken files."""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path

import pytest

from ci_report.errors import ConfigError
from ci_report.image import docker_config as dc
from ci_report.image.docker_config import load_docker_config, normalize_host


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _write(path: Path, data) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data) if not isinstance(data, str) else data)
    return path


@pytest.mark.parametrize(
    "key, host",
    [
        ("reg.example.com", "reg.example.com"),
        ("https://Reg.Example.com/v2/", "reg.example.com"),
        ("http://127.0.0.1:5000", "127.0.0.1:5000"),
        ("https://index.docker.io/v1/", "docker.io"),
        ("index.docker.io", "docker.io"),
        ("registry-1.docker.io", "docker.io"),
        ("docker.io", "docker.io"),
    ],
)
def test_normalize_host(key, host):
    assert normalize_host(key) == host


def test_auth_field_base64_user_pass(tmp_path: Path):
    p = _write(tmp_path / "config.json", {"auths": {"reg.example.com": {"auth": _b64("ci:p:w")}}})
    cfg = load_docker_config(str(p))
    creds = cfg.credentials_for("reg.example.com")
    assert creds.username == "ci" and creds.password == "p:w"  # only the first ':' splits
    assert creds.source == "auths[reg.example.com].auth"
    assert "p:w" not in repr(creds)
    assert creds.basic_header() == "Basic " + _b64("ci:p:w")
    assert cfg.credentials_for("other.example.com") is None
    assert cfg.problems_for("reg.example.com") == []


def test_auth_without_padding_and_username_password_fields(tmp_path: Path):
    raw = _b64("user:pass1").rstrip("=")
    p = _write(
        tmp_path / "config.json",
        {
            "auths": {
                "a.example.com": {"auth": raw},
                "b.example.com": {"username": "bob", "password": "secret"},
                "c.example.com": {"identitytoken": "refresh-token"},
                "d.example.com": {"registrytoken": "bearer-token"},
                "e.example.com": {},
            }
        },
    )
    cfg = load_docker_config(p)
    assert cfg.credentials_for("a.example.com").password == "pass1"
    assert cfg.credentials_for("b.example.com").username == "bob"
    assert cfg.credentials_for("c.example.com").identity_token == "refresh-token"
    assert cfg.credentials_for("d.example.com").registry_token == "bearer-token"
    assert cfg.credentials_for("e.example.com") is None
    assert "no auth" in cfg.problems_for("e.example.com")[0]
    assert cfg.hosts() == [f"{x}.example.com" for x in "abcde"]


def test_bad_auth_field_is_a_problem_not_a_crash(tmp_path: Path):
    p = _write(
        tmp_path / "config.json",
        {"auths": {"x.example.com": {"auth": "!!!not base64"}, "y.io": {"auth": _b64("nocolon")}}},
    )
    cfg = load_docker_config(p)
    assert cfg.credentials_for("x.example.com") is None
    assert "not base64" in cfg.problems_for("x.example.com")[0]
    assert cfg.credentials_for("y.io") is None
    assert cfg.problems_for("y.io")


@pytest.mark.parametrize(
    "key", ["https://index.docker.io/v1/", "index.docker.io", "docker.io", "registry-1.docker.io"]
)
def test_docker_hub_aliases(tmp_path: Path, key):
    p = _write(tmp_path / "config.json", {"auths": {key: {"auth": _b64("hub:tok")}}})
    cfg = load_docker_config(p)
    for alias in ("docker.io", "index.docker.io", "registry-1.docker.io"):
        assert cfg.credentials_for(alias).username == "hub"


def test_cred_helpers_and_store(tmp_path: Path):
    p = _write(
        tmp_path / "config.json",
        {
            "credHelpers": {"123.dkr.ecr.eu-west-1.amazonaws.com": "ecr-login"},
            "credsStore": "pass",
        },
    )
    cfg = load_docker_config(p)
    assert cfg.helper_for("123.dkr.ecr.eu-west-1.amazonaws.com") == "ecr-login"
    assert cfg.helper_for("ghcr.io") == "pass"
    assert cfg.has_credentials("ghcr.io")
    assert cfg.credentials_for("ghcr.io") is None


def test_helper_program_is_asked(tmp_path: Path, monkeypatch):
    helper = tmp_path / "bin" / "docker-credential-fake"
    helper.parent.mkdir()
    helper.write_text(
        "#!/bin/sh\nread host\n"
        'echo "{\\"ServerURL\\":\\"$host\\",\\"Username\\":\\"u-$host\\",\\"Secret\\":\\"s\\"}"\n'
    )
    helper.chmod(helper.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{helper.parent}{os.pathsep}{os.environ['PATH']}")
    p = _write(tmp_path / "config.json", {"credHelpers": {"reg.example.com": "fake"}})
    creds = load_docker_config(p).resolve("reg.example.com")
    assert creds.username == "u-reg.example.com" and creds.password == "s"
    assert creds.source == "credHelpers[fake]"
    assert load_docker_config(p).resolve("other.example.com") is None


def test_directory_path_and_default_locations(tmp_path: Path, monkeypatch):
    _write(tmp_path / "d" / "config.json", {"auths": {"r.io": {"auth": _b64("a:b")}}})
    assert load_docker_config(str(tmp_path / "d")).credentials_for("r.io").username == "a"
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "d"))
    cfg = load_docker_config()
    assert cfg.path == tmp_path / "d" / "config.json" and cfg.exists
    monkeypatch.delenv("DOCKER_CONFIG")
    monkeypatch.setattr(dc, "KANIKO_CONFIG", tmp_path / "kaniko" / "config.json")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert load_docker_config().path == tmp_path / "home" / ".docker" / "config.json"
    _write(tmp_path / "kaniko" / "config.json", {})
    assert load_docker_config().path == tmp_path / "kaniko" / "config.json"


def test_missing_empty_and_invalid_files(tmp_path: Path):
    cfg = load_docker_config(tmp_path / "nope.json")
    assert not cfg.exists and cfg.hosts() == []
    assert load_docker_config(_write(tmp_path / "empty.json", "")).exists
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_docker_config(_write(tmp_path / "bad.json", '{"auths": {'))
    with pytest.raises(ConfigError, match="not a Docker config"):
        load_docker_config(_write(tmp_path / "list.json", "[]"))


@pytest.mark.parametrize(
    "name", ["../../bin/sh", "/bin/sh", "bin/sh", "..", "a..b", "", "x" * 65, "ecr login"]
)
def test_helper_names_with_a_path_are_refused(tmp_path: Path, monkeypatch, name: str):
    # issue 9 finding 11: credsStore "../../bin/sh" ran a program from the workspace
    ran = tmp_path / "ran"
    tool = tmp_path / "bin" / "sh"
    tool.parent.mkdir()
    tool.write_text(f'#!/bin/sh\ntouch {ran}\necho \'{{"Username":"u","Secret":"s"}}\'\n')
    tool.chmod(0o755)
    (tmp_path / "docker-credential-..").mkdir()  # so "docker-credential-../../bin/sh" resolves
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"credsStore": name, "credHelpers": {"reg.example.com": name}}))
    config = load_docker_config(path)
    assert config.resolve("reg.example.com") is None and not ran.exists()
    assert config.creds_store is None and config.cred_helpers == {}
    if name:
        assert config.refused_helpers == ["credHelpers[reg.example.com]", "credsStore"]


@pytest.mark.parametrize(
    "name", ["ecr-login", "gcloud", "desktop", "osxkeychain", "pass", "acr-env"]
)
def test_real_helper_names_are_kept(tmp_path: Path, name: str):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"credsStore": name}))
    assert load_docker_config(path).creds_store == name
