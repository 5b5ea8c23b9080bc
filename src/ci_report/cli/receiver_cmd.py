"""``ci-report receiver`` and ``ci-report demo``."""

from __future__ import annotations

import json
import os
import sys
from typing import Optional

import click

from ..console import Console
from .common import global_options, run


@click.command(
    epilog="""\b
Examples:
  JENKINS_SIGNATURE_SECRET=whsec_... ci-report receiver --port 8080
  ci-report receiver --db /tmp/callbacks.sqlite3 --port 0
\b
Secrets come from the same variables the sender uses: JENKINS_API_KEY, JENKINS_JWT_SECRET,
JENKINS_SIGNATURE_SECRET (several whsec_ secrets separated by spaces are all accepted)."""
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8080, show_default=True, type=int, help="0 = a free port.")
@click.option("--db", default="ci-report-receiver.sqlite3", show_default=True, help="SQLite file.")
@click.option("--jwt-audience", help="Expected JWT aud (default: not checked).")
@global_options
@click.pass_context
def receiver(
    ctx: click.Context, host: str, port: int, db: str, jwt_audience: Optional[str]
) -> None:
    """Serve the reference receiver: verifies, dedupes and stores callbacks in SQLite."""

    def action(console: Console) -> int:
        from ..errors import ConfigError, Interrupted
        from ..platform.receiver import start_receiver

        keys = {
            "api_keys": [os.environ.get("JENKINS_API_KEY", "")],
            "jwt_secrets": [os.environ.get("JENKINS_JWT_SECRET", "")],
            "signature_secrets": os.environ.get("JENKINS_SIGNATURE_SECRET", "").split(),
        }
        keys = {k: [v for v in vals if v.strip()] for k, vals in keys.items()}
        if not any(keys.values()):
            raise ConfigError(
                "the receiver needs at least one secret",
                fix="set JENKINS_API_KEY, JENKINS_JWT_SECRET or JENKINS_SIGNATURE_SECRET",
            )
        handle = start_receiver(
            db,
            host=host,
            port=port,
            jwt_audience=jwt_audience,
            background=False,
            on_log=lambda line: console.debug(line),
            on_apply=lambda v: console.info(
                f"applied {v.webhook_id} (verified by {', '.join(v.modes)})"
            ),
            on_reject=lambda status, wid, path, reason: console.warn(
                f"refused {wid or '(no webhook-id)'} on {path}: HTTP {status} ({reason})"
            ),
            api_keys=keys["api_keys"],
            jwt_secrets=keys["jwt_secrets"],
            signature_secrets=keys["signature_secrets"],
        )
        console.outcome(f"receiver listening on {handle.url} (database {db}); Ctrl-C stops it")
        console.info(f"executions page {handle.base_url}/, metrics {handle.base_url}/metrics")
        for note in handle.watch.notes if handle.watch else ():
            console.warn(note)
        try:
            handle.serve_forever()
        except Interrupted as stop:  # Ctrl-C / SIGTERM is how a foreground server ends
            console.outcome(f"receiver stopped ({stop.message})")
        finally:
            handle.server.server_close()
        return 0

    run(ctx, action)


@click.command(
    epilog="""\b
Examples:
  ci-report demo
  ci-report demo --json | python3 -m json.tool"""
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
