"""The redactor's secret variables are exactly the secrets ci-report reads (no stale names,
none missing): console.py keeps its own tuple so it loads without config.py."""

from __future__ import annotations

import io

from ci_report.config import _setting_fields
from ci_report.console import SECRET_ENV_VARS, Console


def _secret_settings_env() -> set[str]:
    return {n for f in _setting_fields() if f.metadata.get("secret") for n in f.metadata["env"]}


def test_redactor_knows_exactly_the_secret_settings() -> None:
    read = _secret_settings_env()
    assert set(SECRET_ENV_VARS) == read
    assert len(SECRET_ENV_VARS) == len(read)


def test_each_secret_setting_is_masked_from_the_environment() -> None:
    env = {name: f"value-of-{name.lower()}-0123456789" for name in _secret_settings_env()}
    stream = io.StringIO()
    console = Console(stream=stream)
    console.redactor.add_from_env(env)
    console.info(" ".join(env.values()))
    for value in env.values():
        assert value not in stream.getvalue()
