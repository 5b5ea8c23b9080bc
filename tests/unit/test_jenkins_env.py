"""BuildContext from the variables Jenkins sets."""

from __future__ import annotations

import pytest

from ci_report.jenkins_env import BuildContext, clean_branch, strip_credentials

FULL_ENV = {
    "JOB_NAME": "team/app/main",
    "BUILD_NUMBER": "42",
    "BUILD_URL": "https://user:api-token@jenkins.example.com/job/team/job/app/job/main/42/",
    "JENKINS_URL": "https://jenkins.example.com/",
    "NODE_NAME": "agent-1",
    "WORKSPACE": "/home/jenkins/ws",
    "GIT_COMMIT": "0123abcd",
    "GIT_BRANCH": "origin/main",
    "CHANGE_ID": "17",
    "BUILD_TAG": "jenkins-team-app-main-42",
}


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://user:token@host/x?q=1#f", "https://host/x?q=1#f"),
        ("https://user@host:8443/x", "https://host:8443/x"),
        ("http://u:p@[::1]:8080/", "http://[::1]:8080/"),
        ("https://host/x", "https://host/x"),
        ("", ""),
        (None, None),
    ],
)
def test_strip_credentials(url, expected) -> None:
    assert strip_credentials(url) == expected


@pytest.mark.parametrize(
    ("branch", "expected"),
    [
        ("origin/main", "main"),
        ("origin/feature/x", "feature/x"),
        ("upstream/dev", "dev"),
        ("refs/remotes/origin/release/1.2", "release/1.2"),
        ("refs/heads/topic", "topic"),
        ("main", "main"),
        ("originals/x", "originals/x"),
        (None, None),
    ],
)
def test_clean_branch(branch, expected) -> None:
    assert clean_branch(branch) == expected


def test_from_env_full() -> None:
    ctx = BuildContext.from_env(FULL_ENV)
    assert ctx.job_name == "team/app/main"
    assert ctx.build_number == 42
    assert ctx.build_url == "https://jenkins.example.com/job/team/job/app/job/main/42/"
    assert "api-token" not in str(ctx.as_dict())
    assert ctx.jenkins_url == "https://jenkins.example.com/"
    assert ctx.node == "agent-1"
    assert ctx.git_branch == "main"
    assert ctx.change_id == "17"
    assert ctx.in_jenkins
    assert ctx.identity == "team/app/main#42"


def test_branch_name_fallback() -> None:
    ctx = BuildContext.from_env({"BRANCH_NAME": "PR-17"})
    assert ctx.git_branch == "PR-17"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("42", 42), (" 7 ", 7), ("0", 0), ("", None), ("  ", None), ("abc", None), ("-3", None)],
)
def test_build_number_parsing(raw, expected) -> None:
    assert BuildContext.from_env({"BUILD_NUMBER": raw}).build_number == expected


def test_build_number_non_ascii_digits() -> None:
    assert BuildContext.from_env({"BUILD_NUMBER": "²"}).build_number is None


def test_identity_fallbacks() -> None:
    assert BuildContext.from_env({}).identity == "local"
    assert not BuildContext.from_env({}).in_jenkins
    assert BuildContext.from_env({"BUILD_TAG": "jenkins-x-3"}).identity == "jenkins-x-3"
    only_job = BuildContext.from_env({"JOB_NAME": "x", "BUILD_TAG": "t"})
    assert only_job.identity == "t" and not only_job.in_jenkins
    assert BuildContext.from_env({"JOB_NAME": "x", "BUILD_NUMBER": "0"}).identity == "x#0"


def test_blank_values_are_none() -> None:
    ctx = BuildContext.from_env({"JOB_NAME": "  ", "NODE_NAME": "", "GIT_COMMIT": " abc "})
    assert ctx.job_name is None and ctx.node is None
    assert ctx.git_commit == "abc"


def test_reads_os_environ_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOB_NAME", "from-os")
    monkeypatch.setenv("BUILD_NUMBER", "5")
    assert BuildContext.from_env().identity == "from-os#5"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://u:p@host:abc/x", "https://host:abc/x"),
        ("https://u:p@host:99999/x", "https://host:99999/x"),
        ("https://u:p@Host.Example.com/x", "https://Host.Example.com/x"),
    ],
)
def test_strip_credentials_odd_ports_never_raise(url, expected) -> None:
    assert strip_credentials(url) == expected
    assert BuildContext.from_env({"BUILD_URL": url}).build_url == expected
