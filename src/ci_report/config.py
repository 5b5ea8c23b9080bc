"""One configuration object, resolved once: flags > environment > config file > defaults.

The config file is ``.ci-report.toml`` in the working directory (keys in kebab-case or
snake_case), or the ``[tool.ci-report]`` table of ``pyproject.toml``, or the file named by
``--config`` / ``CI_REPORT_CONFIG``. Secrets are read from the environment only: a config file
that holds one is refused (files get committed; environment comes from Jenkins credentials).
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping, Optional

from .errors import ConfigError
from .wire import CALLBACK_PATH

if TYPE_CHECKING:  # pathlib is imported where a path is made: --help and --version need none
    from pathlib import Path


def _meta(
    *env: str,
    help: str = "",
    secret: bool = False,
    kind: str = "",
    limit: Optional[Limit] = None,
    **extra: Any,
) -> dict[str, Any]:
    return {"env": env, "help": help, "secret": secret, "kind": kind, "limit": limit, **extra}


@dataclass(frozen=True)
class Limit:
    """The range a number setting must lie in: ``> gt`` or ``>= ge``, ``<= le``. ``keywords``
    are words accepted instead of a number (``timeout: auto``); ``rule`` is how a person reads
    the range (default: made from the bounds). Published by ``ci-report config --json`` for the
    shared library, which checks the same rules before it calls the CLI."""

    gt: Optional[float] = None
    ge: Optional[float] = None
    le: Optional[float] = None
    keywords: tuple[str, ...] = ()
    unit: str = ""
    rule: str = ""

    def text(self) -> str:
        if self.rule:
            return self.rule
        if self.gt == 0:
            text = "a positive number"
        elif self.gt is not None:
            text = f"a number above {self.gt:g}"
        elif self.ge is not None:
            text = f"{self.ge:g} or more"
        else:
            text = "a number"
        if self.le is not None:
            text += f" up to {self.le:g}"
        if self.unit:
            text += (
                f" {self.unit}" if self.ge is not None and self.gt is None else f" of {self.unit}"
            )
        if self.keywords:
            text = " or ".join(repr(k) for k in self.keywords) + " or " + text
        return text

    def allows(self, value: float) -> bool:
        if not math.isfinite(value):  # NaN, inf
            return False
        if self.gt is not None and not value > self.gt:
            return False
        if self.ge is not None and not value >= self.ge:
            return False
        return not (self.le is not None and not value <= self.le)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"rule": self.text()}
        if self.gt is not None:
            data["exclusiveMinimum"] = self.gt
        if self.ge is not None:
            data["minimum"] = self.ge
        if self.le is not None:
            data["maximum"] = self.le
        if self.keywords:
            data["keywords"] = list(self.keywords)
        if self.unit:
            data["unit"] = self.unit
        return data


_ZERO_OR_MORE = Limit(ge=0)
_SECONDS_POSITIVE = Limit(gt=0, unit="seconds")
_SECONDS_OR_ZERO = Limit(ge=0, unit="seconds")


@dataclass
class Settings:
    """Every setting of every command. ``sources[name]`` says where each value came from."""

    # -- callback: where and who ---------------------------------------------------------
    url: Optional[str] = field(
        default=None,
        metadata=_meta(
            "CI_REPORT_URL", help=f"full callback URL (else API_CALLBACK_URL + {CALLBACK_PATH})"
        ),
    )
    api_callback_url: Optional[str] = field(
        default=None,
        metadata=_meta("API_CALLBACK_URL", help=f"platform base URL; {CALLBACK_PATH} is added"),
    )
    run_id: Optional[str] = field(
        default=None, metadata=_meta("RUN_ID", help="the platform's run id")
    )
    api_key: Optional[str] = field(
        default=None,
        repr=False,
        metadata=_meta("JENKINS_API_KEY", secret=True, help="X-Api-Key value"),
    )
    jwt_secret: Optional[str] = field(
        default=None,
        repr=False,
        metadata=_meta("JENKINS_JWT_SECRET", secret=True, help="HS256 key"),
    )
    signature_secret: Optional[str] = field(
        default=None,
        repr=False,
        metadata=_meta(
            "JENKINS_SIGNATURE_SECRET",
            secret=True,
            help="Standard Webhooks secret(s): whsec_... (space-separated for rotation) or raw",
        ),
    )
    jwt_issuer: str = field(default="ci-report", metadata=_meta("CI_REPORT_JWT_ISSUER"))
    jwt_audience: Optional[str] = field(
        default=None, metadata=_meta("CI_REPORT_JWT_AUDIENCE", help="default: the callback URL")
    )
    delivery_id: Optional[str] = field(
        default=None,
        metadata=_meta(
            "CI_REPORT_DELIVERY_ID",
            help="override the deterministic delivery id",
            default_text="derived",
        ),
    )

    # -- callback: what ------------------------------------------------------------------
    junit: list[str] = field(
        default_factory=list,
        metadata=_meta(
            "CI_REPORT_JUNIT",
            kind="list",
            help="report files or globs (repeatable; an explicit file path is always read)",
            default_text="Surefire, Failsafe, Gradle, pytest, generic",
        ),
    )
    build_result: Optional[str] = field(
        default=None,
        metadata=_meta(
            "CI_REPORT_BUILD_RESULT",
            help="SUCCESS, UNSTABLE, FAILURE, ABORTED or NOT_BUILT "
            "(Jenkins currentBuild.currentResult)",
        ),
    )
    status_style: str = field(
        default="default",
        metadata=_meta(
            "CI_REPORT_STATUS_STYLE",
            help="success|failed by default; extended adds unstable, aborted, not_built",
            choices=("default", "extended"),
        ),
    )
    duration_ms: Optional[int] = field(
        default=None,
        metadata=_meta(
            "CI_REPORT_DURATION_MS",
            limit=_ZERO_OR_MORE,
            help="build duration in ms (currentBuild.duration)",
            default_text="sum of suite times",
        ),
    )
    since: Optional[int] = field(
        default=None,
        metadata=_meta(
            "CI_REPORT_SINCE",
            limit=_ZERO_OR_MORE,
            help="skip reports older than the build start (epoch ms)",
            default_text="no age filter",
        ),
    )
    case_map: Optional[str] = field(
        default=None, metadata=_meta("CI_REPORT_CASE_MAP", help="JSON or CSV: test name -> caseId")
    )
    max_results: int = field(
        default=10_000,
        metadata=_meta(
            "CI_REPORT_MAX_RESULTS",
            limit=_ZERO_OR_MORE,
            help="cap on per-case results sent (failures first)",
        ),
    )
    max_message: int = field(
        default=8_000,
        metadata=_meta(
            "CI_REPORT_MAX_MESSAGE",
            limit=_ZERO_OR_MORE,
            help="cap on each errorMessage (characters)",
        ),
    )

    # -- callback: delivery --------------------------------------------------------------
    max_attempts: int = field(
        default=8,
        metadata=_meta(
            "CI_REPORT_MAX_ATTEMPTS", help="delivery attempts at most", limit=Limit(ge=1)
        ),
    )
    deadline: float = field(
        default=300.0,
        metadata=_meta(
            "CI_REPORT_DEADLINE", help="seconds for all delivery attempts", limit=_SECONDS_POSITIVE
        ),
    )
    connect_timeout: float = field(
        default=10.0, metadata=_meta("CI_REPORT_CONNECT_TIMEOUT", limit=_SECONDS_POSITIVE)
    )
    read_timeout: float = field(
        default=30.0, metadata=_meta("CI_REPORT_READ_TIMEOUT", limit=_SECONDS_POSITIVE)
    )
    ca_bundle: Optional[str] = field(
        default=None,
        metadata=_meta(
            "CI_REPORT_CA_BUNDLE",
            help="PEM file of CAs to trust (requests also reads REQUESTS_CA_BUNDLE)",
        ),
    )
    outbox: Optional[str] = field(
        default=None,
        metadata=_meta(
            "CI_REPORT_OUTBOX",
            help="outbox directory (undelivered callbacks)",
            default_text="~/.cache/ci-report/outbox",
        ),
    )
    outbox_ttl_days: float = field(
        default=7.0, metadata=_meta("CI_REPORT_OUTBOX_TTL_DAYS", limit=Limit(gt=0, unit="days"))
    )
    flush_budget: float = field(
        default=5.0,
        metadata=_meta(
            "CI_REPORT_FLUSH_BUDGET",
            help="seconds a callback spends resending older entries first (0: none)",
            limit=_SECONDS_OR_ZERO,
        ),
    )
    result_file: Optional[str] = field(
        default=None,
        metadata=_meta(
            "CI_REPORT_RESULT_FILE",
            help="where to write the result file",
            default_text="$WORKSPACE/ci-report/callback.json",
        ),
    )
    strict: bool = field(
        default=False, metadata=_meta("CI_REPORT_STRICT", help="non-zero exit when not delivered")
    )
    workspace: Optional[str] = field(default=None, metadata=_meta("WORKSPACE"))

    # -- image push ----------------------------------------------------------------------
    executor: str = field(
        default="/kaniko/executor",
        metadata=_meta("CI_REPORT_EXECUTOR", help="Kaniko executor; the image in docker mode"),
    )
    context: str = field(
        default=".", metadata=_meta("CI_REPORT_CONTEXT", help="build context directory")
    )
    dockerfile: Optional[str] = field(
        default=None,
        metadata=_meta(
            "CI_REPORT_DOCKERFILE",
            help="Dockerfile, as given or relative to the context",
            default_text="Dockerfile",
        ),
    )
    destinations: list[str] = field(
        default_factory=list,
        metadata=_meta(
            "CI_REPORT_DESTINATIONS",
            kind="list",
            help="fully qualified image reference to push (repeatable)",
        ),
    )
    timeout: str = field(
        default="auto",
        metadata=_meta(
            "CI_REPORT_TIMEOUT",
            help="'auto': sized from the estimate and measured bandwidth; or seconds "
            "(a fraction is cut to whole seconds)",
            limit=Limit(gt=0, keywords=("auto",), unit="seconds"),
            fix="--timeout auto or --timeout 1800",
        ),
    )
    report: Optional[str] = field(
        default=None,
        metadata=_meta(
            "CI_REPORT_REPORT", help="write the ci-report/image-push/v1 report JSON here"
        ),
    )
    bandwidth: Optional[float] = field(
        default=None,
        metadata=_meta(
            "CI_REPORT_BANDWIDTH",
            help="push bandwidth in MB/s when there is no push history yet",
            limit=Limit(gt=0, unit="MB/s"),
            fix="--bandwidth 0.5, or leave it out (the push history or 0.5 MB/s is used)",
        ),
    )
    history: Optional[str] = field(default=None, metadata=_meta("CI_REPORT_HISTORY"))
    docker_config: Optional[str] = field(default=None, metadata=_meta("DOCKER_CONFIG"))
    timeout_floor: float = field(
        default=600.0,
        metadata=_meta(
            "CI_REPORT_TIMEOUT_FLOOR", help="'auto' never goes below this", limit=_SECONDS_OR_ZERO
        ),
    )
    timeout_cap: float = field(
        default=10_800.0,
        metadata=_meta(
            "CI_REPORT_TIMEOUT_CAP",
            help="'auto' never exceeds this; pass the stage's own timeout() here",
            limit=_SECONDS_POSITIVE,
        ),
    )
    kill_grace: float = field(
        default=30.0,
        metadata=_meta(
            "CI_REPORT_KILL_GRACE",
            help="after our SIGTERM, SIGKILL the executor this much later",
            limit=_SECONDS_OR_ZERO,
        ),
    )
    heartbeat: float = field(
        default=30.0,
        metadata=_meta(
            "CI_REPORT_HEARTBEAT",
            help="progress line after this long without output",
            limit=Limit(ge=0, rule="0 (off) or more seconds"),
        ),
    )
    skip_if_no_dockerfile: bool = field(
        default=False,
        metadata=_meta(
            "CI_REPORT_SKIP_IF_NO_DOCKERFILE",
            help="no Dockerfile: report 'skipped' and exit 0 instead of failing",
        ),
    )

    # -- Jenkins remote API (trigger, sync) ----------------------------------------------
    jenkins_url: Optional[str] = field(
        default=None, metadata=_meta("JENKINS_URL", help="Jenkins base URL")
    )
    jenkins_user: Optional[str] = field(
        default=None,
        metadata=_meta("JENKINS_USER", help="Jenkins user; the token: env JENKINS_TOKEN"),
    )
    jenkins_token: Optional[str] = field(
        default=None,
        repr=False,
        metadata=_meta("JENKINS_TOKEN", secret=True, help="Jenkins API token"),
    )
    queue_timeout: float = field(
        default=600.0,
        metadata=_meta(
            "CI_REPORT_QUEUE_TIMEOUT",
            help="max seconds until the build starts",
            limit=_SECONDS_POSITIVE,
        ),
    )
    build_timeout: float = field(
        default=3600.0,
        metadata=_meta(
            "CI_REPORT_BUILD_TIMEOUT",
            help="max seconds for the build once started",
            limit=_SECONDS_POSITIVE,
        ),
    )

    # -- run ledger and reconciler (receiver, reconcile, trigger --ledger) -----------------
    ledger_db: Optional[str] = field(
        default=None,
        metadata=_meta("CI_REPORT_DB", help="run ledger: a SQLite path or postgresql://..."),
    )
    callback_grace: float = field(
        default=120.0,
        metadata=_meta(
            "CI_REPORT_CALLBACK_GRACE",
            limit=_SECONDS_OR_ZERO,
            help="seconds a finished build's callback may take",
        ),
    )
    run_build_timeout: Optional[float] = field(
        default=None,
        metadata=_meta(
            "CI_REPORT_RUN_BUILD_TIMEOUT",
            limit=_SECONDS_POSITIVE,
            help="seconds a tracked build may run (none: no limit)",
        ),
    )
    expire_after: float = field(
        default=86_400.0,
        metadata=_meta(
            "CI_REPORT_EXPIRE_AFTER",
            limit=_SECONDS_POSITIVE,
            help="seconds a run may stay open at most",
        ),
    )
    reconcile_interval: float = field(
        default=30.0,
        metadata=_meta(
            "CI_REPORT_RECONCILE_INTERVAL",
            limit=_SECONDS_POSITIVE,
            help="seconds between reconcile passes",
        ),
    )
    stuck_after: float = field(
        default=1800.0,
        metadata=_meta(
            "CI_REPORT_STUCK_AFTER",
            limit=_SECONDS_POSITIVE,
            help="seconds an open run may go without any change before the page and "
            "ci_report_stuck_runs call it stuck",
        ),
    )

    # -- the reference receiver (ci-report receiver) --------------------------------------
    receiver_host: str = field(
        default="127.0.0.1",
        metadata=_meta("CI_REPORT_RECEIVER_HOST", help="address the receiver listens on"),
    )
    receiver_port: int = field(
        default=8080,
        metadata=_meta(
            "CI_REPORT_RECEIVER_PORT", limit=Limit(ge=0, le=65535), help="port (0: a free one)"
        ),
    )
    require: list[str] = field(
        default_factory=list,
        metadata=_meta(
            "CI_REPORT_REQUIRE",
            kind="list",
            help="auth modes every callback must present (api-key, jwt, hmac); an API key "
            "alone gives no integrity",
        ),
    )
    api_token: Optional[str] = field(
        default=None,
        repr=False,
        metadata=_meta(
            "CI_REPORT_API_TOKEN",
            secret=True,
            help="Bearer token for the receiver's management API and page",
        ),
    )
    max_body: int = field(
        default=32_000_000,
        metadata=_meta(
            "CI_REPORT_MAX_BODY",
            limit=Limit(ge=1, unit="bytes"),
            help="largest callback body the receiver reads (after authentication), bytes",
        ),
    )

    # -- bookkeeping (not settings) ------------------------------------------------------
    sources: dict[str, str] = field(default_factory=dict, repr=False, compare=False)
    config_file: Optional[str] = field(default=None, repr=False, compare=False)

    # -- derived values ------------------------------------------------------------------
    @property
    def callback_url(self) -> Optional[str]:
        """``url``, else ``api_callback_url`` + ``/api/jenkins/callback``."""
        if self.url:
            return self.url
        if self.api_callback_url:
            return self.api_callback_url.rstrip("/") + CALLBACK_PATH
        return None

    @property
    def workspace_path(self) -> Path:
        from pathlib import Path

        return Path(self.workspace) if self.workspace else Path.cwd()

    @property
    def result_file_path(self) -> Path:
        from pathlib import Path

        if self.result_file:
            return Path(self.result_file)
        return self.workspace_path / "ci-report" / "callback.json"

    @property
    def outbox_path(self) -> Path:
        from pathlib import Path

        if self.outbox:
            return Path(self.outbox).expanduser()
        if not os.environ.get("XDG_CACHE_HOME") and home_dir() is None:
            # no home (HOME unset, a uid without a passwd entry): the workspace keeps it
            return self.workspace_path / "ci-report" / "outbox"
        return cache_dir() / "outbox"

    @property
    def history_path(self) -> Path:
        from pathlib import Path

        if self.history:
            return Path(self.history).expanduser()
        return cache_dir() / "push-history.json"

    @property
    def signature_secrets(self) -> list[str]:
        """Several ``whsec_`` secrets (rotation) or one raw secret."""
        value = (self.signature_secret or "").strip()
        if not value:
            return []
        parts = value.split()
        if all(p.startswith("whsec_") for p in parts):
            return parts
        return [value]

    @property
    def auth_modes(self) -> list[str]:
        modes = []
        if self.api_key:
            modes.append("api-key")
        if self.jwt_secret:
            modes.append("jwt")
        if self.signature_secret:
            modes.append("hmac")
        return modes

    def secrets(self) -> list[str]:
        return [
            getattr(self, f.name)
            for f in dataclasses.fields(self)
            if f.metadata.get("secret") and getattr(self, f.name)
        ]

    def describe(self) -> list[tuple[str, Any, str]]:
        """(name, value, source) for every setting; secrets as "set"/"unset" only."""
        rows = []
        for f in _setting_fields():
            value = getattr(self, f.name)
            if f.metadata.get("secret"):
                value = "set" if value else "unset"
            rows.append((f.name, value, self.sources.get(f.name, "default")))
        return rows


def home_dir() -> Optional[Path]:
    """This user's home directory, or None when it is unknown (``HOME`` unset and a uid
    without a passwd entry, as in arbitrary-UID pods): never raises."""
    from pathlib import Path

    try:
        home = os.path.expanduser("~")
    except (KeyError, RuntimeError, OSError):
        return None
    return Path(home) if home and home != "~" and os.path.isabs(home) else None


def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/ci-report``, else ``~/.cache/ci-report``; when the home directory is
    unknown, ``<tmp>/ci-report-<uid>`` (never raises; the outbox then lives in the workspace,
    see ``Settings.outbox_path``)."""
    from pathlib import Path

    base = os.environ.get("XDG_CACHE_HOME")
    if base:
        return Path(base) / "ci-report"
    home = home_dir()
    if home is None:
        import tempfile

        uid = os.getuid() if hasattr(os, "getuid") else "user"
        return Path(tempfile.gettempdir()) / f"ci-report-{uid}"
    return home / ".cache" / "ci-report"


def _setting_fields() -> list[dataclasses.Field[Any]]:
    return [f for f in dataclasses.fields(Settings) if f.name not in ("sources", "config_file")]


SETTING_NAMES = frozenset(f.name for f in _setting_fields())
_FIELDS = {f.name: f for f in _setting_fields()}


def _field_type(f: dataclasses.Field[Any]) -> str:
    if f.metadata.get("kind"):
        return str(f.metadata["kind"])
    t = str(f.type)
    for name in ("bool", "int", "float"):
        if name in t:
            return name
    if "list" in t:
        return "list"
    return "str"


_TRUE = {"1", "true", "yes", "on", "y"}
_FALSE = {"0", "false", "no", "off", "n", ""}


def setting_limits() -> dict[str, dict[str, Any]]:
    """Every limited setting: ``{name: {"env": [...], "rule": ..., "minimum": ...}}`` (JSON)."""
    return {
        f.name: {"env": list(f.metadata["env"]), **f.metadata["limit"].to_json()}
        for f in _setting_fields()
        if f.metadata.get("limit")
    }


def limit_error(name: str, value: Any, label: str = "") -> Optional[ConfigError]:
    """The error for ``value`` outside setting ``name``'s :class:`Limit` (None: allowed).

    ``label`` names where it came from (``--bandwidth``, ``CI_REPORT_BANDWIDTH``); default the
    flag. A number given as text (``"1800.5"``) is read as a number; a keyword passes."""
    f = _FIELDS[name]
    limit: Optional[Limit] = f.metadata.get("limit")
    if limit is None or value is None:
        return None
    label = label or "--" + name.replace("_", "-")
    if isinstance(value, str):
        text = value.strip().lower()
        if text in limit.keywords:
            return None
        try:
            number = float(text)
        except ValueError:
            return ConfigError(
                f"{label} {value!r} is neither {' nor '.join(repr(k) for k in limit.keywords)} "
                f"nor {limit.unit or 'a number'}",
                fix=f"use {limit.text()}",
            )
    else:
        number = float(value)
    if limit.allows(number):
        return None
    return ConfigError(
        f"{label} {number:g} must be {limit.text()}",
        fix=f.metadata.get("fix") or f"use {limit.text()}",
    )


def _label(f: dataclasses.Field[Any], origin: str) -> str:
    if origin == "flag":
        return "--" + f.name.replace("_", "-")
    if origin.startswith("env "):
        return origin[4:]
    return f"{f.name.replace('_', '-')} ({origin})"


def _convert(f: dataclasses.Field[Any], value: Any, origin: str) -> Any:
    converted = _convert_kind(f, value, origin)
    error = limit_error(f.name, converted, _label(f, origin))
    if error is not None:
        raise error
    return converted


def _convert_kind(f: dataclasses.Field[Any], value: Any, origin: str) -> Any:
    kind = _field_type(f)
    try:
        if kind == "bool":
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in _TRUE:
                return True
            if text in _FALSE:
                return False
            raise ValueError(f"expected true/false, got {value!r}")
        if kind == "int":
            if isinstance(value, bool):
                raise ValueError("expected a whole number")
            return int(str(value).strip()) if not isinstance(value, int) else value
        if kind == "float":
            return float(str(value).strip()) if not isinstance(value, (int, float)) else value
        if kind == "list":
            if isinstance(value, str):
                return [p.strip() for p in value.replace("\n", ",").split(",") if p.strip()]
            return [str(v) for v in value]
        text = value if isinstance(value, str) else str(value)
        if f.metadata.get("secret"):
            return text.strip()
        choices = f.metadata.get("choices")
        if choices:
            text = text.strip().lower()
            if text not in choices:
                raise ValueError(f"expected one of {', '.join(choices)}")
        return text
    except ValueError as exc:
        shown = "(secret)" if f.metadata.get("secret") else repr(value)
        wanted = {"int": "a whole number", "float": "a number", "bool": "true or false"}
        choices = f.metadata.get("choices")
        raise ConfigError(
            f"invalid value {shown} for {f.name} from {origin}",
            cause=str(exc) if not f.metadata.get("secret") else None,
            fix="use " + (" or ".join(choices) if choices else wanted.get(kind, f"a valid {kind}")),
        ) from None


def _load_toml(path: Path) -> dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - exercised on 3.9/3.10 only
        import tomli as tomllib
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}", cause=exc.strerror) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(
            f"config file {path} is not valid TOML", cause=str(exc), fix="fix the TOML syntax"
        ) from None


def find_config(cwd: Path, explicit: Optional[str] = None) -> tuple[Optional[Path], dict[str, Any]]:
    """The config file in force and its ci-report table (empty when there is none)."""
    from pathlib import Path

    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise ConfigError(
                f"config file {path} does not exist", fix="check --config / CI_REPORT_CONFIG"
            )
        data = _load_toml(path)
        if path.name == "pyproject.toml":
            data = data.get("tool", {}).get("ci-report", {})
        table = data
        return path, dict(table)
    own = cwd / ".ci-report.toml"
    if own.is_file():
        return own, _load_toml(own)
    pyproject = cwd / "pyproject.toml"
    if pyproject.is_file():
        table = _load_toml(pyproject).get("tool", {}).get("ci-report")
        if isinstance(table, dict):
            return pyproject, dict(table)
    return None, {}


def load_settings(
    flags: Optional[Mapping[str, Any]] = None,
    *,
    env: Optional[Mapping[str, str]] = None,
    cwd: Optional[Path] = None,
    config_file: Optional[str] = None,
) -> Settings:
    """Resolve every setting once. ``flags`` holds command-line values; ``None`` = not given."""
    from pathlib import Path

    flags = dict(flags or {})
    env = os.environ if env is None else env
    cwd = cwd or Path.cwd()
    unknown = set(flags) - SETTING_NAMES
    if unknown:
        raise ValueError(f"unknown settings passed as flags: {sorted(unknown)}")

    path, table = find_config(cwd, config_file or env.get("CI_REPORT_CONFIG"))
    file_values: dict[str, Any] = {}
    for key, value in table.items():
        name = key.replace("-", "_")
        if name not in SETTING_NAMES:
            raise ConfigError(
                f"unknown key {key!r} in {path}",
                fix="valid keys: "
                + ", ".join(
                    sorted(
                        n.replace("_", "-")
                        for n in SETTING_NAMES
                        if not _FIELDS[n].metadata.get("secret")
                    )
                ),
            )
        meta = _FIELDS[name].metadata
        if meta.get("secret"):
            # refused even when the environment sets it too: the file still leaks it
            raise ConfigError(
                f"{path} holds the secret {key!r}",
                cause="secrets in files end up in version control",
                fix=f"remove it and set the environment variable {meta['env'][0]} "
                "(in Jenkins: withCredentials)",
            )
        file_values[name] = value

    settings = Settings()
    settings.config_file = str(path) if path else None
    for f in _setting_fields():
        meta = f.metadata
        if flags.get(f.name) not in (None, (), []):
            value, origin = flags[f.name], "flag"
        elif any(env.get(e) not in (None, "") for e in meta["env"]):
            name = next(e for e in meta["env"] if env.get(e) not in (None, ""))
            value, origin = env[name], f"env {name}"
        elif f.name in file_values:
            value, origin = file_values[f.name], f"config {path}"
        else:
            continue
        setattr(settings, f.name, _convert(f, value, origin))
        settings.sources[f.name] = origin
    return settings
