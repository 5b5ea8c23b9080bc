"""One reconcile pass over 10,000 open runs against the fake Jenkins (issue 10).

Stand-alone (not part of ``run.py``): ``.venv/bin/python benchmarks/reconcile_10k.py``.

The ledger (SQLite in a temporary directory, or ``--db postgresql://...``) gets ``--runs`` open
runs spread over 100 jobs of the fake Jenkins (``tests/integration/fake_jenkins.py``, a threaded
stdlib server on 127.0.0.1), each with its build number already known. ``--state finished``
(default): every build finished long before the grace period, so the pass recovers each one
(build, artifact and test-report reads, one payload applied through the ledger's dedupe) and
closes it; ``--state running``: every build still runs, so the pass reads each build once and
leaves the run open. Timed: one ``Reconciler.run_pass()`` with ``--concurrency`` workers. Checked:
every run closed (finished) or still open and looked at once (running).
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "integration"))
sys.path.insert(0, str(ROOT / "src"))

from fake_jenkins import FakeJenkins  # noqa: E402

from ci_report.config import Settings  # noqa: E402
from ci_report.console import Console  # noqa: E402
from ci_report.platform.jenkins import JenkinsClient  # noqa: E402
from ci_report.platform.reconcile import Reconciler  # noqa: E402
from ci_report.platform.runs import open_ledger  # noqa: E402

JOBS = 100


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=10_000)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--state", choices=("finished", "running"), default="finished")
    ap.add_argument("--db", help="ledger (default: SQLite in a temporary directory)")
    ap.add_argument(
        "--postgres",
        action="store_true",
        help="start a temporary PostgreSQL (tests/integration/pg_server.py) for the ledger",
    )
    ap.add_argument("--json", action="store_true", help="print the result as JSON")
    args = ap.parse_args(argv)

    server = None
    if args.postgres:
        from pg_server import PostgresServer, find_binaries

        bindir = find_binaries()
        if bindir is None:
            print("no PostgreSQL binaries (/usr/lib/postgresql/*/bin)", file=sys.stderr)
            return 2
        server = PostgresServer(bindir).start()
        args.db = server.new_database()
    fake = FakeJenkins().start()
    tmp = tempfile.TemporaryDirectory(prefix="ci-report-bench-")
    console = Console(stream=io.StringIO())
    ledger = open_ledger(args.db or str(Path(tmp.name) / "runs.db"), console=console)
    try:
        t0 = time.perf_counter()
        per_job = -(-args.runs // JOBS)
        made = 0
        for j in range(JOBS):
            job = fake.add_job(f"bench/job-{j}", params=["CI_REPORT_TRIGGER_ID", "RUN_ID"])
            for _ in range(per_job):
                if made == args.runs:
                    break
                build = fake.add_build(
                    job, result="SUCCESS", building=args.state == "running", duration=1.0
                )
                run_id = f"bench-{made}"
                ledger.create(job.name, {"RUN_ID": run_id}, run_id=run_id)
                ledger.update(
                    run_id,
                    reason="set-up",
                    source="bench",
                    status="running",
                    queue_id=build.queue_id,
                    build_number=build.number,
                    trigger_status="success",
                    started_at=time.time() - 3600,
                    done_seen_at=None if args.state == "running" else time.time() - 3600,
                )
                made += 1
        setup_s = time.perf_counter() - t0

        def client() -> JenkinsClient:
            return JenkinsClient(fake.url, fake.user, fake.token)

        reconciler = Reconciler(
            ledger,
            client,
            callback_grace=120.0,
            concurrency=args.concurrency,
            settings=Settings(),
            console=console,
        )
        requests_before = len(fake.log)
        t1 = time.perf_counter()
        summary = reconciler.run_pass()
        pass_s = time.perf_counter() - t1
        requests_made = len(fake.log) - requests_before
        reconciler.stop()
        counts = ledger.counts_by_status()
        if args.state == "finished":
            ok = counts["success"] == args.runs and not summary.errors
        else:
            ok = counts["running"] == args.runs and len(summary.still_open) == args.runs
        result = {
            "runs": args.runs,
            "state": args.state,
            "concurrency": args.concurrency,
            "ledger": ledger.db.dialect,
            "passSeconds": round(pass_s, 2),
            "runsPerSecond": round(args.runs / pass_s, 1),
            "jenkinsRequests": requests_made,
            "moved": len(summary.moved),
            "stillOpen": len(summary.still_open),
            "errors": len(summary.errors),
            "setupSeconds": round(setup_s, 1),
            "ok": ok,
        }
    finally:
        ledger.close()
        fake.stop()
        tmp.cleanup()
        if server is not None:
            server.stop()
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"reconcile pass over {result['runs']} open runs ({result['state']}, "
            f"{result['ledger']}, concurrency {result['concurrency']}): "
            f"{result['passSeconds']} s, {result['runsPerSecond']} runs/s, "
            f"{result['jenkinsRequests']} Jenkins requests, {result['moved']} moved, "
            f"{result['stillOpen']} still open, {result['errors']} errors"
            + ("" if result["ok"] else "  ** CHECK FAILED **")
        )
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
