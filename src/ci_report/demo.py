"""``ci-report demo``: the whole callback path on this machine, in a few seconds.

Starts the reference receiver on a free 127.0.0.1 port with all three authentication modes, sends
the bundled example reports, sends them again (the receiver dedupes), sends a callback to an
endpoint that is down (it is kept in the outbox) and flushes it, then shows what arrived.
"""

from __future__ import annotations

import base64
import os
import secrets
import socket
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from .console import Console, get_console
from .jenkins_env import BuildContext
from .wire import CALLBACK_PATH

EXAMPLES = Path(__file__).parent / "examples" / "reports"


@dataclass
class DemoResult:
    receiver_url: str
    executions: list[dict[str, Any]]
    requests: list[dict[str, Any]]
    outcomes: list[str]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_demo(
    *, console: Optional[Console] = None, examples: Optional[Path] = None, keep: bool = False
) -> DemoResult:
    from .callback.service import flush_outbox, run_callback
    from .config import load_settings
    from .platform.receiver import start_receiver

    console = console or get_console()
    examples = (examples or EXAMPLES).resolve()
    reports = sorted(str(p) for p in examples.glob("*.xml"))
    secrets_env = {
        "JENKINS_API_KEY": "demo-" + secrets.token_urlsafe(24),
        "JENKINS_JWT_SECRET": secrets.token_urlsafe(48),
        "JENKINS_SIGNATURE_SECRET": "whsec_" + base64.b64encode(os.urandom(32)).decode(),
    }
    for value in secrets_env.values():
        console.add_secret(value)
    work = Path(tempfile.mkdtemp(prefix="ci-report-demo-"))
    receiver = start_receiver(
        work / "receiver.sqlite3",
        api_keys=[secrets_env["JENKINS_API_KEY"]],
        jwt_secrets=[secrets_env["JENKINS_JWT_SECRET"]],
        signature_secrets=[secrets_env["JENKINS_SIGNATURE_SECRET"]],
    )
    console.info(f"receiver listening on {receiver.url} (API key, JWT and HMAC enabled)")
    console.info(f"example reports: {len(reports)} files in {examples}")
    env = {k: v for k, v in os.environ.items() if k in ("HOME", "PATH", "XDG_CACHE_HOME")}
    env.update(secrets_env)
    base_flags: dict[str, Any] = {
        "junit": reports,
        "workspace": str(work),
        "outbox": str(work / "outbox"),
        "flush_budget": 0.0,
    }
    outcomes = []
    try:

        def send(step: str, run_id: str, build: int, **flags: Any) -> str:
            console.info("")
            console.info(step)
            settings = load_settings({**base_flags, "run_id": run_id, **flags}, env=env, cwd=work)
            context = BuildContext(
                job_name="demo/checkout-service",
                build_number=build,
                build_url=f"http://jenkins.example.com/job/demo/job/checkout-service/{build}/",
                jenkins_url="http://jenkins.example.com/",
                node="demo-agent",
                git_branch="main",
            )
            outcome = run_callback(settings, context, console=console).outcome
            outcomes.append(outcome)
            return outcome

        send(
            "1/4 callback of the example reports (all three auth modes):",
            "1001",
            42,
            url=receiver.url,
            build_result="UNSTABLE",
        )
        send(
            "2/4 the same callback again (a Jenkins retry): the receiver dedupes it:",
            "1001",
            42,
            url=receiver.url,
            build_result="UNSTABLE",
        )
        down = f"http://127.0.0.1:{_closed_port()}{CALLBACK_PATH}"
        send(
            "3/4 a callback to an endpoint that is down: it is kept in the outbox:",
            "1002",
            43,
            url=down,
            build_result="SUCCESS",
            max_attempts=2,
            deadline=5.0,
            junit=[r for r in reports if "SearchService" in r] or reports[:1],
        )
        console.info("")
        console.info("4/4 the endpoint is back: 'ci-report flush' resends the outbox:")
        settings = load_settings(base_flags, env=env, cwd=work)
        summary = flush_outbox(settings, console=console, url_override=receiver.url)
        console.outcome(
            f"outbox flushed: {summary.delivered} delivered, {summary.remaining} remaining"
        )
        executions = receiver.executions()
        requests = receiver.requests()
    finally:
        receiver.stop()
    console.info("")
    console.outcome(f"the receiver holds {len(executions)} execution(s):")
    for row in executions:
        console.detail(
            f"run {row['run_id']}",
            f"{row['status']}: {row['passed']} passed, {row['failed']} failed, "
            f"{row['skipped']} skipped of {row['total']} in {row['duration_ms']} ms; "
            f"build {row['job']}#{row['build']}; verified by {row['modes']}; "
            f"applied {row['applied_count']}x",
        )
    duplicates = sum(1 for r in requests if r["status"] == 200) - len(executions)
    console.detail("requests", f"{len(requests)} received, {duplicates} recognised as duplicates")
    if not keep:
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    else:
        console.detail("files", str(work))
    return DemoResult(receiver.url, executions, requests, outcomes)
