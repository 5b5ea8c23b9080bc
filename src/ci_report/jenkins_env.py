"""The build that is reporting, read from the variables Jenkins sets for every build."""

from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass
from typing import Any, Mapping, Optional
from urllib.parse import urlsplit, urlunsplit

REDACTED_USERINFO = "****"


def strip_credentials(url: Optional[str]) -> Optional[str]:
    """``https://user:token@host/x`` -> ``https://host/x`` (build URLs end up in payloads).

    A URL that does not parse as ``scheme://host/...`` (``user:pass@host/x`` without a
    scheme, a malformed IPv6 address ``http://[::1``) has everything before its last ``@``
    replaced with ``****``: whatever it is, it never reaches a message, an entry or a file."""
    if not url:
        return url
    try:
        parts = urlsplit(url)  # a malformed port is kept as written: no parts.port here
        parsed = bool(parts.scheme and parts.netloc)
    except ValueError:
        parsed = False
    if not parsed:
        if "@" in url:
            return REDACTED_USERINFO + "@" + url.rpartition("@")[2]
        return url
    if "@" not in parts.netloc:
        return url
    # keep host[:port] as written
    netloc = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def url_userinfo(url: Optional[str]) -> Optional[str]:
    """The ``user:password`` part of ``url`` (also of one that does not parse), or None."""
    if not url:
        return None
    try:
        parts = urlsplit(url)
        netloc = parts.netloc if parts.scheme and parts.netloc else None
    except ValueError:
        netloc = None
    if netloc is None:
        head = url.rpartition("@")[0] if "@" in url else ""
        return head.split("://", 1)[-1] or None
    if "@" not in netloc:
        return None
    return netloc.rpartition("@")[0] or None


def normalize_endpoint(url: Optional[str]) -> Optional[str]:
    """The endpoint a URL names, comparable: lower-case scheme and host, no default port, no
    userinfo, no fragment. A URL that does not parse is returned redacted, as is."""
    if not url:
        return None
    try:
        parts = urlsplit(url.strip())
        port = parts.port
        host = parts.hostname
    except ValueError:
        return strip_credentials(url)
    if not parts.scheme or not host:
        return strip_credentials(url)
    scheme = parts.scheme.lower()
    host = host.lower()
    if ":" in host:
        host = f"[{host}]"
    if port is not None and (scheme, port) not in (("http", 80), ("https", 443)):
        host = f"{host}:{port}"
    return urlunsplit((scheme, host, parts.path or "/", parts.query, ""))


_REMOTE_PREFIX = re.compile(r"^(?:refs/remotes/)?(?:origin|upstream)/")


def clean_branch(branch: Optional[str]) -> Optional[str]:
    """``origin/main`` -> ``main``; ``refs/heads/x`` -> ``x``."""
    if not branch:
        return branch
    branch = _REMOTE_PREFIX.sub("", branch)
    if branch.startswith("refs/heads/"):
        branch = branch[len("refs/heads/") :]
    return branch


@dataclass(frozen=True)
class BuildContext:
    job_name: Optional[str] = None
    build_number: Optional[int] = None
    build_url: Optional[str] = None
    jenkins_url: Optional[str] = None
    node: Optional[str] = None
    workspace: Optional[str] = None
    git_commit: Optional[str] = None
    git_branch: Optional[str] = None
    change_id: Optional[str] = None
    build_tag: Optional[str] = None

    @classmethod
    def from_env(cls, env: Optional[Mapping[str, str]] = None) -> BuildContext:
        env = os.environ if env is None else env

        def get(name: str) -> Optional[str]:
            value = env.get(name)
            return value.strip() if value and value.strip() else None

        number = get("BUILD_NUMBER")
        return cls(
            job_name=get("JOB_NAME"),
            build_number=int(number) if number and number.isascii() and number.isdigit() else None,
            build_url=strip_credentials(get("BUILD_URL")),
            jenkins_url=strip_credentials(get("JENKINS_URL")),
            node=get("NODE_NAME"),
            workspace=get("WORKSPACE"),
            git_commit=get("GIT_COMMIT"),
            git_branch=clean_branch(get("GIT_BRANCH") or get("BRANCH_NAME")),
            change_id=get("CHANGE_ID"),
            build_tag=get("BUILD_TAG"),
        )

    @property
    def in_jenkins(self) -> bool:
        return bool(self.job_name and self.build_number is not None)

    @property
    def identity(self) -> str:
        """``job#number`` for messages and the JWT subject."""
        if self.job_name and self.build_number is not None:
            return f"{self.job_name}#{self.build_number}"
        return self.build_tag or "local"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
