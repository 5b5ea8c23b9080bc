"""Kaniko's error wrappers, peeled off so that the innermost cause decides the diagnosis.

Kaniko and go-containerregistry wrap the real cause in prefixes (``fmt.Errorf("...: %w")``):

- ``error checking push permissions -- make sure you entered the correct tag name, and that you
  are authenticated correctly, and try again: `` (GoogleContainerTools/kaniko
  ``cmd/executor/cmd/root.go``) or ``error checking push permissions: `` (osscontainertools fork);
- ``checking push permission for "DEST": `` (``pkg/executor/push.go``, ``CheckPushPermissions``);
- ``creating push check transport for HOST failed: `` (go-containerregistry
  ``pkg/v1/remote/check.go``): it wraps *every* failure of the ``/v2/`` ping and the token
  handshake, so x509, DNS, connect, timeouts, proxies and plain HTTP all arrive behind it;
- ``error pushing image: `` and ``failed to push to destination DEST: `` (push);
- ``unable to complete operation after N attempts, last error: `` (``pkg/util/retry``);
- ``error building image: ``, ``error building stage: `` (build), ``failed to get filesystem
  from image: `` and ``extracting fs from image: `` (the base image's layers: a pull).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

__all__ = ["Peeled", "peel"]

# (pattern matched at the start of what is left, the stage it tells)
_WRAPPERS: tuple[tuple[re.Pattern[str], Optional[str]], ...] = (
    (
        re.compile(
            r"error checking push permissions(?: -- make sure you entered the correct tag name, "
            r"and that you are authenticated correctly, and try again)?: "
        ),
        "push-check",
    ),
    (re.compile(r"checking push permissions?(?: for \"(?P<dest>[^\"]*)\")?: "), "push-check"),
    (re.compile(r"creating push check transport for (?P<host>\S+) failed: "), "push-check"),
    (re.compile(r"error pushing image: "), "push"),
    (re.compile(r"failed to push to destination (?P<dest>\S+?): "), "push"),
    (re.compile(r"unable to complete operation after \d+ attempts, last error: "), None),
    (re.compile(r"error building image: "), "build"),
    (re.compile(r"error building stage: "), "build"),
    (re.compile(r"failed to get filesystem from image: "), "pull"),
    (re.compile(r"failed to execute command: (?=extracting fs from image: )"), None),
    (re.compile(r"extracting fs from image: "), "pull"),
    (re.compile(r"Error: "), None),  # cobra's prefix for a flag or path error
)
_MAX_WRAPPERS = 16
# a GET of a manifest or blob while building is the base image being pulled
_REGISTRY_GET = re.compile(r'(?:GET|Get|HEAD|Head) "?https?://\S+/v2/\S+/(?:manifests|blobs)/')


@dataclass(frozen=True)
class Peeled:
    cause: str  # what is left once every known wrapper is removed
    wrappers: tuple[str, ...]  # the prefixes removed, outermost first
    stage: Optional[str]  # 'push-check' | 'push' | 'pull' | 'build' | None (no wrapper)
    host: Optional[str] = None  # the registry the push check was talking to
    destination: Optional[str] = None


def peel(message: str) -> Peeled:
    """Remove Kaniko's wrapper prefixes from one error message."""
    text = message.strip()
    wrappers: list[str] = []
    stage: Optional[str] = None
    host = dest = None
    for _ in range(_MAX_WRAPPERS):
        for regex, tells in _WRAPPERS:
            m = regex.match(text)
            if m is None or not m.group(0):
                continue
            wrappers.append(m.group(0))
            groups = m.groupdict()
            host = groups.get("host") or host
            dest = groups.get("dest") or dest
            if tells is not None and (stage in (None, "build") or tells != "build"):
                stage = tells  # the innermost wrapper that tells wins; 'build' is the vaguest
            text = text[m.end() :]
            break
        else:
            break
    if stage == "build" and _REGISTRY_GET.match(text):
        stage = "pull"
    return Peeled(text, tuple(wrappers), stage, host, dest)
