"""Checks before any executor starts: each failure names its diagnosis code and its fix.

Stops (exit 1, the executor never runs): Dockerfile or context missing, a COPY/ADD source that
is not in the context after ``.dockerignore``, a destination without a registry host, no
credentials for a destination host in ``config.json``, the executor not found.
Warnings: the unmaintained Google Kaniko, a Docker Hub base image without docker.io credentials,
a Dockerfile our parser cannot read (Kaniko may still).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

from .command import build_args_of, executor_env, first_value, flag_values

__all__ = ["Preflight", "Problem", "executor_version", "resolve_dockerfile", "run_preflight"]

GOOGLE_IMAGES = "gcr.io/kaniko-project"
_LAST_GOOGLE = (1, 24, 0)  # GoogleContainerTools/kaniko was archived after v1.24.0


@dataclass
class Problem:
    code: str
    message: str
    fix: str
    evidence: list[str] = field(default_factory=list)


@dataclass
class Preflight:
    context: Path
    dockerfile: Optional[Path]
    problems: list[Problem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    facts: list[tuple[str, str]] = field(default_factory=list)
    skipped: bool = False
    executor_version: Optional[str] = None
    stages: list[Any] = field(default_factory=list)
    docker_config: Any = None

    @property
    def ok(self) -> bool:
        return not self.problems and not self.skipped


def resolve_dockerfile(dockerfile: Optional[str], context: Path) -> Path:
    """Kaniko's rule: the path as given, else relative to the context."""
    if not dockerfile:
        return context / "Dockerfile"
    given = Path(dockerfile)
    if given.is_absolute() or given.exists():
        return given.absolute()
    return context / dockerfile


def _version_tuple(text: str) -> Optional[tuple[int, ...]]:
    m = re.match(r"v?(\d+)\.(\d+)\.(\d+)", text)
    return tuple(int(x) for x in m.groups()) if m else None


def executor_version(executor: str, timeout: float = 10.0) -> tuple[Optional[str], str]:
    """(version, output) of ``<executor> version``; version None when it cannot be read."""
    try:
        proc = subprocess.run(
            [executor, "version"],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            env=executor_env(),
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return None, str(exc)
    out = (proc.stdout + proc.stderr).strip()
    m = re.search(r"Kaniko version\s*:\s*(\S+)", out)
    return (m.group(1) if m else None), out


def unmaintained_warning(
    version: Optional[str] = None, image: Optional[str] = None
) -> Optional[str]:
    if image and image.startswith(GOOGLE_IMAGES):
        return (
            f"{image} is Google's Kaniko, archived on 2025-06-03 and no longer maintained: "
            "consider ghcr.io/osscontainertools/kaniko (active fork) or chainguard's fork"
        )
    parsed = _version_tuple(version or "")
    if parsed and parsed <= _LAST_GOOGLE:
        return (
            f"Kaniko {version} is a Google release (gcr.io/kaniko-project images, archived "
            "on 2025-06-03, unmaintained): consider ghcr.io/osscontainertools/kaniko"
        )
    return None


def _check_executor(pf: Preflight, executor: str, mode: str) -> None:
    if mode == "docker":
        pf.facts.append(("executor image", executor))
        warning = unmaintained_warning(image=executor)
        if warning:
            pf.warnings.append(warning)
        return
    path = shutil.which(executor) if os.sep not in executor else executor
    if not path or not os.path.isfile(path) or not os.access(path, os.X_OK):
        pf.problems.append(
            Problem(
                "executor-missing",
                f"the Kaniko executor {executor} is not there (or not executable)",
                "run ci-report in an image that has /kaniko/executor, pass --executor=<path>, or "
                "use split mode (ci-report image-plan) with the kaniko container",
            )
        )
        return
    version, output = executor_version(path)
    pf.executor_version = version
    pf.facts.append(("executor", f"{executor} ({version or 'version unknown'})"))
    if version is None:
        pf.warnings.append(
            f"'{executor} version' did not print a Kaniko version: "
            f"{output.splitlines()[-1] if output else 'no output'}"
        )
    warning = unmaintained_warning(version=version)
    if warning:
        pf.warnings.append(warning)


def _check_destinations(
    pf: Preflight,
    destinations: Sequence[str],
    docker_config: Any,
    insecure: Sequence[str],
    needs_push: bool,
) -> None:
    from ..errors import CiReportError
    from .registry import parse_reference

    if not destinations and needs_push:
        pf.problems.append(
            Problem(
                "name-unknown",
                "no --destination given",
                "pass --destination host/namespace/repo:tag (repeatable)",
            )
        )
    for dest in destinations:
        try:
            ref = parse_reference(dest, insecure_registries=insecure)
        except CiReportError as err:
            pf.problems.append(
                Problem(
                    "name-unknown",
                    f"destination {dest!r}: {err.message}",
                    err.fix or "use host/namespace/repo:tag",
                )
            )
            continue
        if not ref.explicit_registry and ref.repository.startswith("library/"):
            pf.problems.append(
                Problem(
                    "name-unknown",
                    f"destination {dest!r} names no registry host and no namespace: Kaniko would "
                    f"push to Docker Hub's official images (docker.io/{ref.repository}), which "
                    "nobody can push to",
                    f"fully qualify it: registry.example.com/team/{dest}",
                )
            )
            continue
        if not ref.explicit_registry:
            pf.warnings.append(
                f"destination {dest!r} names no registry host: Kaniko pushes it to Docker Hub "
                f"(docker.io/{ref.repository}); write registry.example.com/{dest} if it is "
                "meant for your own registry"
            )
        if not needs_push:
            continue
        problems = docker_config.problems_for(ref.registry)
        if problems:
            pf.problems.append(
                Problem(
                    "registry-auth", problems[0], "re-create the secret from a working docker login"
                )
            )
        elif not docker_config.has_credentials(ref.registry):
            where = docker_config.path or "config.json"
            key = "https://index.docker.io/v1/" if ref.registry == "docker.io" else ref.registry
            state = "has no entry for it" if docker_config.exists else "does not exist"
            pf.problems.append(
                Problem(
                    "registry-auth",
                    f"no credentials for {ref.registry} (destination {dest}): {where} {state}",
                    f'add "auths": {{"{key}": {{"auth": "<base64 user:password>"}}}} '
                    "(or a credHelpers entry) and mount it at /kaniko/.docker/config.json; "
                    "DOCKER_CONFIG names its directory",
                )
            )
        else:
            creds = docker_config.credentials_for(ref.registry)
            source = creds.source if creds else f"helper {docker_config.helper_for(ref.registry)}"
            pf.facts.append((f"credentials {ref.registry}", source))


def _check_dockerfile(
    pf: Preflight, build_args: dict[str, str], target: Optional[str], docker_config: Any
) -> None:
    from ..errors import CiReportError
    from .dockerfile import copy_sources, load_dockerignore, parse_dockerfile

    assert pf.dockerfile is not None
    try:
        text = pf.dockerfile.read_text(encoding="utf-8", errors="replace")
        stages = parse_dockerfile(text, build_args)
    except (CiReportError, OSError, ValueError) as exc:
        pf.warnings.append(
            f"could not read {pf.dockerfile} ({getattr(exc, 'message', exc)}): "
            "COPY sources not checked"
        )
        return
    pf.stages = list(stages)
    lines = text.splitlines()
    for stage in stages:
        missing = stage.unresolved
        if missing and (not stage.base or stage.base.endswith((":", "@", "/"))):
            line = stage.line
            shown = lines[line - 1].strip() if 0 < line <= len(lines) else stage.base
            names = ", ".join(dict.fromkeys(missing))
            pf.problems.append(
                Problem(
                    "base-image-not-found",
                    f"the base image of stage {stage.name or stage.index} is "
                    f"{stage.base!r}: build arg(s) {names} have no value",
                    "pass them to the executor after --, e.g. -- --build-arg "
                    + " --build-arg ".join(f"{n}=..." for n in dict.fromkeys(missing))
                    + ", or give the ARG a default in the Dockerfile",
                    [f"{pf.dockerfile.name}:{line}: {shown}"],
                )
            )
    ignore = load_dockerignore(pf.context, pf.dockerfile)
    sources = copy_sources(
        stages, pf.context, ignore, build_args=build_args, target=target, all_used_stages=True
    )
    for src in sources:
        if not src.missing:
            continue
        shown = lines[src.line - 1].strip() if 0 < src.line <= len(lines) else src.pattern
        excluded = src.excluded
        why = (
            f"{excluded} matching file(s) are excluded by .dockerignore"
            if excluded
            else "nothing in the context matches it"
        )
        pf.problems.append(
            Problem(
                "copy-source-missing",
                f"{src.cmd} source {src.pattern!r} is not in the build context {pf.context}: {why}",
                "build the artifact before the image step, check --context, or fix .dockerignore",
                [f"{pf.dockerfile.name}:{src.line}: {shown}"],
            )
        )
    hub_bases = [s.base for s in stages if s.base and s.is_external and not _has_registry(s.base)]
    if hub_bases and docker_config is not None and not docker_config.has_credentials("docker.io"):
        pf.warnings.append(
            f"base image {hub_bases[0]} comes from Docker Hub and config.json has no docker.io "
            "credentials: anonymous pulls are rate-limited (TOOMANYREQUESTS)"
        )


def _has_registry(image: str) -> bool:
    first, _, rest = image.partition("/")
    return bool(rest) and ("." in first or ":" in first or first == "localhost")


def run_preflight(
    *,
    context: str,
    dockerfile: Optional[str],
    destinations: Sequence[str],
    executor: str,
    extra_args: Sequence[str] = (),
    docker_config: Optional[str] = None,
    mode: str = "direct",
    skip_if_no_dockerfile: bool = False,
) -> Preflight:
    """All checks; ``mode`` ``split`` skips the executor (it lives in another container)."""
    from .docker_config import load_docker_config

    ctx = Path(context).absolute()
    pf = Preflight(context=ctx, dockerfile=None)
    df = resolve_dockerfile(dockerfile, ctx)
    if not df.is_file():
        if skip_if_no_dockerfile:
            pf.skipped = True
            pf.facts.append(("dockerfile", f"{df} (missing: skipped as asked)"))
            return pf
        what = (
            f"Dockerfile {df} is a directory, not a file"
            if df.is_dir()
            else (f"Dockerfile {df} does not exist")
        )
        if not ctx.is_dir():
            what += f" (and the build context {ctx} is not a directory either)"
        pf.problems.append(
            Problem(
                "dockerfile-missing",
                what,
                "pass --dockerfile relative to the workspace or the context, or "
                "--skip-if-no-dockerfile for modules without an image"
                + ("; check --context" if not ctx.is_dir() else ""),
            )
        )
        return pf
    pf.dockerfile = df
    if not ctx.is_dir():
        pf.problems.append(
            Problem(
                "copy-source-missing",
                f"the build context {ctx} is not a directory",
                "pass --context with the directory that holds the COPY/ADD sources",
            )
        )
        return pf
    pf.facts.append(("dockerfile", str(df)))
    pf.facts.append(("context", str(ctx)))
    no_push = "true" in flag_values(extra_args, "--no-push", boolean=True)
    try:
        config = load_docker_config(docker_config)
    except Exception as exc:  # a broken config.json is a finding, not a crash
        pf.problems.append(
            Problem(
                "registry-auth",
                f"cannot read the docker config: {getattr(exc, 'message', exc)}",
                getattr(exc, "fix", None) or "fix config.json",
            )
        )
        return pf
    pf.docker_config = config
    for key in config.refused_helpers:
        pf.warnings.append(
            f"{key} in {config.path} is not a credential helper name (letters, digits, '.', "
            "'_', '-', no '/' or '..'): ignored, so no program is run from a path in it"
        )
    _check_dockerfile(pf, build_args_of(extra_args), first_value(extra_args, "--target"), config)
    insecure = flag_values(extra_args, "--insecure-registry")
    _check_destinations(pf, destinations, config, insecure, needs_push=not no_push)
    if mode != "split":
        _check_executor(pf, executor, mode)
    return pf
