"""Registry credentials from a Docker ``config.json`` (the file Kaniko reads).

Where: an explicit file or directory, else ``$DOCKER_CONFIG/config.json``, else
``/kaniko/.docker/config.json``, else ``~/.docker/config.json``.

What: ``auths`` entries (``auth`` = base64 ``user:pass``, or ``username``/``password``,
``identitytoken``, ``registrytoken``), ``credHelpers`` per host and ``credsStore``. Keys may be
written as ``reg.example.com``, ``https://reg.example.com/v2/`` and so on; Docker Hub is known as
``docker.io``, ``index.docker.io``, ``registry-1.docker.io`` and ``https://index.docker.io/v1/``.
Nothing here ever puts a password in a message.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

from ..errors import ConfigError
from .command import executor_env

__all__ = [
    "DOCKER_HUB_ALIASES",
    "Credentials",
    "DockerConfig",
    "default_config_path",
    "load_docker_config",
    "normalize_host",
]

DOCKER_HUB_ALIASES = (
    "docker.io",
    "index.docker.io",
    "registry-1.docker.io",
    "registry.hub.docker.com",
)
KANIKO_CONFIG = Path("/kaniko/.docker/config.json")


@dataclass(repr=False)
class Credentials:
    username: Optional[str] = None
    password: Optional[str] = None
    identity_token: Optional[str] = None  # OAuth refresh token (docker login with an IdP)
    registry_token: Optional[str] = None  # a bearer token to send as is
    source: str = ""  # "auths[reg.example.com].auth", "credHelpers[ecr-login]", ...

    def __repr__(self) -> str:  # never show secrets
        return f"Credentials(username={self.username!r}, source={self.source!r})"

    @property
    def has_basic(self) -> bool:
        return bool(self.username) and self.password is not None

    def secrets(self) -> list[str]:
        return [s for s in (self.password, self.identity_token, self.registry_token) if s]

    def basic_header(self) -> str:
        raw = f"{self.username or ''}:{self.password or ''}".encode()
        return "Basic " + base64.b64encode(raw).decode("ascii")


def normalize_host(key: str) -> str:
    """``https://Reg.Example.com:5000/v2/`` -> ``reg.example.com:5000``; Docker Hub aliases ->
    ``docker.io``."""
    host = key.strip()
    if "://" in host:
        host = host.split("://", 1)[1]
    host = host.split("/", 1)[0].lower()
    if host in DOCKER_HUB_ALIASES:
        return "docker.io"
    return host


def default_config_path(env: Optional[dict[str, str]] = None) -> Path:
    env = dict(os.environ) if env is None else env
    if env.get("DOCKER_CONFIG"):
        return Path(env["DOCKER_CONFIG"]).expanduser() / "config.json"
    if KANIKO_CONFIG.is_file():
        return KANIKO_CONFIG
    return Path.home() / ".docker" / "config.json"


@dataclass
class DockerConfig:
    path: Optional[Path] = None
    exists: bool = False
    auths: dict[str, dict[str, Any]] = field(default_factory=dict)  # normalized host -> entry
    cred_helpers: dict[str, str] = field(default_factory=dict)  # normalized host -> helper
    creds_store: Optional[str] = None
    raw_keys: dict[str, str] = field(default_factory=dict)  # normalized host -> key as written
    # credsStore/credHelpers values that are not helper names ("../../bin/sh"): never run
    refused_helpers: list[str] = field(default_factory=list)

    # -- lookups -------------------------------------------------------------------------
    def hosts(self) -> list[str]:
        return sorted(set(self.auths) | set(self.cred_helpers))

    def credentials_for(self, registry_host: str) -> Optional[Credentials]:
        """Credentials stored inline for ``registry_host`` (None when there are none, or when
        the entry cannot be decoded: :meth:`problems_for` says why)."""
        host = normalize_host(registry_host)
        entry = self.auths.get(host)
        if not entry:
            return None
        key = self.raw_keys.get(host, host)
        creds = Credentials(source=f"auths[{key}]")
        auth = entry.get("auth")
        if isinstance(auth, str) and auth.strip():
            decoded = _decode_auth(auth)
            if decoded is None:
                return None
            creds.username, creds.password = decoded
            creds.source += ".auth"
        if isinstance(entry.get("username"), str) and entry.get("username"):
            creds.username = entry["username"]
            creds.password = entry.get("password") if isinstance(entry.get("password"), str) else ""
        if isinstance(entry.get("identitytoken"), str) and entry["identitytoken"]:
            creds.identity_token = entry["identitytoken"]
        if isinstance(entry.get("registrytoken"), str) and entry["registrytoken"]:
            creds.registry_token = entry["registrytoken"]
        if not (creds.has_basic or creds.identity_token or creds.registry_token):
            return None
        return creds

    def helper_for(self, registry_host: str) -> Optional[str]:
        """The credential helper that would answer for ``registry_host`` (credHelpers, else
        credsStore), e.g. ``ecr-login``; Kaniko runs ``docker-credential-<name>``."""
        host = normalize_host(registry_host)
        return self.cred_helpers.get(host) or self.creds_store or None

    def has_credentials(self, registry_host: str) -> bool:
        return self.credentials_for(registry_host) is not None or bool(
            self.helper_for(registry_host)
        )

    def problems_for(self, registry_host: str) -> list[str]:
        """Human reasons why the entry for ``registry_host`` is unusable (empty if fine)."""
        host = normalize_host(registry_host)
        entry = self.auths.get(host)
        if entry is None:
            return []
        key = self.raw_keys.get(host, host)
        auth = entry.get("auth")
        if isinstance(auth, str) and auth.strip() and _decode_auth(auth) is None:
            return [
                f"auths[{key}].auth in {self.path} is not base64 of 'user:password'",
            ]
        if self.credentials_for(host) is None:
            return [f"auths[{key}] in {self.path} has no auth, username/password or token"]
        return []

    def credentials_via_helper(
        self, registry_host: str, *, timeout: float = 10.0
    ) -> Optional[Credentials]:
        """Ask ``docker-credential-<helper> get`` (if that program is on PATH)."""
        helper = self.helper_for(registry_host)
        if not helper:
            return None
        if not valid_helper_name(helper):
            return None
        program = shutil.which(f"docker-credential-{helper}")
        if not program:
            return None
        host = normalize_host(registry_host)
        query = "https://index.docker.io/v1/" if host == "docker.io" else host
        try:
            proc = subprocess.run(
                [program, "get"],
                input=query,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
                env=executor_env(),
            )
            if proc.returncode != 0:
                return None
            data = json.loads(proc.stdout)
        except (OSError, subprocess.SubprocessError, ValueError):
            return None
        user, secret = data.get("Username"), data.get("Secret")
        if not isinstance(secret, str) or not secret:
            return None
        creds = Credentials(source=f"credHelpers[{helper}]")
        if user == "<token>":
            creds.identity_token = secret
        else:
            creds.username, creds.password = str(user or ""), secret
        return creds

    def resolve(self, registry_host: str, *, timeout: float = 10.0) -> Optional[Credentials]:
        """Inline credentials, else what the helper says, else None (anonymous)."""
        return self.credentials_for(registry_host) or (
            self.credentials_via_helper(registry_host, timeout=timeout) if timeout > 0 else None
        )


def _decode_auth(auth: str) -> Optional[tuple[str, str]]:
    text = auth.strip()
    try:
        raw = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
        decoded = raw.decode("utf-8")
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return None
    if ":" not in decoded:
        return None
    user, password = decoded.split(":", 1)
    if not user:
        return None
    return user, password.strip("\n")


# docker-credential-<name> is looked up on PATH; a name with a path separator or ".." would make
# the lookup run a program from the workspace (shutil.which and Go's LookPath both take a name
# containing "/" as a path)
_HELPER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}")


def valid_helper_name(name: str) -> bool:
    return bool(_HELPER_NAME.fullmatch(name)) and ".." not in name


def parse_docker_config(data: Any, path: Optional[Path] = None) -> DockerConfig:
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path} is not a Docker config (expected a JSON object)",
            fix='write {"auths": {"<registry>": {"auth": "<base64 user:pass>"}}}',
        )
    config = DockerConfig(path=path, exists=True)
    auths = data.get("auths") or {}
    if isinstance(auths, dict):
        for key, entry in auths.items():
            if isinstance(entry, dict):
                host = normalize_host(str(key))
                # the first spelling wins, as in docker/cli (it prefers the exact key)
                if host not in config.auths or normalize_host(str(key)) == str(key):
                    config.auths[host] = entry
                    config.raw_keys[host] = str(key)
    helpers = data.get("credHelpers") or {}
    if isinstance(helpers, dict):
        for key, name in helpers.items():
            if isinstance(name, str) and name:
                if valid_helper_name(name):
                    config.cred_helpers[normalize_host(str(key))] = name
                else:
                    config.refused_helpers.append(f"credHelpers[{key}]")
    store = data.get("credsStore")
    if isinstance(store, str) and store:
        if valid_helper_name(store):
            config.creds_store = store
        else:
            config.refused_helpers.append("credsStore")
    return config


def load_docker_config(path: Union[str, Path, None] = None) -> DockerConfig:
    """Read a Docker ``config.json``. ``path`` may be the file or its directory. A missing file
    gives an empty config (``exists=False``); a file that is not valid JSON is a ConfigError."""
    if path:
        candidate = Path(path).expanduser()
        if candidate.is_dir() or str(path).endswith(("/", os.sep)):
            candidate = candidate / "config.json"
    else:
        candidate = default_config_path()
    if not candidate.is_file():
        return DockerConfig(path=candidate, exists=False)
    try:
        text = candidate.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            f"cannot read Docker config {candidate}", cause=exc.strerror or str(exc)
        ) from None
    if not text.strip():
        return DockerConfig(path=candidate, exists=True)
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ConfigError(
            f"Docker config {candidate} is not valid JSON",
            cause=f"line {getattr(exc, 'lineno', '?')}: {getattr(exc, 'msg', exc)}",
            fix="fix the JSON (the Jenkins credential or the file written for Kaniko)",
        ) from None
    return parse_docker_config(data, candidate)
