"""``ci-report callback`` and ``ci-report flush``: options in, one core call, outcome out."""

from __future__ import annotations

from typing import Any, Optional

import click

from ..console import Console
from ..errors import EXIT_OK
from .common import StrictSwitch, global_options, global_options_of, run_lenient

CALLBACK_EPILOG = """\b
Examples:
  # in Jenkins, post { always { ... } }, secrets bound with withCredentials:
  ci-report callback --build-result "$BUILD_RESULT" --duration-ms "$DURATION_MS"
  ci-report callback --junit 'build/test-results/**/*.xml' --run-id 64 --strict
  ci-report callback --dry-run --output -          # print the payload, send nothing

\b
Environment: CI_REPORT_URL or API_CALLBACK_URL (+ /api/jenkins/callback), RUN_ID,
JENKINS_API_KEY, JENKINS_JWT_SECRET, JENKINS_SIGNATURE_SECRET (any combination),
CI_REPORT_OUTBOX. Exit codes: 0; with --strict 75 queued, 65 rejected, 78 configuration
error, 70 internal error."""


def _settings(ctx: click.Context, flags: dict[str, Any]) -> Any:
    from ..config import load_settings

    return load_settings(flags, config_file=global_options_of(ctx).config)


@click.command(epilog=CALLBACK_EPILOG)
@click.option(
    "--junit",
    "junit",
    multiple=True,
    metavar="GLOB",
    help="Report files or globs (repeatable; default: Surefire, Gradle, pytest and generic).",
)
@click.option("--run-id", help="The platform's run id [env RUN_ID].")
@click.option("--url", help="Full callback URL [env CI_REPORT_URL, or API_CALLBACK_URL + path].")
@click.option(
    "--build-result",
    metavar="RESULT",
    help="SUCCESS, UNSTABLE, FAILURE, ABORTED or NOT_BUILT (Jenkins currentBuild.currentResult).",
)
@click.option("--duration-ms", type=int, help="Build duration in ms (currentBuild.duration).")
@click.option(
    "--since", type=int, metavar="EPOCH_MS", help="Skip reports older than the build start."
)
@click.option(
    "--status-style",
    type=click.Choice(["default", "extended"], case_sensitive=False),
    help="default: success|failed; extended adds unstable, aborted, not_built.",
)
@click.option(
    "--case-map", type=click.Path(dir_okay=False), help="JSON or CSV: test name -> caseId."
)
@click.option("--max-results", type=int, help="Cap on per-case results sent (default 10000).")
@click.option("--max-attempts", type=int, help="Delivery attempts (default 8).")
@click.option("--deadline", type=float, help="Seconds for all attempts (default 300).")
@click.option("--ca-bundle", type=click.Path(dir_okay=False), help="CA file for TLS.")
@click.option("--outbox", type=click.Path(file_okay=False), help="Outbox directory.")
@click.option(
    "--result-file",
    type=click.Path(dir_okay=False),
    help="Where to write the result (default $WORKSPACE/ci-report/callback.json).",
)
@click.option("--delivery-id", help="Override the deterministic delivery id.")
@click.option("--strict", is_flag=True, default=None, help="Non-zero exit when not delivered.")
@click.option("--dry-run", is_flag=True, help="Build the payload only; no network at all.")
@click.option(
    "--output",
    "-o",
    metavar="FILE|-",
    help="Also write the payload here (- = stdout); with --dry-run, only here.",
)
@global_options
@click.pass_context
def callback(
    ctx: click.Context, dry_run: bool, output: Optional[str], junit: tuple[str, ...], **opts: Any
) -> None:
    """Parse JUnit reports and deliver the build's results to the platform.

    Finds the reports, builds the payload (runId, status, counts, durationMs, per-case results),
    signs it with every configured mode, delivers it with bounded retries, and keeps what could
    not be delivered in the outbox. Writes ci-report/callback.json for the build's artifacts.
    """
    flags = dict(opts, junit=list(junit))
    strict = StrictSwitch.from_flag_or_env(opts.get("strict"))

    def action(console: Console) -> int:
        from ..callback.service import run_callback

        settings = _settings(ctx, flags)
        strict.on = settings.strict
        outcome = run_callback(settings, dry_run=dry_run, output=output, console=console)
        return outcome.exit_code if settings.strict else EXIT_OK

    run_lenient(ctx, action, strict)


@click.command(
    epilog="""\b
Examples:
  ci-report flush                       # resend everything in the outbox
  ci-report flush --url https://platform.example.com/api/jenkins/callback
  ci-report flush --list                # show what is waiting, send nothing"""
)
@click.option("--outbox", type=click.Path(file_okay=False), help="Outbox directory.")
@click.option("--url", "url_override", help="Send every entry here instead of its own URL.")
@click.option("--budget", type=float, help="Stop after this many seconds.")
@click.option("--list", "list_only", is_flag=True, help="List the entries; send nothing.")
@click.option(
    "--adopt",
    is_flag=True,
    help="Also send entries made for the configured URL with other credentials (after fixing "
    "a wrong key), signed with the current ones. Only when the outbox is known to be yours.",
)
@click.option(
    "--strict",
    is_flag=True,
    default=None,
    help="Exit 75 if entries remain or were moved to dead/.",
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
        from ..errors import EXIT_TEMPFAIL, ConfigError

        settings = _settings(ctx, opts)
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
