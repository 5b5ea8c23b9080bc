"""Settings resolution: flags > env > .ci-report.toml > [tool.ci-report] > defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from ci_report.config import CALLBACK_PATH, Settings, load_settings
from ci_report.errors import ConfigError


def load(tmp_path: Path, flags=None, env=None, **kw) -> Settings:
    return load_settings(flags, env=env or {}, cwd=tmp_path, **kw)


def test_defaults(tmp_path: Path) -> None:
    s = load(tmp_path)
    assert s.max_attempts == 8
    assert s.deadline == 300.0
    assert s.max_results == 10_000
    assert s.junit == []
    assert s.strict is False
    assert s.callback_url is None
    assert s.sources == {}
    assert s.config_file is None
    assert s.auth_modes == []


def test_precedence_chain(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        "[tool.ci-report]\nmax-attempts = 2\ndeadline = 20\nmax-results = 20\nread-timeout = 2\n"
    )
    # .ci-report.toml wins over pyproject completely (the first file found is the config)
    s = load(tmp_path)
    assert (s.max_attempts, s.deadline, s.max_results, s.read_timeout) == (2, 20.0, 20, 2.0)
    assert s.sources["max_attempts"] == f"config {tmp_path / 'pyproject.toml'}"
    (tmp_path / ".ci-report.toml").write_text("max-attempts = 3\ndeadline = 30\nmax_results = 30\n")
    env = {"CI_REPORT_MAX_ATTEMPTS": "4", "CI_REPORT_DEADLINE": "40"}
    s = load(tmp_path, flags={"max_attempts": 5}, env=env)
    assert s.max_attempts == 5 and s.sources["max_attempts"] == "flag"
    assert s.deadline == 40.0 and s.sources["deadline"] == "env CI_REPORT_DEADLINE"
    assert s.max_results == 30
    assert s.sources["max_results"] == f"config {tmp_path / '.ci-report.toml'}"
    assert s.read_timeout == 30.0 and "read_timeout" not in s.sources  # default
    assert s.config_file == str(tmp_path / ".ci-report.toml")
    rows = {name: (value, source) for name, value, source in s.describe()}
    assert rows["read_timeout"][1] == "default"
    assert rows["max_attempts"] == (5, "flag")


def test_flags_none_or_empty_do_not_override(tmp_path: Path) -> None:
    env = {"CI_REPORT_JUNIT": "a.xml", "RUN_ID": "7"}
    s = load(tmp_path, flags={"junit": [], "run_id": None}, env=env)
    assert s.junit == ["a.xml"] and s.run_id == "7"


def test_empty_env_is_unset(tmp_path: Path) -> None:
    (tmp_path / ".ci-report.toml").write_text("max-attempts = 3\n")
    s = load(tmp_path, env={"CI_REPORT_MAX_ATTEMPTS": ""})
    assert s.max_attempts == 3


def test_pyproject_without_table_is_no_config(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n')
    s = load(tmp_path)
    assert s.config_file is None


def test_explicit_config_file(tmp_path: Path) -> None:
    other = tmp_path / "conf" / "ci.toml"
    other.parent.mkdir()
    other.write_text("max-attempts = 6\n")
    (tmp_path / ".ci-report.toml").write_text("max-attempts = 3\n")
    assert load(tmp_path, config_file=str(other)).max_attempts == 6
    assert load(tmp_path, env={"CI_REPORT_CONFIG": str(other)}).max_attempts == 6
    with pytest.raises(ConfigError):
        load(tmp_path, config_file=str(tmp_path / "missing.toml"))


def test_explicit_pyproject_reads_tool_table(tmp_path: Path) -> None:
    p = tmp_path / "sub" / "pyproject.toml"
    p.parent.mkdir()
    p.write_text("[tool.ci-report]\nstatus-style = 'extended'\n")
    assert load(tmp_path, config_file=str(p)).status_style == "extended"


def test_kebab_and_snake_keys(tmp_path: Path) -> None:
    (tmp_path / ".ci-report.toml").write_text(
        'status-style = "extended"\nmax_message = 99\noutbox-ttl-days = 2.5\n'
    )
    s = load(tmp_path)
    assert s.status_style == "extended" and s.max_message == 99 and s.outbox_ttl_days == 2.5


def test_unknown_key_lists_valid_keys(tmp_path: Path) -> None:
    (tmp_path / ".ci-report.toml").write_text("max-attempt = 3\n")
    with pytest.raises(ConfigError) as info:
        load(tmp_path)
    assert "'max-attempt'" in info.value.message
    assert "max-attempts" in (info.value.fix or "")
    assert "status-style" in (info.value.fix or "")


def test_invalid_toml(tmp_path: Path) -> None:
    (tmp_path / ".ci-report.toml").write_text("max-attempts = = 3\n")
    with pytest.raises(ConfigError) as info:
        load(tmp_path)
    assert "not valid TOML" in info.value.message


@pytest.mark.parametrize(
    ("key", "env"),
    [
        ("api-key", "JENKINS_API_KEY"),
        ("jwt_secret", "JENKINS_JWT_SECRET"),
        ("signature-secret", "JENKINS_SIGNATURE_SECRET"),
        ("jenkins-token", "JENKINS_TOKEN"),
    ],
)
def test_secret_in_file_refused_naming_env_var(tmp_path: Path, key: str, env: str) -> None:
    (tmp_path / ".ci-report.toml").write_text(f'{key} = "s3cr3t-value"\n')
    with pytest.raises(ConfigError) as info:
        load(tmp_path)
    err = info.value
    assert env in (err.fix or "")
    assert "s3cr3t-value" not in " ".join(str(x) for x in (err.message, err.cause, err.fix))


def test_secret_in_file_refused_even_when_env_sets_it(tmp_path: Path) -> None:
    (tmp_path / ".ci-report.toml").write_text('api-key = "committed-secret"\n')
    with pytest.raises(ConfigError) as info:
        load(tmp_path, env={"JENKINS_API_KEY": "from-jenkins"})
    assert "JENKINS_API_KEY" in (info.value.fix or "")


@pytest.mark.parametrize(
    ("env", "name"),
    [
        ({"CI_REPORT_MAX_ATTEMPTS": "eight"}, "max_attempts"),
        ({"CI_REPORT_MAX_ATTEMPTS": "8.5"}, "max_attempts"),
        ({"CI_REPORT_DEADLINE": "soon"}, "deadline"),
        ({"CI_REPORT_STRICT": "maybe"}, "strict"),
    ],
)
def test_bad_values_from_env(tmp_path: Path, env: dict, name: str) -> None:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, env=env)
    assert name in info.value.message
    assert next(iter(env)) in info.value.message  # where it came from


def test_bad_values_from_file(tmp_path: Path) -> None:
    (tmp_path / ".ci-report.toml").write_text("max-attempts = true\n")
    with pytest.raises(ConfigError) as info:
        load(tmp_path)
    assert "max_attempts" in info.value.message and "config" in info.value.message


@pytest.mark.parametrize(
    ("text", "expected"),
    [("1", True), ("TRUE", True), (" yes ", True), ("on", True), ("0", False), ("off", False)],
)
def test_bool_parsing(tmp_path: Path, text: str, expected: bool) -> None:
    assert load(tmp_path, env={"CI_REPORT_STRICT": text}).strict is expected


def test_bool_from_toml(tmp_path: Path) -> None:
    (tmp_path / ".ci-report.toml").write_text("strict = true\n")
    assert load(tmp_path).strict is True


def test_callback_url(tmp_path: Path) -> None:
    s = load(tmp_path, env={"API_CALLBACK_URL": "https://p.example.com/"})
    assert s.callback_url == "https://p.example.com" + CALLBACK_PATH
    assert s.sources["api_callback_url"] == "env API_CALLBACK_URL"
    s = load(
        tmp_path,
        env={"API_CALLBACK_URL": "https://p.example.com", "CI_REPORT_URL": "https://x/full"},
    )
    assert s.callback_url == "https://x/full"
    s = load(tmp_path, flags={"url": "https://flag/cb"}, env={"CI_REPORT_URL": "https://x"})
    assert s.callback_url == "https://flag/cb"


def test_list_parsing(tmp_path: Path) -> None:
    env = {"CI_REPORT_JUNIT": "a/*.xml, b/**/*.xml\n c.xml,,"}
    assert load(tmp_path, env=env).junit == ["a/*.xml", "b/**/*.xml", "c.xml"]
    (tmp_path / ".ci-report.toml").write_text('junit = ["x.xml", "y/*.xml"]\n')
    assert load(tmp_path).junit == ["x.xml", "y/*.xml"]
    assert load(tmp_path, flags={"junit": ["z.xml"]}).junit == ["z.xml"]


def test_secrets_stripped_and_modes(tmp_path: Path) -> None:
    env = {
        "JENKINS_API_KEY": "  key-value-1\n",
        "JENKINS_JWT_SECRET": "jwt\n",
        "JENKINS_SIGNATURE_SECRET": "whsec_AAAA whsec_BBBB",
    }
    s = load(tmp_path, env=env)
    assert s.api_key == "key-value-1" and s.jwt_secret == "jwt"
    assert s.auth_modes == ["api-key", "jwt", "hmac"]
    assert s.signature_secrets == ["whsec_AAAA", "whsec_BBBB"]
    assert sorted(s.secrets()) == sorted(["key-value-1", "jwt", "whsec_AAAA whsec_BBBB"])
    rows = {name: value for name, value, _ in s.describe()}
    assert rows["api_key"] == "set" and rows["jenkins_token"] == "unset"
    assert "key-value-1" not in repr(s) and "whsec_AAAA" not in repr(s)


def test_unknown_flag_is_programming_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        load(tmp_path, flags={"no_such_setting": 1})


def test_derived_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    s = load(tmp_path, env={"WORKSPACE": str(tmp_path / "ws")})
    assert s.result_file_path == tmp_path / "ws" / "ci-report" / "callback.json"
    assert s.outbox_path == tmp_path / "cache" / "ci-report" / "outbox"
    s = load(tmp_path, env={"CI_REPORT_OUTBOX": str(tmp_path / "ob")})
    assert s.outbox_path == tmp_path / "ob"


def test_status_style_is_checked(tmp_path: Path) -> None:
    """Regression: CI_REPORT_STATUS_STYLE=extnded was silently the default style."""
    with pytest.raises(ConfigError) as info:
        load(tmp_path, env={"CI_REPORT_STATUS_STYLE": "extnded"})
    assert "status_style" in info.value.message and "extended" in (info.value.fix or "")
    assert load(tmp_path, env={"CI_REPORT_STATUS_STYLE": "Extended"}).status_style == "extended"


def test_unknown_key_fix_does_not_offer_secret_keys(tmp_path: Path) -> None:
    (tmp_path / ".ci-report.toml").write_text("bogus-key = 1\n")
    with pytest.raises(ConfigError) as info:
        load(tmp_path, env={})
    assert "max-attempts" in (info.value.fix or "")
    for secret in ("api-key", "jwt-secret", "signature-secret", "jenkins-token"):
        assert secret not in (info.value.fix or "").split(", ")
