"""What every command shares: global options, the console, signals and error handling.

A command's body is a function ``action(console) -> exit code`` that calls one core function and
prints its outcome. :func:`run` turns errors into people's messages and exit codes, and never lets
a traceback reach the user unless ``--debug`` is given.
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Any, Callable, Optional, TypeVar, Union

import click

from ..console import Console, set_console
from ..errors import COMMON_EXIT_CODES, EXIT_CODES, EXIT_SOFTWARE, CiReportError, Interrupted

F = TypeVar("F", bound=Callable[..., Any])
_META_KEY = "ci_report.globals"


class GlobalOptions:
    """The global options as given (a plain class: making a dataclass costs ~0.5 ms of every
    start-up, ``--version`` included)."""

    def __init__(self) -> None:
        self.debug = False
        self.log_format = "human"
        self.color = "auto"
        self.config: Optional[str] = None


def global_options_of(ctx: click.Context) -> GlobalOptions:
    return ctx.find_root().meta.setdefault(_META_KEY, GlobalOptions())


def _store(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    if value is None or (param.name == "debug" and not value):
        return value
    setattr(global_options_of(ctx), str(param.name), value)
    return value


def global_options(f: F) -> F:
    """``--debug``, ``--log-format``, ``--color``, ``--config``: valid before or after the
    command name."""
    options = [
        click.option(
            "--debug",
            is_flag=True,
            default=False,
            expose_value=False,
            callback=_store,
            envvar="CI_REPORT_DEBUG",
            help="Show details and tracebacks (secrets still redacted).",
        ),
        click.option(
            "--log-format",
            type=click.Choice(["human", "json"], case_sensitive=False),
            default=None,
            expose_value=False,
            callback=_store,
            envvar="CI_REPORT_LOG_FORMAT",
            help="Diagnostics as [ci-report] lines (human) or JSON lines.",
        ),
        click.option(
            "--color",
            type=click.Choice(["auto", "always", "never"], case_sensitive=False),
            default=None,
            expose_value=False,
            callback=_store,
            help="Colour in human diagnostics.",
        ),
        click.option(
            "--config",
            type=click.Path(dir_okay=False),
            default=None,
            expose_value=False,
            callback=_store,
            help="Config file (default: .ci-report.toml or [tool.ci-report] in pyproject.toml).",
        ),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def exit_codes_epilog(command: str) -> str:
    """The "Exit codes" paragraph of ``command --help``, made from ``errors.EXIT_CODES`` (the
    one table; docs/design.md states the same)."""
    import textwrap

    table = EXIT_CODES[command]
    lines = ["\b", "Exit codes:"]
    for code, meaning in table.items():
        if COMMON_EXIT_CODES.get(code) == meaning:
            continue
        first, *rest = textwrap.wrap(meaning, width=88) or [""]
        lines.append(f"  {code:>3}  {first}")
        lines.extend(f"       {line}" for line in rest)
    common = [c for c, m in COMMON_EXIT_CODES.items() if table.get(c) == m]
    signals = "/".join(str(c) for c in sorted(common, reverse=True) if c != 2)
    also = (["2 a usage error"] if 2 in common else []) + (
        [f"{signals} after SIGTERM/SIGINT/SIGHUP"] if signals else []
    )
    if also:
        lines.append("  and " + ", ".join(also) + ".")
    return "\n".join(lines)


def install_signal_handlers() -> None:
    """SIGTERM/SIGINT/SIGHUP become :class:`Interrupted` (once), so the command can save what
    is in flight; see :mod:`ci_report.signals` (saves hold signals off until they are done)."""
    from .. import signals

    signals.install(signals.IMMEDIATE)


def make_console(ctx: click.Context) -> Console:
    opts = global_options_of(ctx)
    return set_console(Console(log_format=opts.log_format, debug=opts.debug, color=opts.color))


def run(
    ctx: click.Context,
    action: Callable[[Console], int],
    *,
    internal_error_code: Union[int, Callable[[], int]] = EXIT_SOFTWARE,
    error_code: Optional[Callable[[CiReportError], int]] = None,
    signals: bool = True,
) -> None:
    """Run ``action`` with a configured console; exit with its code.

    ``CiReportError`` -> its message, cause and fix, exit ``error_code(err)`` (default its own
    ``exit_code``). Any other exception -> "internal error" and ``internal_error_code``; the
    traceback only with ``--debug``.
    """
    console = make_console(ctx)
    opts = global_options_of(ctx)
    if signals:
        install_signal_handlers()
    from .. import signals as recorder

    try:
        try:
            code = action(console)
        finally:
            # from here on a signal is only recorded (never a traceback while the outcome is
            # reported): the command has finished or is already winding down
            recorder.recorder().close()
    except CiReportError as err:
        console.report_error(err)
        if opts.debug:
            import traceback

            console.debug(console.redact(traceback.format_exc()))
        code = error_code(err) if error_code else err.exit_code
    except BrokenPipeError:
        # stdout closed by the reader (e.g. `| head`): nothing left to say, and no traceback
        with contextlib.suppress(OSError):
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - stays open until exit
        code = 0
    except click.exceptions.Exit:
        raise
    except click.ClickException:
        raise
    except Exception as exc:  # the last line of defence: no traceback for users
        console.block(
            f"internal error in ci-report: {type(exc).__name__}",
            level="error",
            cause=console.redact(str(exc)) or None,
            fixes=["rerun with --debug for the traceback and report it to the ci-report team"],
        )
        if opts.debug:
            import traceback

            console.debug(console.redact(traceback.format_exc()))
        code = internal_error_code() if callable(internal_error_code) else internal_error_code
    sys.stdout.flush()
    ctx.exit(code)


class StrictSwitch:
    """Whether ``--strict`` is in force; known only once settings are resolved."""

    def __init__(self, flag: Optional[bool]) -> None:
        self.on = bool(flag)

    @classmethod
    def from_flag_or_env(cls, flag: Optional[bool]) -> StrictSwitch:
        """``--strict``, else ``CI_REPORT_STRICT``: known even when the settings cannot be
        resolved (a broken config file must still exit 78 under ``--strict``)."""
        if flag is None:
            text = os.environ.get("CI_REPORT_STRICT", "").strip().lower()
            flag = text in ("1", "true", "yes", "on", "y")
        return cls(flag)


def run_lenient(ctx: click.Context, action: Callable[[Console], int], strict: StrictSwitch) -> None:
    """:func:`run` for commands that run in ``post { always }`` (callback, flush): errors exit
    0 so they never fail a build, unless ``--strict``; signals always exit 143/130."""

    def error_code(err: CiReportError) -> int:
        if isinstance(err, Interrupted) or strict.on:
            return err.exit_code
        return 0

    run(
        ctx,
        action,
        internal_error_code=lambda: EXIT_SOFTWARE if strict.on else 0,
        error_code=error_code,
    )
