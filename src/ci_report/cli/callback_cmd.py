"""``ci-report callback`` and ``ci-report flush``: options in, one core call, outcome out."""

from __future__ import annotations

from typing import Any, Optional

import click

from ..console import Console
from ..errors import EXIT_OK, EXIT_TEMPFAIL
from ..wire import CALLBACK_PATH
from .common import StrictSwitch, exit_codes_epilog, global_options, run_lenient
from .options import setting_option, settings_from

CALLBACK_EPILOG = f"""\b
Examples:
  # in Jenkins, post {{ always {{ ... }} }}, secrets bound with withCredentials:
  ci-report callback --build-result "$BUILD_RESULT" --duration-ms "$DURATION_MS"
  ci-report callback --junit 'build/test-results/**/*.xml' --run-id 64 --strict
  ci-report callback --dry-run --output -          # print the payload, send nothing

\b
Environment: CI_REPORT_URL or API_CALLBACK_URL (+ {CALLBACK_PATH}), RUN_ID,
JENKINS_API_KEY, JENKINS_JWT_SECRET, JENKINS_SIGNATURE_SECRET (any combination),
CI_REPORT_OUTBOX.

""" + exit_codes_epilog("callback")


@click.command(epilog=CALLBACK_EPILOG)
@setting_option("junit", metavar="GLOB")
@setting_option("run_id")
@setting_option("url")
@setting_option("build_result", metavar="RESULT")
@setting_option("duration_ms")
@setting_option("since", metavar="EPOCH_MS")
@setting_option("status_style")
@setting_option("case_map", type=click.Path(dir_okay=False))
@setting_option("max_results")
@setting_option("max_attempts")
@setting_option("deadline")
@setting_option("ca_bundle", type=click.Path(dir_okay=False))
@setting_option("outbox", type=click.Path(file_okay=False))
@setting_option("result_file", type=click.Path(dir_okay=False))
@setting_option("delivery_id")
@setting_option("strict")
@click.option("--dry-run", is_flag=True, help="Build the payload only; no network at all.")
@click.option(
    "--output",
    "-o",
    metavar="FILE|-",
    help="Also write the payload here (- = stdout); with --dry-run, only here.",
)
@global_options
@click.pass_context
def callback(ctx: click.Context, dry_run: bool, output: Optional[str], **opts: Any) -> None:
    """Parse JUnit reports and deliver the build's results to the platform.

    Finds the reports, builds the payload (runId, status, counts, durationMs, per-case results),
    signs it with every configured mode, delivers it with bounded retries, and keeps what could
    not be delivered in the outbox. Writes ci-report/callback.json for the build's artifacts.
    """
    strict = StrictSwitch.from_flag_or_env(opts.get("strict"))

    def action(console: Console) -> int:
        from ..callback.service import run_callback

        settings = settings_from(ctx)
        strict.on = settings.strict
        outcome = run_callback(settings, dry_run=dry_run, output=output, console=console)
        return outcome.exit_code if settings.strict else EXIT_OK

    run_lenient(ctx, action, strict)


@click.command(
    epilog=f"""\b
Examples:
  ci-report flush                       # resend everything in the outbox
  ci-report flush --url https://platform.example.com{CALLBACK_PATH}
  ci-report flush --list                # show what is waiting, send nothing

"""
    + exit_codes_epilog("flush")
)
@setting_option("outbox", type=click.Path(file_okay=False))
@click.option("--url", "url_override", help="Send every entry here instead of its own URL.")
@click.option("--budget", type=float, help="Stop after this many seconds.")
@click.option("--list", "list_only", is_flag=True, help="List the entries; send nothing.")
@click.option(
    "--adopt",
    is_flag=True,
    help="Also send entries made for the configured URL with other credentials (after fixing "
    "a wrong key), signed with the current ones. Only when the outbox is known to be yours.",
)
@setting_option(
    "strict", help="Exit " + str(EXIT_TEMPFAIL) + " if entries remain or were moved to dead/"
)
@global_options
@click.pass_context
def flush(
    ctx: click.Context,
    url_override: Optional[str],
    budget: Optional[float],
    list_only: bool,
    adopt: bool,
    **opts: Any,
) -> None:
    """Resend callbacks kept in the outbox, each under its original delivery id."""
    strict = StrictSwitch.from_flag_or_env(opts.get("strict"))

    def action(console: Console) -> int:
        from ..callback.outbox import BadEntry, Outbox, UntrustedOutbox
        from ..callback.service import flush_outbox
        from ..errors import ConfigError

        settings = settings_from(ctx)
        strict.on = settings.strict
        outbox = Outbox(settings.outbox_path)
        try:
            if outbox.path.is_dir():
                outbox.check()
        except UntrustedOutbox as exc:
            raise ConfigError(
                "the outbox cannot be trusted: nothing sent", cause=str(exc)
            ) from None
        if list_only:
            paths = outbox.pending()
            console.outcome(
                f"outbox {outbox.path}: {len(paths)} entr{'y' if len(paths) == 1 else 'ies'}"
            )
            for path in paths:
                try:
                    entry = outbox.load(path)
                except BadEntry as exc:
                    console.detail(path.name, f"cannot be used: {exc}", level="warning")
                    continue
                console.detail(
                    entry.delivery_id,
                    f"{entry.endpoint or entry.url} attempts={entry.attempts} "
                    f"last={entry.last_error}",
                )
            return EXIT_OK
        if not outbox.pending():
            console.outcome(f"outbox is empty ({outbox.path})")
            return EXIT_OK
        summary = flush_outbox(
            settings, console=console, budget_s=budget, url_override=url_override, adopt=adopt
        )
        line = (
            f"outbox flushed: {summary.delivered} delivered, {summary.remaining} remaining"
            + (f", {summary.rejected} rejected" if summary.rejected else "")
            + (f", {summary.dead} moved to dead/" if summary.dead else "")
            + (
                f", {summary.foreign} of other endpoints or credentials left alone"
                if summary.foreign
                else ""
            )
        )
        if summary.remaining or summary.dead:
            fixes = []
            if summary.remaining:
                fixes.append("run 'ci-report diagnose' to check the endpoint and credentials")
            if summary.dead:
                fixes.append(f"look at {outbox.dead_path}: those results were NOT delivered")
            console.block(
                line,
                level="warning",
                cause=summary.stopped_reason,
                evidence=(summary.errors + summary.buried)[:10],
                fixes=fixes,
            )
        else:
            console.outcome(line)
        if not settings.strict:
            return EXIT_OK
        # docs/design.md: 75 if entries remain or were moved aside
        return EXIT_TEMPFAIL if (summary.remaining or summary.dead) else EXIT_OK

    run_lenient(ctx, action, strict)
