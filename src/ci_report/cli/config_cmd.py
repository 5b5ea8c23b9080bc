"""``ci-report config``: every setting, its value and where it came from (secrets: set/unset)."""

from __future__ import annotations

import json
import sys

import click

from ..console import Console
from .common import global_options, global_options_of, run


@click.command(
    epilog="""\b
Examples:
  ci-report config                 # table on stderr
  ci-report config --json          # JSON on stdout, for scripts"""
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print settings, build context and the contract (enums, limits, exit codes) as JSON.",
)
@global_options
@click.pass_context
def config(ctx: click.Context, as_json: bool) -> None:
    """Show the resolved settings (flags > env > config file > defaults) and the build context
    detected from Jenkins variables. Secrets are shown only as set/unset."""

    def action(console: Console) -> int:
        from ..config import load_settings
        from ..contract import contract
        from ..jenkins_env import BuildContext

        settings = load_settings({}, config_file=global_options_of(ctx).config)
        context = BuildContext.from_env()
        rows = settings.describe()
        if as_json:
            data = {
                "configFile": settings.config_file,
                "settings": {name: {"value": v, "source": src} for name, v, src in rows},
                "callbackUrl": settings.callback_url,
                "authModes": settings.auth_modes,
                "build": context.as_dict(),
                "contract": contract(),
            }
            json.dump(console.redactor.redact_obj(data), sys.stdout, indent=2)
            sys.stdout.write("\n")
            return 0
        console.outcome(
            f"config file: {settings.config_file or 'none'}; callback URL: "
            f"{settings.callback_url or 'not set'}; auth modes: "
            f"{', '.join(settings.auth_modes) or 'none'}"
        )
        for name, shown, source in rows:
            if source != "default":
                console.detail(name, f"{shown!r}  ({source})")
        console.detail("build", context.identity + (" (Jenkins)" if context.in_jenkins else ""))
        return 0

    run(ctx, action)
