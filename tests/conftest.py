"""Keep every test's caches (outbox, push history) out of the user's real ~/.cache."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import pytest


@pytest.fixture(autouse=True, scope="session")
def _private_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    real_cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    saved = {k: os.environ.get(k) for k in ("XDG_CACHE_HOME", "NPM_GROOVY_LINT_PREFIX")}
    # the Groovy linter is a 100 MB npm install: keep it where it is cached between runs
    os.environ.setdefault(
        "NPM_GROOVY_LINT_PREFIX", str(Path(real_cache) / "ci-report" / "npm-groovy-lint")
    )
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("xdg-cache"))
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
