"""The ``ci-report`` command line. Commands load lazily so ``--version`` stays fast.

Each command module parses options, calls one core function and prints its outcome.
"""

from __future__ import annotations

import gc
import importlib
from typing import Any, Optional

import click

from .. import __version__
from .common import global_options

# command name -> "module:attribute" (imported only when the command is used or listed)
COMMANDS = {
    "callback": "ci_report.cli.callback_cmd:callback",
    "flush": "ci_report.cli.callback_cmd:flush",
    "receiver": "ci_report.cli.receiver_cmd:receiver",
    "demo": "ci_report.cli.receiver_cmd:demo",
    "config": "ci_report.cli.config_cmd:config",
    "diagnose": "ci_report.cli.platform_cmd:diagnose",
    "trigger": "ci_report.cli.platform_cmd:trigger",
    "sync": "ci_report.cli.platform_cmd:sync",
    "reconcile": "ci_report.cli.platform_cmd:reconcile",
    "image-push": "ci_report.cli.image_cmd:image_push",
    "image-plan": "ci_report.cli.image_cmd:image_plan",
    "image-diagnose": "ci_report.cli.image_cmd:image_diagnose",
    "image-watch": "ci_report.cli.image_cmd:image_watch",
}

# Commands that run to completion inside a build (``post { always }``). The console script runs
# them without the cyclic garbage collector: start-up alone allocates ~100k long-lived objects
# (imports) and pays ~60 collections over them (5-9 ms of a 120 ms callback), and their work
# makes no cyclic garbage worth collecting (measured: a 100k-case callback or a 1000-entry flush
# leaves ~700 cyclic objects, all from start-up). Every other command (servers, watchers, the
# reconciler) gets the collector back before it starts.
BATCH_COMMANDS = frozenset({"callback", "flush"})
_gc_paused = [False]  # set by main(): the collector is off until a command says otherwise


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> Optional[click.Command]:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, attr = target.split(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:
                return None
            raise
        command: click.Command = getattr(module, attr)
        return command

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[Optional[str], Optional[click.Command], list[str]]:
        name, command, rest = super().resolve_command(ctx, args)
        if _gc_paused[0] and name not in BATCH_COMMANDS:
            _gc_paused[0] = False
            gc.enable()
        return name, command, rest


@click.group(
    cls=LazyGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog="""\b
Examples:
  ci-report callback --junit 'build/test-results/**/*.xml' --build-result "$BUILD_RESULT"
  ci-report flush
  ci-report image-push --destination registry.example.com/team/app:1.2 --context .
  ci-report demo
Run 'ci-report COMMAND --help' for each command's options and examples.""",
)
@click.version_option(
    __version__, "-V", "--version", prog_name="ci-report", message="%(prog)s %(version)s"
)
@global_options
def cli() -> None:
    """Report Jenkins build results to the platform that started the build, and make Kaniko
    image pushes size themselves and explain their failures."""


def main(argv: Optional[list[str]] = None) -> Any:
    """The ``ci-report`` entry point. Called with ``argv`` (tests, other programs) it behaves
    like click's ``main``; as the console script it runs without the cyclic garbage collector
    until the command is known (see ``BATCH_COMMANDS``) and ends with :func:`exit_fast`."""
    if argv is not None:
        return cli.main(args=argv, prog_name="ci-report")
    if gc.isenabled():
        gc.disable()
        _gc_paused[0] = True
    try:
        cli.main(prog_name="ci-report")
        code: Any = 0
    except SystemExit as exc:
        code = exc.code
    exit_fast(code)


def exit_fast(code: Any) -> None:
    """End the process without the interpreter's final garbage collection and module teardown
    (tens of ms after a large parse, and useless: the process is gone a moment later).

    Only once everything is settled: the atexit handlers run first (logging's flush among
    them), stdout and stderr are flushed, every file we write is closed by its ``with``. With
    another non-daemon thread alive the normal exit is used (it waits for the thread). Exit
    codes are those of ``sys.exit``."""
    import atexit
    import os
    import sys

    threading = sys.modules.get("threading")
    if threading is not None and any(
        t.is_alive() and not t.daemon and t is not threading.main_thread()
        for t in threading.enumerate()
    ):
        sys.exit(code)
    if code is None:
        status = 0
    elif isinstance(code, int):
        status = code & 0xFF
    else:  # sys.exit("message"): printed, status 1
        print(code, file=sys.stderr)
        status = 1
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):  # a closed pipe (| head): nothing more can be said
            pass
    os._exit(status)
