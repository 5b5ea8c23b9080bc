"""``ci-report receiver`` and ``ci-report demo``."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from ..console import Console
from ..verify import MODES
from .common import exit_codes_epilog, global_options, run
from .options import setting_option, settings_from

DEFAULT_DB = "ci-report-receiver.sqlite3"


@click.command(
    epilog="""\b
Examples:
  JENKINS_SIGNATURE_SECRET=whsec_... ci-report receiver --port 8080 --require hmac
  ci-report receiver --db /tmp/runs.sqlite3 --port 0
  CI_REPORT_API_TOKEN=... ci-report receiver --host 0.0.0.0 --jenkins-url https://ci.example/
\b
Secrets come from the environment only, read exactly as the sender reads them:
JENKINS_API_KEY, JENKINS_JWT_SECRET, JENKINS_SIGNATURE_SECRET (several whsec_ secrets separated
by spaces are all accepted; a raw secret is kept whole), and CI_REPORT_API_TOKEN for the
management API (/api/executions, the page): without it, that API is served to loopback clients
only. An API key alone is a bearer secret without integrity: --require hmac (or jwt) makes a
signature mandatory.

"""
    + exit_codes_epilog("receiver")
)
@setting_option("receiver_host", "--host")
@setting_option("receiver_port", "--port")
@setting_option(
    "ledger_db",
    "--db",
    help="Run ledger: a SQLite file or postgresql://... (default " + DEFAULT_DB + ")",
)
@setting_option("jwt_audience", help="Expected JWT aud (default: not checked)")
@setting_option("require", type=click.Choice(list(MODES)), metavar="MODE")
@setting_option("max_body")
@setting_option("jenkins_url")
@setting_option("jenkins_user")
@setting_option("reconcile_interval")
@setting_option("callback_grace")
@setting_option("run_build_timeout", "--build-timeout")
@setting_option("expire_after")
@setting_option("stuck_after")
@global_options
@click.pass_context
def receiver(ctx: click.Context, **values: Any) -> None:
    """Serve the reference receiver: verifies, dedupes and stores callbacks in the run ledger,
    and (with a Jenkins URL) follows the runs it triggered until they are final."""

    def action(console: Console) -> int:
        from ..errors import ConfigError, Interrupted
        from ..platform.receiver import auth_from_settings, start_receiver
        from ..platform.tracking import open_tracking
        from ..platform.watch import setup_watch

        settings = settings_from(ctx, values)
        for secret in settings.secrets():
            console.add_secret(secret)
        auth = auth_from_settings(settings)
        if not (auth["api_keys"] or auth["jwt_secrets"] or auth["signature_secrets"]):
            raise ConfigError(
                "the receiver needs at least one secret",
                fix="set JENKINS_API_KEY, JENKINS_JWT_SECRET or JENKINS_SIGNATURE_SECRET",
            )
        unknown = [m for m in auth["require_modes"] if m not in MODES]
        if unknown:
            raise ConfigError(
                f"unknown auth mode to require: {', '.join(unknown)}",
                fix="use " + ", ".join(MODES) + " (CI_REPORT_REQUIRE=hmac,jwt or --require)",
            )
        enabled = [
            mode
            for mode, key in (
                ("api-key", "api_keys"),
                ("jwt", "jwt_secrets"),
                ("hmac", "signature_secrets"),
            )
            if auth[key]
        ]
        missing = [m for m in auth["require_modes"] if m not in enabled]
        if missing:
            env = {"api-key": "JENKINS_API_KEY", "jwt": "JENKINS_JWT_SECRET"}
            raise ConfigError(
                f"--require {' '.join(missing)}, but the receiver has no secret for it",
                fix="set "
                + " and ".join(env.get(m, "JENKINS_SIGNATURE_SECRET") for m in missing)
                + ", or drop the --require",
            )
        db = settings.ledger_db or DEFAULT_DB
        # one metrics observer for the ledger, the reconciler, the trigger and the callbacks
        watch = setup_watch(api_token=settings.api_token, stuck_after_s=settings.stuck_after)
        tracking = open_tracking(settings, db=db, console=console, observer=watch.observer)
        try:
            handle = start_receiver(
                host=settings.receiver_host,
                port=settings.receiver_port,
                api_token=settings.api_token,
                max_body=settings.max_body,
                tracking=tracking,
                observer=watch.observer,
                stuck_after_s=settings.stuck_after,
                background=False,
                on_log=lambda line: console.debug(line),
                on_apply=lambda v: console.info(
                    f"applied {v.webhook_id} (verified by {', '.join(v.modes)})"
                ),
                on_reject=lambda status, wid, path, reason: console.warn(
                    f"refused {wid or '(no webhook-id)'} on {path}: HTTP {status} ({reason})"
                ),
                **auth,
            )
        except ValueError as exc:  # a secret the verifier cannot use (no secret in the text)
            tracking.close()
            raise ConfigError(
                f"the receiver cannot use its secrets: {exc}",
                fix="check JENKINS_SIGNATURE_SECRET (whsec_ followed by base64)",
            ) from None
        except BaseException:
            tracking.close()
            raise
        console.outcome(
            f"receiver listening on {handle.url} (ledger {tracking.ledger.where}); Ctrl-C stops it"
        )
        console.info(f"executions page {handle.base_url}/, metrics {handle.base_url}/metrics")
        for note in handle.watch.notes if handle.watch else ():
            console.warn(note)
        if auth["require_modes"]:
            console.info("every callback must present: " + ", ".join(auth["require_modes"]))
        elif "api-key" in enabled:
            console.warn(
                "callbacks with only an API key are accepted: an API key is a bearer secret "
                "without integrity (anyone holding it can send any body); --require hmac (or "
                "jwt) makes a signature mandatory"
            )
        if not settings.api_token:
            console.info(
                "management API (/api/executions) served to loopback clients only: set "
                "CI_REPORT_API_TOKEN to serve it to others with a Bearer token"
            )
        if tracking.untracked_reason:
            console.info(tracking.untracked_reason)
        else:
            tracking.start(settings.reconcile_interval)
        try:
            handle.serve_forever()
        except Interrupted as stop:  # Ctrl-C / SIGTERM is how a foreground server ends
            console.outcome(f"receiver stopped ({stop.message})")
        finally:
            handle.server.server_close()
            tracking.close()
        return 0

    run(ctx, action)


@click.command(
    epilog="""\b
Examples:
  ci-report demo
  ci-report demo --json | python3 -m json.tool

"""
    + exit_codes_epilog("demo")
)
@click.option("--json", "as_json", is_flag=True, help="Print what arrived as JSON on stdout.")
@click.option("--keep", is_flag=True, help="Keep the demo's files (receiver database, outbox).")
@global_options
@click.pass_context
def demo(ctx: click.Context, as_json: bool, keep: bool) -> None:
    """Start the receiver on a free port, send the bundled example reports, show what arrived."""

    def action(console: Console) -> int:
        from ..demo import run_demo

        result = run_demo(console=console, keep=keep)
        if as_json:
            json.dump({"executions": result.executions}, sys.stdout, indent=2)
            sys.stdout.write("\n")
        return 0

    run(ctx, action)
