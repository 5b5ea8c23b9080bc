"""Installs ci-report into the venv that runs this file, from an explicit source, hash-pinned.

Run by ``ciReport.install()`` (shared library) with the venv's own Python, after the venv exists.
Standard library only (Python >= 3.9). Every value comes from the environment, so no value (and no
credential) is ever on a command line that ``sh -x`` would print:

- ``CI_REPORT_VERSION``: the ci-report version (``ci-report==VERSION`` from an index or wheelhouse);
- ``CI_REPORT_REQUIREMENTS``: a requirements file that pins every dependency with ``--hash``; it is
  installed first in pip's hash-checking mode (``--require-hashes --no-deps``), so a dependency that
  is not byte for byte the file the library was released with is refused;
- the source of ci-report itself, exactly one of:
  ``CI_REPORT_INDEX_URL`` (a PEP 503 index; ``CI_REPORT_INDEX_USER``/``CI_REPORT_INDEX_PASSWORD``
  for its login, put into the URL here and never printed), ``CI_REPORT_WHEEL_URL`` (a wheel; with
  ``CI_REPORT_WHEEL_SHA256`` its hash is checked too; the dependencies come from
  ``CI_REPORT_INDEX_URL`` when set, else from pip's own configuration), ``CI_REPORT_WHEELHOUSE``
  (a folder of wheels on the agent: nothing is downloaded).

Then ``pip check`` proves the pinned dependencies satisfy this ci-report. Exit 0 when installed,
1 with a ``ciReport.install:`` cause and fix on stderr otherwise, 2 on a wrong environment.
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from typing import Dict, List, Optional

PREFIX = "ciReport.install:"
PIP_TIMEOUT_S = 600
PROBE_TIMEOUT_S = 20
MAX_OUTPUT_LINES = 400


class InstallError(Exception):
    """A failure with what to tell the user (cause, then fix)."""


def say(text: str) -> None:
    sys.stderr.write(f"{PREFIX} {text}\n")
    sys.stderr.flush()


def with_login(url: str, user: str, password: str) -> str:
    """``url`` with ``user:password@`` in it (percent-encoded), replacing any userinfo it had."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    login = urllib.parse.quote(user, safe="") + ":" + urllib.parse.quote(password, safe="")
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{login}@{host}"))


def without_login(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urllib.parse.urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


class Pip:
    """Runs the venv's pip with a prepared environment and prints its output with secrets masked."""

    def __init__(self, env: Dict[str, str], secrets: List[str]):
        self.env = env
        self.secrets = [s for s in secrets if s]

    def mask(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "****")
        return text

    def run(self, args: List[str]) -> tuple[int, str]:
        # -I: no PYTHONPATH/PYTHONHOME/user site and not the current folder: an agent's PYTHONPATH
        # holding some other ci-report must not count as "already satisfied"
        cmd = [sys.executable, "-I", "-m", "pip", "--disable-pip-version-check", "--no-input"]
        cmd += args
        try:
            proc = subprocess.run(
                cmd,
                env=self.env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                errors="replace",
                timeout=PIP_TIMEOUT_S,
            )
        except subprocess.TimeoutExpired:
            raise InstallError(
                f"pip did not finish within {PIP_TIMEOUT_S} s (pip {' '.join(args[:1])});"
                " fix: check that the package source answers from this agent"
            ) from None
        output = self.mask(proc.stdout)
        lines = output.splitlines()
        shown = lines[-MAX_OUTPUT_LINES:]
        if len(lines) > len(shown):
            sys.stdout.write(f"[... {len(lines) - len(shown)} lines of pip output left out ...]\n")
        for line in shown:
            sys.stdout.write(line + "\n")
        sys.stdout.flush()
        return proc.returncode, output


def index_status(index: str, user: str, password: str) -> Optional[int]:
    """The HTTP status of the index's ci-report page with the login, or None when not known.

    pip reports an index that refuses the login only as "no matching distribution", so after a
    failure this asks once (bounded in time, nothing read) to tell a refused login apart.
    """
    request = urllib.request.Request(index.rstrip("/") + "/ci-report/", method="GET")
    if user or password:
        token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=PROBE_TIMEOUT_S) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except (OSError, ValueError):
        return None


def explain(
    output: str, source: str, requirements: str, version: str, login_status: Optional[int] = None
) -> str:
    """Cause and fix for a failed pip run, from what pip printed (and the index's answer)."""
    if "DO NOT MATCH THE HASHES" in output or "do not match the hashes" in output.lower():
        return (
            f"a downloaded file does not match the hash pinned for it (from {source});"
            f" pinned in {requirements}. The source serves a file other than the one this release"
            " was locked against: a changed or replaced package. Nothing was installed from it."
            " fix: check the source (mirror, proxy cache); if the change is intended, regenerate"
            " the pinned requirements (scripts/lock-install-requirements) or pass requirementsFile"
        )
    if "Hashes are required in --require-hashes mode" in output:
        return (
            f"{requirements} pins a requirement without its hash: every line needs"
            " --hash=sha256:... (hash-checking mode); fix: make the file with"
            " scripts/lock-install-requirements or pip-compile --generate-hashes"
        )
    if login_status in (401, 403) or " 401 " in output or " 403 " in output:
        return (
            f"{source} refused the login (HTTP {login_status or '401/403'});"
            " fix: check credentialsId (a username/password credential for that index) and"
            " that the account may read it"
        )
    if "No matching distribution found for ci-report" in output:
        return (
            f"ci-report {version} is not available from {source};"
            " fix: publish that version there, or pass wheelUrl or wheelhouse"
        )
    if "No matching distribution found" in output or "Could not find a version" in output:
        return (
            f"a pinned dependency is not available from {source} (see pip's lines above);"
            " fix: make the index (or wheelhouse) carry the versions pinned in"
            f" {requirements}"
        )
    if (
        "Failed to establish a new connection" in output
        or "Name or service not known" in output
        or "Temporary failure in name resolution" in output
        or "timed out" in output
    ):
        return f"{source} cannot be reached from this agent; fix: check the URL, DNS and proxy"
    return f"pip failed installing from {source} (see its lines above)"


def read_env() -> Dict[str, str]:
    keys = [
        "CI_REPORT_VERSION",
        "CI_REPORT_REQUIREMENTS",
        "CI_REPORT_INDEX_URL",
        "CI_REPORT_INDEX_USER",
        "CI_REPORT_INDEX_PASSWORD",
        "CI_REPORT_WHEEL_URL",
        "CI_REPORT_WHEEL_SHA256",
        "CI_REPORT_WHEELHOUSE",
    ]
    return {k: os.environ.get(k, "").strip() for k in keys}


def pip_environment(given: Dict[str, str]) -> tuple[Dict[str, str], str, List[str]]:
    """The environment pip runs with, the source as shown to people, and the secrets to mask.

    With an index or a wheelhouse, that source is the only one: pip's configuration files are not
    read (``PIP_CONFIG_FILE`` = devnull) and the agent's ``PIP_*INDEX*``/``PIP_FIND_LINKS`` are
    dropped, so no extra index can supply a package named ci-report. A wheel URL alone keeps pip's
    configuration for the dependencies: they are hash-pinned, whichever index serves them.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("CI_REPORT_INDEX_")}
    for key in ("PIP_USER", "PIP_TARGET", "PIP_PREFIX", "PIP_ROOT", "PIP_EDITABLE"):
        env.pop(key, None)  # into the venv, nowhere else
    secrets: List[str] = []
    index, wheelhouse = given["CI_REPORT_INDEX_URL"], given["CI_REPORT_WHEELHOUSE"]
    if not index and not wheelhouse:
        return env, "pip's configured index", secrets
    for key in ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_NO_INDEX", "PIP_FIND_LINKS"):
        env.pop(key, None)
    env["PIP_CONFIG_FILE"] = os.devnull
    if wheelhouse:
        if not os.path.isdir(wheelhouse):
            raise InstallError(
                f"the wheelhouse {wheelhouse} is not a folder on this agent;"
                " fix: copy the wheels there (pip download -r <requirements> plus the ci-report"
                " wheel) or pass another wheelhouse"
            )
        env["PIP_NO_INDEX"] = "1"
        env["PIP_FIND_LINKS"] = wheelhouse
        return env, f"the wheelhouse {wheelhouse}", secrets
    user, password = given["CI_REPORT_INDEX_USER"], given["CI_REPORT_INDEX_PASSWORD"]
    if user or password:
        env["PIP_INDEX_URL"] = with_login(index, user, password)
        secrets += [password, urllib.parse.quote(password, safe="")]
    else:
        env["PIP_INDEX_URL"] = index
    return env, f"the index {without_login(index)}", secrets


def login_status(given: Dict[str, str]) -> Optional[int]:
    """The index's answer to the login, after pip failed (None without an index)."""
    index = given["CI_REPORT_INDEX_URL"]
    if not index:
        return None
    return index_status(index, given["CI_REPORT_INDEX_USER"], given["CI_REPORT_INDEX_PASSWORD"])


def install(given: Dict[str, str]) -> None:
    version, requirements = given["CI_REPORT_VERSION"], given["CI_REPORT_REQUIREMENTS"]
    wheel_url, wheel_sha = given["CI_REPORT_WHEEL_URL"], given["CI_REPORT_WHEEL_SHA256"].lower()
    if not version or not requirements:
        raise InstallError("CI_REPORT_VERSION and CI_REPORT_REQUIREMENTS must be set")
    if not os.path.isfile(requirements):
        raise InstallError(f"the pinned requirements file {requirements} does not exist")
    sources = [bool(given["CI_REPORT_WHEELHOUSE"]), bool(wheel_url)]
    if sum(sources) > 1 or (given["CI_REPORT_WHEELHOUSE"] and given["CI_REPORT_INDEX_URL"]):
        raise InstallError(
            "give one source: indexUrl, wheelUrl (with or without indexUrl) or wheelhouse"
        )
    if not any(sources) and not given["CI_REPORT_INDEX_URL"]:
        raise InstallError("no source given: indexUrl, wheelUrl or wheelhouse")
    env, source, secrets = pip_environment(given)
    pip = Pip(env, secrets)

    rc, out = pip.run(["install", "--require-hashes", "--no-deps", "-r", requirements])
    if rc != 0:
        cause = explain(out, source, requirements, version, login_status(given))
        raise InstallError(f"the pinned dependencies: {cause}")

    own_source = source
    with tempfile.TemporaryDirectory(prefix="ci-report-install-") as tmp:
        if wheel_url:
            own_source = f"the wheel {without_login(wheel_url)}"
            if wheel_sha:
                spec = os.path.join(tmp, "ci-report.txt")
                with open(spec, "w", encoding="utf-8") as fh:
                    fh.write(f"ci-report @ {wheel_url} --hash=sha256:{wheel_sha}\n")
                args = ["install", "--no-deps", "--require-hashes", "-r", spec]
            else:
                args = ["install", "--no-deps", wheel_url]
            parts = urllib.parse.urlsplit(wheel_url)
            if parts.password:
                pip.secrets += [parts.password, urllib.parse.unquote(parts.password)]
        else:
            args = ["install", "--no-deps", f"ci-report=={version}"]
        rc, out = pip.run(args)
    if rc != 0:
        cause = explain(out, own_source, requirements, version, login_status(given))
        raise InstallError(f"ci-report itself: {cause}")

    rc, out = pip.run(["check"])
    if rc != 0:
        raise InstallError(
            f"the pinned requirements in {requirements} do not satisfy ci-report as installed"
            f" from {own_source} (pip check, above); fix: use the requirements file made for"
            " that ci-report version (requirementsFile), or the version this library pins"
        )


def main() -> int:
    try:
        install(read_env())
    except InstallError as exc:
        say(str(exc))
        return 1
    except OSError as exc:
        say(f"{exc.__class__.__name__}: {exc.strerror or exc}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
