"""The number rules (limits) live in the Settings metadata: load_settings checks them for every
source, image-push applies the same ones, and they are published for the shared library."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from ci_report.config import _FIELDS, _field_type, load_settings, setting_limits
from ci_report.errors import ConfigError
from ci_report.image.service import PushRequest


def _load(tmp_path: Path, flags=None, env=None):
    return load_settings(flags or {}, env=env or {}, cwd=tmp_path)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("bandwidth", 0),  # 0 MB/s is meaningless: nothing would ever be pushed
        ("bandwidth", -1.5),
        ("timeout", "0"),
        ("timeout", "-5"),
        ("timeout", "inf"),
        ("max_attempts", 0),
        ("deadline", 0),
        ("kill_grace", -1),
        ("heartbeat", -1),
        ("receiver_port", 70000),
        ("queue_timeout", float("nan")),
    ],
)
def test_out_of_range_flags_are_config_errors(tmp_path: Path, name: str, value) -> None:
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, {name: value})
    flag = "--" + name.replace("_", "-")
    assert info.value.message.startswith(flag) and "must be" in info.value.message
    assert info.value.fix


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("timeout", "1800.5", "1800.5"),  # a fraction of a second is harmless
        ("timeout", "auto", "auto"),
        ("timeout", "AUTO", "AUTO"),
        ("bandwidth", 0.001, 0.001),
        ("heartbeat", 0, 0),  # 0: off
        ("kill_grace", 0, 0),
        ("flush_budget", 0, 0),  # 0: no flush before the callback
        ("max_attempts", 1, 1),
        ("receiver_port", 0, 0),  # a free port
    ],
)
def test_values_at_the_edges_are_accepted(tmp_path: Path, name: str, value, expected) -> None:
    assert getattr(_load(tmp_path, {name: value}), name) == expected


def test_env_and_config_file_values_are_checked_and_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^CI_REPORT_BANDWIDTH 0 must be a positive number"):
        _load(tmp_path, env={"CI_REPORT_BANDWIDTH": "0"})
    (tmp_path / ".ci-report.toml").write_text("max-attempts = 0\n")
    with pytest.raises(ConfigError, match=r"^max-attempts \(config .*\) 0 must be 1 or more"):
        _load(tmp_path)


def test_timeout_text_is_auto_or_seconds(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="neither 'auto' nor seconds"):
        _load(tmp_path, {"timeout": "soon"})


def test_image_push_uses_the_same_rules(tmp_path: Path) -> None:
    req = PushRequest.from_settings(_load(tmp_path, {"timeout": "1800.5"}), [], "direct")
    assert req.explicit_timeout == 1800
    req.validate()
    bad = dataclasses.replace(req, bandwidth=0.0)
    with pytest.raises(ConfigError, match=r"^--bandwidth 0 must be a positive number of MB/s"):
        bad.validate()
    with pytest.raises(ConfigError, match="must be"):
        dataclasses.replace(req, timeout="0.0").validate()


def test_limits_are_published_for_the_shared_library() -> None:
    limits = setting_limits()
    assert limits["bandwidth"]["exclusiveMinimum"] == 0
    assert limits["bandwidth"]["env"] == ["CI_REPORT_BANDWIDTH"]
    assert limits["timeout"]["keywords"] == ["auto"] and limits["timeout"]["exclusiveMinimum"] == 0
    assert limits["heartbeat"]["minimum"] == 0 and limits["max_attempts"]["minimum"] == 1
    assert all(isinstance(v["rule"], str) and v["rule"] for v in limits.values())


def test_every_number_setting_has_a_limit() -> None:
    for name, f in _FIELDS.items():
        if _field_type(f) in ("int", "float"):
            assert f.metadata.get("limit"), f"{name} is a number without a Limit"
