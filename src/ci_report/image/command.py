"""The executor's command line: what ci-report adds, and reading the user's own flags."""

from __future__ import annotations

from typing import Mapping, Optional, Sequence

__all__ = [
    "ADDED_DEFAULTS",
    "build_args_of",
    "executor_args",
    "executor_env",
    "flag_values",
    "has_flag",
    "secret_env_names",
]

# added unless the user set them (Kaniko defaults: colour logs, no push retry)
ADDED_DEFAULTS = (("--log-format", "text"), ("--push-retry", "3"))


def has_flag(args: Sequence[str], name: str) -> bool:
    return any(a == name or a.startswith(name + "=") for a in args)


def flag_values(args: Sequence[str], name: str, *, boolean: bool = False) -> list[str]:
    """Values of ``--name=V`` / ``--name V`` (repeatable). For a boolean flag, ``--name``
    alone yields ``"true"``."""
    values: list[str] = []
    it = iter(range(len(args)))
    for i in it:
        arg = args[i]
        if arg.startswith(name + "="):
            values.append(arg.split("=", 1)[1])
        elif arg == name:
            if boolean:
                nxt = args[i + 1] if i + 1 < len(args) else ""
                if nxt.lower() in ("true", "false"):
                    values.append(nxt.lower())
                    next(it, None)
                else:
                    values.append("true")
            elif i + 1 < len(args):
                values.append(args[i + 1])
                next(it, None)
    return values


def build_args_of(args: Sequence[str]) -> dict[str, str]:
    """``--build-arg K=V`` values; ``--build-arg K`` takes K from the environment, as Kaniko
    does (left out here: the value stays out of our hands)."""
    out: dict[str, str] = {}
    for value in flag_values(args, "--build-arg"):
        if "=" in value:
            key, val = value.split("=", 1)
            out[key] = val
    return out


def executor_args(
    *,
    context: str,
    dockerfile: str,
    destinations: Sequence[str],
    extra: Sequence[str] = (),
    add_defaults: bool = True,
) -> list[str]:
    """Arguments for ``/kaniko/executor`` (without the executor itself)."""
    args = [f"--context={context}", f"--dockerfile={dockerfile}"]
    args += [f"--destination={d}" for d in destinations]
    if add_defaults:
        for name, value in ADDED_DEFAULTS:
            if not has_flag(extra, name):
                args.append(f"{name}={value}")
    return args + list(extra)


def first_value(args: Sequence[str], name: str) -> Optional[str]:
    values = flag_values(args, name)
    return values[-1] if values else None


def secret_env_names() -> frozenset[str]:
    """Environment names that carry ci-report's own secrets (callback API key, JWT and
    signature secrets, the Jenkins token): the executor and its RUN steps never need them."""
    from ..config import _setting_fields

    return frozenset(
        name for f in _setting_fields() if f.metadata.get("secret") for name in f.metadata["env"]
    )


def executor_env(environ: Optional[Mapping[str, str]] = None) -> dict[str, str]:
    """The environment for the executor (and ``executor version``, credential helpers): ours
    without the callback secrets, which a Dockerfile RUN step could otherwise read."""
    import os

    names = secret_env_names()
    source = os.environ if environ is None else environ
    return {k: v for k, v in source.items() if k not in names}
