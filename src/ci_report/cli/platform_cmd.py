"""``ci-report trigger``, ``sync`` and ``diagnose``: the platform side. Options in, one core
call, outcome out (stderr diagnostics; stdout only for ``--json`` or a shown payload)."""

from __future__ import annotations

import json
from typing import Any, Optional

import click

from ..console import Console
from ..errors import (
    EXIT_CODES,
    EXIT_FAILURE,
    EXIT_LOST,
    EXIT_OK,
    EXIT_USAGE,
    CiReportError,
    ConfigError,
    InputError,
)
from ..wire import CALLBACK_PATH, SIGNATURE_TOLERANCE_S
from .common import exit_codes_epilog, global_options, run
from .options import setting_option, settings_from

EXIT_MEANINGS = EXIT_CODES["trigger"]

TRIGGER_EPILOG = """\b
Examples:
  export JENKINS_URL=https://jenkins.example.com JENKINS_USER=platform-bot
  export JENKINS_TOKEN=...            # an API token (no CSRF crumb needed)
  ci-report trigger team/app/deploy -p VERSION=1.4.2 -p ENV=staging
  ci-report trigger team/app/deploy -p VERSION=1.4.2 --wait --json
  ci-report trigger team/app/main --wait --queue-timeout 600 --build-timeout 3600 \\
      --cancel-on-timeout

\b
Define a string parameter CI_REPORT_TRIGGER_ID on the job: ci-report then sends a fresh
UUID in it, so identical triggers never merge into one build, retries after a lost answer
are safe, and the build can always be found again.
\b
On SIGTERM/SIGINT it cancels the queue item or stops the build, then exits 143/130.
--json prints {queueId, merged, number, url, result, durationMs, waitedSeconds, outcome,
triggerId, code, message}: one line for every outcome, failures and SIGTERM/SIGINT
included ("failed" and "interrupted"; code names a failure: job-not-found, auth-refused, ...).

""" + exit_codes_epilog("trigger")

SYNC_EPILOG = """\b
Examples:
  ci-report sync team/app/main 42                  # show what would be sent
  ci-report sync team/app/main 42 --deliver --run-id 64
  ci-report sync --from stuck-runs.jsonl --max 20 --deliver --json
\b
stuck-runs.jsonl holds one {"runId": 64, "job": "team/app/main", "build": 42} per line.
A finished build's archived ci-report/callback.json is resent under its original
delivery id (the receiver dedupes, so a late original is never applied twice); without
it the payload comes from the build result and Jenkins' testReport (status only if none).

""" + exit_codes_epilog("sync")

DIAGNOSE_EPILOG = f"""\b
Examples:
  ci-report diagnose                               # CI_REPORT_URL / API_CALLBACK_URL
  ci-report diagnose --url https://platform.example.com{CALLBACK_PATH}
  ci-report diagnose --ca-bundle /etc/ssl/internal-ca.pem --json
\b
Steps: config, proxy, dns, tcp, tls, route (POST <url>/test), clock (Date header vs the
±{SIGNATURE_TOLERANCE_S} s signature tolerance), then one request per auth mode signed with
that mode alone.
It stops at the first failing step and prints its fix.

""" + exit_codes_epilog("diagnose")


def _usage_code(err: CiReportError) -> int:
    """trigger/sync: configuration and usage errors exit 2 (docs/design.md section 3)."""
    if isinstance(err, (ConfigError, InputError)):
        return EXIT_USAGE
    return err.exit_code


def _client(settings: Any, console: Console) -> Any:
    from ..platform.jenkins import JenkinsClient

    console.add_secret(settings.jenkins_token)
    client = JenkinsClient.from_settings(settings)
    auth = client.session.auth
    if isinstance(auth, tuple):
        console.add_secret(auth[1])  # also a token given as JENKINS_URL=https://user:token@...
    else:
        console.warn("no Jenkins credentials (JENKINS_USER and JENKINS_TOKEN): calling anonymously")
    return client


def _echo_json(console: Console, data: Any) -> None:
    """stdout JSON, redacted like every diagnostic (URLs with user:password@, tokens)."""
    click.echo(json.dumps(console.redactor.redact_obj(data)))


def jenkins_options(f: Any) -> Any:
    f = setting_option("jenkins_user")(f)
    f = setting_option("jenkins_url")(f)
    return f


# -- trigger ------------------------------------------------------------------------------
@click.command(epilog=TRIGGER_EPILOG)
@click.argument("job")
@click.option(
    "-p",
    "--param",
    "params",
    multiple=True,
    metavar="KEY=VALUE",
    help="A build parameter (repeatable; repeat a key for multi-value).",
)
@click.option("--wait", is_flag=True, help="Wait for the build's result (else: its number).")
@setting_option("queue_timeout", metavar="S")
@setting_option("build_timeout", metavar="S")
@click.option(
    "--cancel-on-timeout",
    is_flag=True,
    help="On a timeout, cancel the queue item or stop the build.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the outcome as JSON on stdout.")
@click.option(
    "--trigger-id-param",
    metavar="NAME",
    help="Parameter that carries a fresh UUID [default CI_REPORT_TRIGGER_ID, "
    "used when the job defines it].",
)
@click.option(
    "--poll-interval",
    type=float,
    default=2.0,
    show_default=True,
    metavar="S",
    help="First poll interval; grows x1.5 up to 15 s.",
)
@click.option(
    "--ledger",
    "ledger_db",
    metavar="DB",
    help="Record the run in this run ledger first (a SQLite path or postgresql://...); "
    "the reconciler (ci-report reconcile / the receiver) follows it from the queue item.",
)
@click.option("--run-id", help="With --ledger: the platform's run id [default: assigned].")
@jenkins_options
@global_options
@click.pass_context
def trigger(
    ctx: click.Context,
    job: str,
    params: tuple[str, ...],
    wait: bool,
    cancel_on_timeout: bool,
    as_json: bool,
    trigger_id_param: Optional[str],
    poll_interval: float,
    ledger_db: Optional[str],
    run_id: Optional[str],
    **_settings: Any,
) -> None:
    """Trigger a Jenkins job, find the build it started, and optionally wait for its result."""

    def action(console: Console) -> int:
        from ..errors import Interrupted
        from ..platform.trigger import Trigger, failure_code, parse_params

        if run_id is not None and not ledger_db:
            raise InputError("--run-id needs --ledger", fix="add --ledger runs.db")
        if ledger_db and wait:
            raise InputError(
                "--wait and --ledger do not go together",
                fix="the reconciler follows a ledger run to its end: ci-report reconcile "
                f"--db {ledger_db} (or the receiver with --db)",
            )

        settings = settings_from(ctx)
        pairs = parse_params(params)
        client = _client(settings, console)
        if ledger_db:
            try:
                return _trigger_into_ledger(
                    console,
                    client,
                    ledger_db,
                    job,
                    pairs,
                    run_id,
                    trigger_id_param,
                    as_json,
                    poll_interval,
                )
            finally:
                client.close()
        runner = Trigger(
            client,
            job,
            pairs,
            wait=wait,
            queue_timeout=settings.queue_timeout,
            build_timeout=settings.build_timeout,
            cancel_on_timeout=cancel_on_timeout,
            trigger_id_param=trigger_id_param,
            poll_interval=max(0.01, poll_interval),
            poll_max=max(poll_interval, 15.0),
            console=console,
        )
        try:
            outcome = runner.run()
        except Interrupted:
            # A Jenkins abort of the calling job: the Groovy step still learns which build
            # it was (and that it was cancelled or stopped) from --json; one line always.
            if as_json:
                _echo_json(console, runner.outcome.to_json())
            raise
        except Exception as exc:
            # a failed trigger is one JSON line too (a scheduled trigger leaves a record)
            if as_json:
                runner.outcome.state = "failed"
                runner.outcome.code = failure_code(runner.outcome, exc)
                runner.outcome.message = getattr(exc, "message", None) or str(exc)
                _echo_json(console, runner.outcome.to_json())
            raise
        finally:
            client.close()
        if outcome.queue_id is None and outcome.code is None:
            outcome.code = failure_code(outcome)
        code = outcome.exit_code
        facts = [("queue item", f"#{outcome.queue_id}" + (" (merged)" if outcome.merged else ""))]
        if outcome.number is not None:
            facts.append(("build", f"#{outcome.number}"))
        if outcome.result:
            facts.append(("result", outcome.result))
        if outcome.duration_ms is not None:
            facts.append(("duration", f"{outcome.duration_ms / 1000:.1f} s"))
        facts.append(("waited", f"{outcome.waited_s:.1f} s"))
        head = {
            "started": f"trigger: {outcome.job} #{outcome.number} started",
            "finished": f"trigger: {outcome.job} #{outcome.number} finished: {outcome.result}",
        }.get(outcome.state, f"trigger: {outcome.job}: {outcome.state}")
        if outcome.message:
            head += f": {outcome.message}"
        console.block(
            head,
            level="outcome" if code == 0 else "error",
            facts=facts if outcome.queue_id is not None else (),
            fixes=outcome.fixes,
            exitCode=code,
        )
        if code:
            console.detail("exit", f"{code}: {EXIT_MEANINGS.get(code, '')}")
        if as_json:
            _echo_json(console, outcome.to_json())
        return code

    run(ctx, action, internal_error_code=EXIT_LOST, error_code=_usage_code)


def _trigger_into_ledger(
    console: Console,
    client: Any,
    ledger_db: str,
    job: str,
    pairs: list[tuple[str, str]],
    run_id: Optional[str],
    trigger_id_param: Optional[str],
    as_json: bool,
    poll_interval: float,
) -> int:
    """``trigger --ledger``: record, trigger up to the queue item, print the run."""
    from ..platform.runs import open_ledger, trigger_run

    params: dict[str, Any] = {}
    for key, value in pairs:
        if key in params:
            raise InputError(
                f"parameter {key} given twice",
                fix="a ledger run stores one value per parameter",
            )
        params[key] = value
    from ..errors import Interrupted

    ledger = open_ledger(ledger_db, console=console)
    try:
        run = trigger_run(
            ledger,
            client,
            job,
            params,
            run_id,
            console=console,
            trigger_id_param=trigger_id_param,
            poll_interval=max(0.01, poll_interval),
            poll_max=max(poll_interval, 15.0),
        )
    except Interrupted:
        if as_json:  # one line for every outcome: the run as the ledger has it
            found = ledger.list(job=job, limit=1) if run_id is None else [ledger.get(run_id)]
            if found and found[0] is not None:
                _echo_json(
                    console, dict(found[0].to_json(), code="interrupted", outcome="interrupted")
                )
        raise
    finally:
        ledger.close()
    failed = run.status == "trigger_failed"
    facts = [("run", run.run_id), ("ledger", ledger_db)]
    if run.queue_id is not None:
        facts.append(("queue item", f"#{run.queue_id}"))
    console.block(
        f"trigger: {run.job}: run {run.run_id} "
        + (f"not triggered ({run.trigger_code})" if failed else run.status),
        level="error" if failed else "outcome",
        facts=facts,
        cause=run.trigger_message if failed else None,
    )
    if as_json:
        data = run.to_json()
        data["code"] = run.trigger_code if failed else run.status
        data["outcome"] = "failed" if failed else run.status
        _echo_json(console, data)
    if failed:
        return EXIT_USAGE if run.trigger_code in _USAGE_CODES else EXIT_LOST
    return EXIT_OK


_USAGE_CODES = frozenset(
    {
        "job-not-found",
        "job-disabled",
        "auth-refused",
        "permission-denied",
        "login-page",
        "undefined-parameter",
        "bad-url",
    }
)


# -- reconcile ----------------------------------------------------------------------------
RECONCILE_EPILOG = """\b
Examples:
  ci-report reconcile --db /var/lib/ci-report/runs.db --once        # from cron
  ci-report reconcile --db postgresql://ci@db/ci_report --interval 30
  ci-report reconcile --db runs.db --once --json | jq .stillOpen
\b
Each pass moves every open run on with what Jenkins says: queue item -> build, cancelled,
timed out (--build-timeout), finished without a callback after --callback-grace -> synced
(archived callback.json under its original delivery id, else Jenkins' test report, else
status only), gone -> lost, older than --expire-after -> expired. Jenkins unreachable leaves
runs open (reported), never lost.

""" + exit_codes_epilog("reconcile")


@click.command(epilog=RECONCILE_EPILOG)
@setting_option("ledger_db", "--db", metavar="DB")
@click.option("--once", is_flag=True, help="One pass, then exit (for cron).")
@setting_option("reconcile_interval", "--interval", metavar="S")
@setting_option("callback_grace", metavar="S")
@setting_option("run_build_timeout", "--build-timeout", metavar="S")
@click.option(
    "--abort-on-timeout", is_flag=True, help="Also stop a build that timed out in Jenkins."
)
@setting_option("expire_after", metavar="S")
@click.option(
    "--concurrency",
    type=click.IntRange(1, 64),
    default=8,
    show_default=True,
    help="Runs looked at in parallel.",
)
@click.option("--json", "as_json", is_flag=True, help="Print each pass as one JSON line.")
@jenkins_options
@global_options
@click.pass_context
def reconcile(
    ctx: click.Context,
    once: bool,
    abort_on_timeout: bool,
    concurrency: int,
    as_json: bool,
    **_settings: Any,
) -> None:
    """Move every open run of the ledger on until it is final (one pass, or every --interval)."""

    def action(console: Console) -> int:
        import time as _time

        from ..platform.tracking import open_tracking

        settings = settings_from(ctx)
        if not settings.ledger_db:
            raise InputError("no run ledger", fix="pass --db runs.db (or set CI_REPORT_DB)")
        if not settings.jenkins_url:
            raise ConfigError(
                "no Jenkins to reconcile against",
                fix="set JENKINS_URL, JENKINS_USER and JENKINS_TOKEN (or --jenkins-url)",
            )
        tracking = open_tracking(
            settings, console=console, concurrency=concurrency, abort_on_timeout=abort_on_timeout
        )
        reconciler = tracking.reconciler
        assert reconciler is not None
        console.info(
            f"reconciling {tracking.ledger.where} against {settings.jenkins_url} "
            f"(grace {settings.callback_grace:g} s, expiry {settings.expire_after:g} s"
            + (
                f", build timeout {settings.run_build_timeout:g} s"
                if settings.run_build_timeout
                else ""
            )
            + ")"
        )
        try:
            while True:
                summary = reconciler.run_pass()
                if as_json:
                    _echo_json(console, summary.to_json())
                if once:
                    return EXIT_FAILURE if summary.errors else EXIT_OK
                _time.sleep(max(0.05, settings.reconcile_interval))
        finally:
            tracking.close()

    run(ctx, action, internal_error_code=EXIT_LOST, error_code=_usage_code)


# -- sync ---------------------------------------------------------------------------------
@click.command(epilog=SYNC_EPILOG)
@click.argument("job", required=False)
@click.argument("build", required=False, type=int)
@click.option("--deliver", is_flag=True, help="Send it (default: only show what would be sent).")
@click.option("--run-id", help="The platform's run id, for a payload built from Jenkins data.")
@click.option(
    "--from",
    "from_file",
    type=click.Path(dir_okay=False, allow_dash=True),
    help="Batch: JSON lines of {runId, job, build} ('-' = stdin).",
)
@click.option(
    "--max", "max_entries", type=click.IntRange(min=1), help="Batch: process at most N entries."
)
@setting_option("url", help="Callback URL; never the one in the artifact")
@click.option(
    "--json", "as_json", is_flag=True, help="Print one JSON summary line per build on stdout."
)
@jenkins_options
@global_options
@click.pass_context
def sync(
    ctx: click.Context,
    job: Optional[str],
    build: Optional[int],
    deliver: bool,
    run_id: Optional[str],
    from_file: Optional[str],
    max_entries: Optional[int],
    url: Optional[str],
    as_json: bool,
    **_settings: Any,
) -> None:
    """Recover a finished build's callback from Jenkins and (with --deliver) send it."""

    def action(console: Console) -> int:
        from ..platform.sync import batch_exit_code, read_batch, sync_batch, sync_one

        if from_file and (job or build is not None):
            raise InputError("give either JOB BUILD or --from FILE, not both")
        if not from_file and (job is None or build is None):
            raise InputError(
                "missing JOB and BUILD",
                fix="ci-report sync team/app/main 42, or --from FILE for a batch",
            )
        settings = settings_from(ctx)
        client = _client(settings, console)
        try:
            if from_file:
                entries = read_batch(from_file)
                outcomes = sync_batch(
                    client,
                    entries,
                    settings,
                    deliver=deliver,
                    max_entries=max_entries,
                    url=url,
                    console=console,
                )
            else:
                assert job is not None and build is not None
                outcomes = [
                    sync_one(
                        client,
                        job,
                        build,
                        settings,
                        deliver=deliver,
                        run_id=run_id,
                        url=url,
                        console=console,
                    )
                ]
        finally:
            client.close()
        for outcome in outcomes:
            _print_sync(console, outcome, deliver)
            if as_json:
                _echo_json(console, outcome.summary())
        if not as_json and not from_file and not deliver and outcomes[0].payload is not None:
            shown = console.redactor.redact_obj(outcomes[0].payload)
            click.echo(json.dumps(shown, indent=2, ensure_ascii=False))
        code = batch_exit_code(outcomes) if from_file else outcomes[0].exit_code
        if from_file:
            counts: dict[str, int] = {}
            for o in outcomes:
                key = o.delivery or o.state
                counts[key] = counts.get(key, 0) + 1
            console.outcome(
                "sync: "
                + ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))
                + f" ({len(outcomes)} builds)"
            )
        return code

    run(ctx, action, internal_error_code=EXIT_FAILURE, error_code=_usage_code)


def _print_sync(console: Console, o: Any, deliver: bool) -> None:
    name = f"{o.job} #{o.number}"
    if o.state == "running":
        console.outcome(f"sync: {name} is still running: nothing to recover yet")
        return
    if o.state in ("not-found", "error"):
        console.block(f"sync: {name}: {o.error}", level="error", fixes=[n for n in o.notes])
        return
    what = {
        "artifact": "the archived callback",
        "test-report": "a payload rebuilt from Jenkins' test report",
        "status-only": "a status-only payload (no test data in Jenkins)",
    }.get(o.source or "", o.source or "")
    if not deliver:
        head = f"sync: {name}: would send {what} (pass --deliver to send)"
    elif o.delivery == "delivered":
        head = f"sync: {name}: delivered {what}"
    else:
        head = f"sync: {name}: NOT delivered ({o.delivery}: {o.error}): {what}"
    payload = o.payload or {}
    facts = [
        ("build result", str(o.build_result)),
        ("runId", json.dumps(payload.get("runId"))),
        ("status", str(payload.get("status"))),
        (
            "tests",
            f"{payload.get('passedCases')} passed, {payload.get('failedCases')} failed, "
            f"{payload.get('skippedCases')} skipped of {payload.get('totalCases')}",
        ),
        ("delivery id", str(o.delivery_id)),
        ("url", str(o.url)),
    ]
    level = "outcome" if o.delivery in (None, "delivered") else "error"
    console.block(head, level=level, facts=facts)
    for note in o.notes:
        console.detail("note", note)


# -- diagnose -----------------------------------------------------------------------------
@click.command(epilog=DIAGNOSE_EPILOG)
@setting_option("url")
@setting_option("ca_bundle", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the steps as JSON on stdout.")
@global_options
@click.pass_context
def diagnose(ctx: click.Context, url: Optional[str], as_json: bool, **_settings: Any) -> None:
    """Check the callback endpoint step by step; stop at the first broken step with its fix."""

    def action(console: Console) -> int:
        from ..callback.diagnose import Step
        from ..callback.diagnose import diagnose as run_diagnose

        settings = settings_from(ctx)
        for secret in settings.secrets():
            console.add_secret(secret)
        target = url or settings.callback_url
        console.info(f"diagnose {target or '(no callback URL)'}")

        def show(step: Step) -> None:
            level = {"FAIL": "error", "warn": "warning"}.get(step.status, "info")
            console.emit(
                level,
                f"  {step.status:<4}  {step.name:<13} {step.detail}",
                step=step.name,
                status=step.status,
            )
            if step.fix and step.status in ("FAIL", "warn"):
                console.emit(level, f"        fix: {step.fix}", step=step.name)

        report = run_diagnose(settings, url=url, on_step=show)
        failed = report.failed_steps
        if failed:
            names = ", ".join(s.name for s in failed)
            console.outcome(f"diagnose: FAILED at {names} (exit 1)")
        else:
            console.outcome("diagnose: every step passed: callbacks can reach the platform")
        if as_json:
            _echo_json(console, report.to_json())
        return report.exit_code

    run(ctx, action, internal_error_code=EXIT_FAILURE)
