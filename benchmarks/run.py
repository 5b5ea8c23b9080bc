"""ci-report benchmarks (issue 6): every comparison side by side, in one command.

    .venv/bin/python benchmarks/run.py                 # full run (~10 min on 2 cores)
    .venv/bin/python benchmarks/run.py --quick         # 1k and 10k only, fewer runs (~1 min)
    .venv/bin/python benchmarks/run.py --publish       # also write benchmarks/latest-results.*

Each comparison runs its variants as child processes, alternating (A, B, C, A, B, C, ...) after
one untimed warm-up round, and reports medians of wall time and of the child's peak RSS
(``ru_maxrss`` from ``os.wait4`` on that child alone). Results go to ``--json`` (default
``benchmarks/results/latest.json``) and a Markdown copy next to it. See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
FLOORS = HERE / "floors"
sys.path.insert(0, str(HERE))

import generate  # noqa: E402

PYTHON = sys.executable
CI_REPORT = str(Path(sys.executable).with_name("ci-report"))
# deterministic test secret (32 bytes): receiver and senders share it
SECRET = "whsec_" + base64.b64encode(hashlib.sha256(b"ci-report-bench").digest()).decode()

FULL_SIZES = (1000, 10000, 100000, 1000000)
QUICK_SIZES = (1000, 10000)
LINEAR_SLACK = 1.05  # 1M/100k <= 10.5 is 1.05 x the size ratio
RSS_FLAT = 1.2  # 1M peak RSS <= 1.2 x 100k peak RSS
E2E_SIZES = (200, 2000, 100000)
SPILL_ROW_CASES = 100000  # the callback row that prices the result file and spill
DATA_DIR = generate.DATA_DIR  # --data-dir


# ------------------------------------------------------------------ measuring


@dataclass
class Sample:
    wall_s: float
    rss_kb: int
    cpu_s: float  # user + system of the child (and anything it waited for)
    rc: int
    stdout: str
    stderr: str


GNU_TIME = "/usr/bin/time" if os.access("/usr/bin/time", os.X_OK) else None
RSS_METHOD = (
    "/usr/bin/time -f %M (child forked from a ~1 MB process)"
    if GNU_TIME
    else "os.wait4 ru_maxrss (includes this runner's RSS at fork: Linux carries the "
    "pre-exec high-water mark over exec)"
)


def measure(argv: list[str], env: dict[str, str], cwd: Path, timeout: float = 900) -> Sample:
    """Run ``argv`` once: wall time and the peak RSS of that child alone.

    On Linux ``ru_maxrss`` survives exec, so a child forked straight from this (tens of MB)
    runner would report at least the runner's RSS. With GNU time present the child is forked
    from ``/usr/bin/time`` instead (about 1 MB) and its ``%M`` (wait4 of that child) is used;
    otherwise ``os.wait4`` here, with that caveat recorded in the JSON.
    """
    with contextlib.ExitStack() as stack:
        out = stack.enter_context(tempfile.TemporaryFile())
        err = stack.enter_context(tempfile.TemporaryFile())
        rss_file = stack.enter_context(tempfile.NamedTemporaryFile("r", suffix=".rss"))
        full = [GNU_TIME, "-f", "%M", "-o", rss_file.name, *argv] if GNU_TIME else argv
        start = time.perf_counter()
        proc = subprocess.Popen(full, env=env, cwd=str(cwd), stdout=out, stderr=err)
        deadline = start + timeout
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.0005)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        rss_kb = int(usage.ru_maxrss)
        if GNU_TIME:
            lines = [x for x in Path(rss_file.name).read_text().split() if x.isdigit()]
            rss_kb = int(lines[-1]) if lines else -1
        out.seek(0)
        err.seek(0)
        return Sample(
            wall,
            rss_kb,
            usage.ru_utime + usage.ru_stime,
            proc.returncode,
            out.read().decode("utf-8", "replace"),
            err.read().decode("utf-8", "replace"),
        )


@dataclass
class Variant:
    name: str
    # run index (-1 = warm-up) -> (argv, extra env); per-run setup happens here, untimed
    prepare: Callable[[int], tuple[list[str], dict[str, str]]]
    check: Optional[Callable[[Sample], Optional[str]]] = None  # -> error text
    samples: list[Sample] = field(default_factory=list)

    @property
    def wall(self) -> float:
        return statistics.median(s.wall_s for s in self.samples)

    @property
    def cpu(self) -> float:
        return statistics.median(s.cpu_s for s in self.samples)

    @property
    def rss_mb(self) -> float:
        return statistics.median(s.rss_kb for s in self.samples) / 1024


@dataclass
class Comparison:
    name: str
    variants: list[Variant]
    runs: int
    reference: str  # variant name the ratios are relative to
    notes: dict[str, Any] = field(default_factory=dict)

    def variant(self, name: str) -> Variant:
        return next(v for v in self.variants if v.name == name)


class BenchmarkError(RuntimeError):
    pass


def run_comparison(comp: Comparison, env: dict[str, str], cwd: Path, warmup: bool) -> None:
    log(f"== {comp.name}: {len(comp.variants)} variants x {comp.runs} runs (alternating)")
    rounds = ([-1] if warmup else []) + list(range(comp.runs))
    for index in rounds:
        for variant in comp.variants:
            argv, extra = variant.prepare(index)
            sample = measure(argv, {**env, **extra}, cwd)
            problem = None
            if sample.rc != 0:
                problem = f"exit code {sample.rc}"
            elif variant.check is not None:
                problem = variant.check(sample)
            if problem:
                raise BenchmarkError(
                    f"{comp.name}/{variant.name}: {problem}\n  argv: {' '.join(argv)}\n"
                    f"  stdout: {sample.stdout[-2000:]}\n  stderr: {sample.stderr[-2000:]}"
                )
            if index >= 0:
                variant.samples.append(sample)
            log(
                f"   {'warm-up' if index < 0 else f'run {index + 1}'} {variant.name}: "
                f"{sample.wall_s:.3f} s (cpu {sample.cpu_s:.3f} s), {sample.rss_kb / 1024:.1f} MB"
            )


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def clean_env(tmp: Path) -> dict[str, str]:
    """The parent's environment without anything that would steer ci-report."""
    drop_prefixes = ("CI_REPORT_", "JENKINS_", "API_CALLBACK", "GIT_", "BUILD_", "CHANGE_")
    drop = {"RUN_ID", "JOB_NAME", "NODE_NAME", "WORKSPACE", "REQUESTS_CA_BUNDLE"}
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop_prefixes) and k not in drop}
    env["HOME"] = str(tmp / "home")  # no user config, no ~/.cache outbox
    # An installed tool runs from bytecode: a session with PYTHONDONTWRITEBYTECODE would
    # recompile ci_report (an editable install) on every start. Bytecode for everything goes
    # to a private prefix instead (written by the warm-up round), never into the source tree.
    for name in ("PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED", "PYTHONPYCACHEPREFIX"):
        env.pop(name, None)
    env["PYTHONPYCACHEPREFIX"] = str(tmp / "pycache")
    return env


def counts_check(expected: dict[str, int]) -> Callable[[Sample], Optional[str]]:
    def check(sample: Sample) -> Optional[str]:
        try:
            got = json.loads(sample.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            return "no JSON counts on stdout"
        wanted = {k: got.get(k) for k in expected}
        return None if wanted == expected else f"counts {got} != expected {expected}"

    return check


_SUMMARY = re.compile(r"(\d+) passed, (\d+) failed(?: \((\d+) errors?\))?, (\d+) skipped")


def ci_counts_check(expected: dict[str, int]) -> Callable[[Sample], Optional[str]]:
    """ci-report prints 'N passed, M failed (E errors), S skipped' on stderr."""

    def check(sample: Sample) -> Optional[str]:
        match = _SUMMARY.search(sample.stderr)
        if not match:
            return "no counts summary on stderr"
        passed, failed, errors, skipped = (int(g or 0) for g in match.groups())
        got = {
            "total": passed + failed + skipped,
            "failed": failed - errors,
            "errored": errors,
            "skipped": skipped,
        }
        return None if got == expected else f"counts {got} != expected {expected}"

    return check


def fixed(argv: list[str], extra: Optional[dict[str, str]] = None):
    return lambda _index: (argv, dict(extra or {}))


# ------------------------------------------------------------------ comparisons


def expected_counts(report: Path) -> dict[str, int]:
    """Ground truth: what the generator wrote. Every variant's counts are checked against it."""
    return generate.expected_counts(report)


def kept_results_bytes(payload: bytes) -> int:
    """What the callback has to keep by design: the payload as Python objects (the capped
    ``results``, default 10,000 cases, failures first) plus its serialized bytes."""
    tracemalloc.start()
    try:
        obj = json.loads(payload)
        size = tracemalloc.get_traced_memory()[0]
        del obj
    finally:
        tracemalloc.stop()
    return size + len(payload)


def parse_comparison(size: int, runs: int, env: dict[str, str], tmp: Path) -> Comparison:
    report = generate.ensure_report(size, out_dir=DATA_DIR)
    expected = expected_counts(report)
    ci_check = ci_counts_check(expected)
    floor_check = counts_check(expected)
    # the payload once, to size the results the callback keeps by design
    payload_file = tmp / f"payload-{size}.json"
    sample = measure(
        [CI_REPORT, "callback", "--dry-run", "--output", str(payload_file), "--junit", str(report)],
        env,
        tmp,
    )
    if sample.rc != 0 or ci_check(sample):
        raise BenchmarkError(f"ci-report callback --dry-run failed: {sample.stderr[-2000:]}")
    payload = payload_file.read_bytes()
    data = json.loads(payload)
    variants = [
        Variant(
            "ci-report",
            fixed(
                [
                    CI_REPORT,
                    "callback",
                    "--dry-run",
                    "--output",
                    "/dev/null",
                    "--junit",
                    str(report),
                ]
            ),
            ci_check,
        ),
        Variant(
            "floor-etree",
            fixed([PYTHON, str(FLOORS / "parse_etree.py"), str(report)]),
            floor_check,
        ),
        Variant(
            "floor-lxml", fixed([PYTHON, str(FLOORS / "parse_lxml.py"), str(report)]), floor_check
        ),
    ]
    if size < 500000:  # the whole tree in memory: 1.4 GB at 1M cases, not run there
        variants.append(
            Variant(
                "naive-junitparser",
                fixed([PYTHON, str(FLOORS / "parse_junitparser.py"), str(report)]),
                floor_check,
            )
        )
    return Comparison(
        f"parse-{size}",
        variants,
        runs,
        reference="floor",
        notes={
            "cases": size,
            "report": report.name,
            "report_mb": round(report.stat().st_size / 1e6, 1),
            "expected": expected,
            "payload_counts_match": data["totalCases"] == expected["total"]
            and data["errorCases"] == expected["errored"]
            and data["skippedCases"] == expected["skipped"],
            "payload_results": len(data["results"]),
            "kept_results_mb": round(kept_results_bytes(payload) / 2**20, 1),
        },
    )


def startup_comparison(runs: int) -> Comparison:
    return Comparison(
        "startup",
        [
            Variant("import click", fixed([PYTHON, "-c", "import click"])),
            Variant("ci-report --version", fixed([CI_REPORT, "--version"])),
            Variant("ci-report callback --help", fixed([CI_REPORT, "callback", "--help"])),
        ],
        runs,
        reference="import click",
    )


@dataclass
class Receiver:
    proc: subprocess.Popen[bytes]
    url: str
    log_path: Path


def start_receiver(tmp: Path, env: dict[str, str]) -> Receiver:
    """``ci-report receiver --port 0``; its SQLite file on tmpfs when there is one, so the
    receiver's fsyncs do not drown the client-side differences being measured."""
    shm = Path("/dev/shm")
    db_dir = Path(tempfile.mkdtemp(prefix="ci-report-bench-", dir=shm)) if shm.is_dir() else tmp
    log_path = tmp / "receiver.log"
    with open(log_path, "wb") as log_file:
        proc = subprocess.Popen(
            [CI_REPORT, "receiver", "--port", "0", "--db", str(db_dir / "receiver.sqlite3")],
            env={**env, "JENKINS_SIGNATURE_SECRET": SECRET},
            cwd=str(tmp),
            stdout=log_file,
            stderr=log_file,
        )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        match = re.search(r"listening on (http://\S+)", log_path.read_text(errors="replace"))
        if match:
            rec = Receiver(proc, match.group(1), log_path)
            rec.db_dir = db_dir  # type: ignore[attr-defined]
            return rec
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    proc.kill()
    raise BenchmarkError(f"the receiver did not start: {log_path.read_text()[-2000:]}")


def stop_receiver(rec: Receiver) -> None:
    rec.proc.terminate()
    try:
        rec.proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        rec.proc.kill()
        rec.proc.wait()
    db_dir = getattr(rec, "db_dir", None)
    if db_dir is not None and str(db_dir).startswith("/dev/shm/"):
        shutil.rmtree(db_dir, ignore_errors=True)


def e2e_comparison(
    cases: int, runs: int, rec: Receiver, tmp: Path, counter: list[int]
) -> Comparison:
    report = generate.ensure_report(cases, out_dir=DATA_DIR)
    outbox = tmp / "e2e-outbox"
    workspace = tmp / "e2e-workspace"
    workspace.mkdir(parents=True, exist_ok=True)

    def build_env() -> dict[str, str]:
        counter[0] += 1  # distinct build and run per run: a real delivery every time
        return {
            "JENKINS_SIGNATURE_SECRET": SECRET,
            "JOB_NAME": "bench/e2e",
            "BUILD_NUMBER": str(counter[0]),
            "RUN_ID": str(counter[0]),
        }

    def ci_prepare(_index: int) -> tuple[list[str], dict[str, str]]:
        env = build_env()
        env.update(
            CI_REPORT_URL=rec.url,
            WORKSPACE=str(workspace),
            CI_REPORT_OUTBOX=str(outbox),
            CI_REPORT_FLUSH_BUDGET="0",
        )
        return [CI_REPORT, "callback", "--strict", "--junit", str(report)], env

    def floor_prepare(_index: int) -> tuple[list[str], dict[str, str]]:
        return [PYTHON, str(FLOORS / "e2e_post.py"), str(report), rec.url], build_env()

    def ci_check(sample: Sample) -> Optional[str]:
        if "callback delivered" not in sample.stderr:
            return "not delivered"
        result = workspace / "ci-report" / "callback.json"
        if not result.is_file():
            return f"no result file at {result}"
        return None

    def floor_check(sample: Sample) -> Optional[str]:
        got = json.loads(sample.stdout)
        return None if got["status"] == 200 and got["total"] == cases else f"floor: {got}"

    variants = [
        Variant("ci-report callback", ci_prepare, ci_check),
        Variant("floor http.client", floor_prepare, floor_check),
    ]
    notes: dict[str, Any] = {
        "cases": cases,
        "auth": "HMAC (Standard Webhooks)",
        "receiver": rec.url,
        "report_mb": round(report.stat().st_size / 1e6, 1),
    }
    if cases >= SPILL_ROW_CASES:
        # what the result file and its allResults spill cost: the real callback against
        # its own dry run plus a POST of the same body (minus the POST script's start-up)
        body = tmp / f"body-{cases}.json"

        def dry_prepare(_index: int) -> tuple[list[str], dict[str, str]]:
            env = build_env()
            env.update(WORKSPACE=str(workspace), CI_REPORT_OUTBOX=str(outbox))
            argv = [CI_REPORT, "callback", "--dry-run", "--output", str(body), "--junit"]
            return [*argv, str(report)], env

        def post_prepare(_index: int) -> tuple[list[str], dict[str, str]]:
            return [PYTHON, str(FLOORS / "post_body.py"), str(body), rec.url], build_env()

        def post_check(sample: Sample) -> Optional[str]:
            got = json.loads(sample.stdout)
            return None if got["status"] == 200 else f"post: {got}"

        variants += [
            Variant("ci-report callback --dry-run", dry_prepare),
            Variant("floor POST of that body", post_prepare, post_check),
            Variant("python -c pass", fixed([PYTHON, "-c", "pass"])),
        ]
        notes["spill"] = "cost = callback - dry-run - (POST - python -c pass), per run, median"
    return Comparison(
        f"callback-{cases}", variants, runs, reference="floor http.client", notes=notes
    )


def make_outbox(directory: Path, entries: int, url: str, tag: str) -> None:
    """``entries`` outbox files written the way ci-report writes them (Outbox.save), bound to
    ``url`` and to the benchmark's signature secret (a flush sends only such entries)."""
    from ci_report.callback.auth import EntryBinding
    from ci_report.callback.outbox import Outbox, OutboxEntry
    from ci_report.config import Settings
    from ci_report.jenkins_env import normalize_endpoint

    binding = EntryBinding(Settings(signature_secret=SECRET), normalize_endpoint(url))
    outbox = Outbox(directory)
    now = time.time()
    for i in range(entries):
        run_id = f"{tag}-{i}"
        results = [
            {
                "caseId": None,
                "caseName": f"test_case_{n}",
                "className": "com.example.FlushTest",
                "status": "failed" if n == 0 else "passed",
                "duration": 12 + n,
                "errorMessage": "expected <1> but was <2>" if n == 0 else None,
            }
            for n in range(20)
        ]
        body = json.dumps(
            {
                "runId": run_id,
                "status": "failed",
                "passedCases": 19,
                "failedCases": 1,
                "skippedCases": 0,
                "durationMs": 120000,
                "results": results,
                "schema": "ci-report/callback/v1",
                "errorCases": 0,
                "totalCases": 20,
                "build": {"jobName": "bench/flush", "buildNumber": i},
            },
            sort_keys=True,
            separators=(",", ":"),
        ).encode()
        delivery_id = "msg_" + hashlib.sha256(run_id.encode()).hexdigest()[:32]
        outbox.save(
            OutboxEntry(
                delivery_id=delivery_id,
                body=body,
                url=url,
                created_at=now - 60,
                attempts=1,
                last_error="connection refused",
                subject=f"bench/flush#{i}",
            ).bind(binding)
        )


def flush_comparison(entries: int, runs: int, rec: Receiver, tmp: Path) -> Comparison:
    def prepare_for(kind: str) -> Callable[[int], tuple[list[str], dict[str, str]]]:
        def prepare(index: int) -> tuple[list[str], dict[str, str]]:
            directory = tmp / f"outbox-{kind}-{index + 1}"
            shutil.rmtree(directory, ignore_errors=True)
            make_outbox(directory, entries, rec.url, f"{kind}-{index + 1}-{time.time_ns()}")
            env = {"JENKINS_SIGNATURE_SECRET": SECRET, "CI_REPORT_URL": rec.url}
            if kind == "ci":
                return [CI_REPORT, "flush", "--strict", "--outbox", str(directory)], env
            return [PYTHON, str(FLOORS / "flush_posts.py"), str(directory)], env

        return prepare

    def ci_check(sample: Sample) -> Optional[str]:
        wanted = f"{entries} delivered, 0 remaining"
        return None if wanted in sample.stderr else f"expected '{wanted}'"

    def floor_check(sample: Sample) -> Optional[str]:
        got = json.loads(sample.stdout)
        return None if got == {"delivered": entries, "failed": 0} else f"floor: {got}"

    return Comparison(
        "flush",
        [
            Variant("ci-report flush", prepare_for("ci"), ci_check),
            Variant("floor keep-alive", prepare_for("floor"), floor_check),
        ],
        runs,
        reference="floor keep-alive",
        notes={"entries": entries, "body_bytes": "~2.6 KB (20 cases)"},
    )


# ------------------------------------------------------------------ reporting


def pair_ratio(a: Variant, ref: Variant, attr: str = "wall_s") -> float:
    """Median of the per-round ratios a/ref: rounds alternate, so load that hits one round
    hits both sides of its ratio and cancels out."""
    return statistics.median(
        getattr(x, attr) / getattr(y, attr) for x, y in zip(a.samples, ref.samples)
    )


def summarize(comp: Comparison) -> dict[str, Any]:
    variants = {
        v.name: {
            "wall_s": round(v.wall, 4),
            "cpu_s": round(v.cpu, 4),
            "rss_mb": round(v.rss_mb, 1),
            "runs": len(v.samples),
            "wall_samples": [round(s.wall_s, 4) for s in v.samples],
            "rss_samples_mb": [round(s.rss_kb / 1024, 1) for s in v.samples],
        }
        for v in comp.variants
    }
    out: dict[str, Any] = {"runs": comp.runs, "variants": variants, **comp.notes}
    # parse rows: the reference is the stdlib iterparse floor (what the target names)
    ref_name = "floor-etree" if comp.name.startswith("parse-") else comp.reference
    ref = comp.variant(ref_name)
    out["reference"] = ref_name
    if comp.name.startswith("parse-"):
        out["floor"] = {"wall_s": round(ref.wall, 4), "wall_from": ref_name, "rss_mb": ref.rss_mb}
    for variant in comp.variants:
        v = variants[variant.name]
        v["wall_ratio"] = round(pair_ratio(variant, ref), 2)
        v["rss_ratio"] = round(v["rss_mb"] / ref.rss_mb, 2)
    if comp.name == f"callback-{SPILL_ROW_CASES}" and "python -c pass" in variants:
        real, dry = comp.variant("ci-report callback"), comp.variant("ci-report callback --dry-run")
        post, bare = comp.variant("floor POST of that body"), comp.variant("python -c pass")
        costs = [
            a.wall_s - b.wall_s - (c.wall_s - d.wall_s)
            for a, b, c, d in zip(real.samples, dry.samples, post.samples, bare.samples)
        ]
        out["spill_cost_ms"] = round(statistics.median(costs) * 1000, 1)
    return out


def evaluate(results: dict[str, Any], sizes: list[int]) -> list[dict[str, Any]]:
    """The targets of issue 13, PASS/MISS (or n/a when that part was not run)."""
    targets: list[dict[str, Any]] = []

    def add(name: str, value: Optional[float], limit: str, ok: Optional[bool], detail: str) -> None:
        targets.append(
            {
                "target": name,
                "measured": value,
                "limit": limit,
                "result": "n/a" if ok is None else ("PASS" if ok else "MISS"),
                "detail": detail,
            }
        )

    parse_sizes = [s for s in sizes if f"parse-{s}" in results]
    if parse_sizes:
        size = 100000 if 100000 in parse_sizes else max(parse_sizes)
        p = results[f"parse-{size}"]
        ci, floor = p["variants"]["ci-report"], p["variants"]["floor-etree"]
        add(
            f"parse {size}, dry-run, vs stdlib iterparse",
            ci["wall_ratio"],
            "<= 1.5x",
            ci["wall_ratio"] <= 1.5,
            f"{ci['wall_s']:.3f} s vs {floor['wall_s']:.3f} s",
        )
        add(
            f"parse {size}: peak RSS",
            round(ci["rss_mb"], 1),
            "<= 30 MB",
            ci["rss_mb"] <= 30,
            f"floor {floor['rss_mb']:.1f} MB, naive junitparser "
            f"{p['variants']['naive-junitparser']['rss_mb']:.1f} MB",
        )
        big = max(parse_sizes)
        if len(parse_sizes) >= 2:
            base = size if size < big else sorted(parse_sizes)[-2]
            small = results[f"parse-{base}"]["variants"]["ci-report"]
            large = results[f"parse-{big}"]["variants"]["ci-report"]
            limit = LINEAR_SLACK * big / base
            r = large["wall_s"] / small["wall_s"]
            flat = large["rss_mb"] / small["rss_mb"]
            add(
                f"parse {big}/{base} time (linear), RSS flat",
                round(r, 2),
                f"<= {limit:.3g}, RSS <= {RSS_FLAT}x",
                r <= limit and flat <= RSS_FLAT,
                f"{large['wall_s']:.2f} s vs {small['wall_s']:.3f} s; RSS {large['rss_mb']:.1f} "
                f"vs {small['rss_mb']:.1f} MB ({flat:.2f}x)",
            )
    if "startup" in results:
        s = results["startup"]["variants"]
        base = s["import click"]["wall_s"]
        for name in ("ci-report --version", "ci-report callback --help"):
            r = s[name]["wall_ratio"]
            add(
                f"start-up: {name} vs import click",
                r,
                "<= 1.3x",
                r <= 1.3,
                f"{s[name]['wall_s'] * 1000:.0f} ms vs {base * 1000:.0f} ms",
            )
    e2e_sizes = sorted(int(k.split("-")[1]) for k in results if k.startswith("callback-"))
    for cases, limit in zip([c for c in e2e_sizes if c != SPILL_ROW_CASES], (2.0, 1.8)):
        if f"callback-{cases}" in results:
            e = results[f"callback-{cases}"]["variants"]
            ci, floor = e["ci-report callback"], e["floor http.client"]
            add(
                f"real callback {cases} cases vs e2e floor",
                ci["wall_ratio"],
                f"<= {limit}x",
                ci["wall_ratio"] <= limit,
                f"{ci['wall_s']:.3f} s vs {floor['wall_s']:.3f} s",
            )
    spill_row = results.get(f"callback-{SPILL_ROW_CASES}", {})
    if "spill_cost_ms" in spill_row:
        e = spill_row["variants"]
        add(
            f"real callback {SPILL_ROW_CASES}: result file + spill cost",
            spill_row["spill_cost_ms"],
            "<= 150 ms",
            spill_row["spill_cost_ms"] <= 150,
            f"callback {e['ci-report callback']['wall_s']:.3f} s, dry run "
            f"{e['ci-report callback --dry-run']['wall_s']:.3f} s, POST "
            f"{e['floor POST of that body']['wall_s']:.3f} s",
        )
    if "flush" in results:
        f = results["flush"]["variants"]
        r = f["ci-report flush"]["wall_ratio"]
        add(
            f"flush {results['flush']['entries']} entries vs keep-alive floor",
            r,
            "<= 1.5x",
            r <= 1.5,
            f"{f['ci-report flush']['wall_s']:.3f} s vs {f['floor keep-alive']['wall_s']:.3f} s",
        )
    return targets


def tables(doc: dict[str, Any], markdown: bool) -> str:
    lines: list[str] = []

    def row(cells: list[str]) -> str:
        if markdown:
            return "| " + " | ".join(cells) + " |"
        widths = [28, 12, 8, 11, 11, 8]
        return "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths))
        )

    for name, comp in doc["comparisons"].items():
        title = f"{name} ({comp['runs']} runs"
        if "report_mb" in comp:
            title += f", {comp['report_mb']} MB report"
        if "kept_results_mb" in comp:
            title += f", kept results {comp['kept_results_mb']} MB"
        if "spill_cost_ms" in comp:
            title += f", result file + spill {comp['spill_cost_ms']} ms"
        title += ")"
        lines.append(f"### {title}" if markdown else title)
        if markdown:
            lines.append("")
        lines.append(row(["variant", "median wall", "x ref", "median CPU", "median RSS", "x ref"]))
        if markdown:
            lines.append("|---|---:|---:|---:|---:|---:|")
        for vname, v in comp["variants"].items():
            lines.append(
                row(
                    [
                        vname,
                        f"{v['wall_s']:.3f} s",
                        f"{v['wall_ratio']:.2f}",
                        f"{v['cpu_s']:.3f} s",
                        f"{v['rss_mb']:.1f} MB",
                        f"{v['rss_ratio']:.2f}",
                    ]
                )
            )
        if name.startswith("parse-"):
            if markdown:
                lines.append("")
            lines.append(
                ("" if markdown else "  ")
                + "ref = floor-etree (stdlib iterparse); x ref = median of per-round ratios"
            )
        lines.append("")
    lines.append("### Targets" if markdown else "TARGETS")
    if markdown:
        lines.append("")
        lines.append("| target | measured | limit | result | detail |")
        lines.append("|---|---:|---|---|---|")
    for t in doc["targets"]:
        cells = [t["target"], str(t["measured"]), t["limit"], t["result"], t["detail"]]
        if markdown:
            lines.append("| " + " | ".join(cells) + " |")
        else:
            lines.append(
                f"{t['result']:<5} {t['target']:<42} {t['measured']!s:>7}  {t['limit']:<30} "
                f"{t['detail']}"
            )
    return "\n".join(lines)


LOAD_START: list[float] = []


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "?"


def machine_line(env: dict[str, Any]) -> str:
    load = "/".join(f"{x:.2f}" for x in env.get("load_start") or []) or "?"
    load_end = "/".join(f"{x:.2f}" for x in env.get("load_end") or []) or "?"
    return (
        f"{env['cpus']} CPUs ({env.get('cpu_model', '?')}), Python {env['python']}, "
        f"{env['platform']}; load average (1/5/15 min) {load} at start, {load_end} at end"
    )


def environment() -> dict[str, Any]:
    info: dict[str, Any] = {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "rss_method": RSS_METHOD,
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "load_start": LOAD_START,
        "load_end": [round(x, 2) for x in os.getloadavg()],
        "cpu_model": _cpu_model(),
    }
    with contextlib.suppress(Exception):
        info["commit"] = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "--", "src"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        info["src_dirty"] = bool(dirty)
    for mod in ("click", "lxml", "junitparser", "requests"):
        with contextlib.suppress(Exception):
            from importlib.metadata import version

            info[mod] = version(mod)
    return info


# ------------------------------------------------------------------ main


def parse_args(argv: Optional[list[str]]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description="ci-report benchmarks (issue 6)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--quick", action="store_true", help="1k and 10k only, fewer runs")
    ap.add_argument("--sizes", help="parse sizes, e.g. 1000,10000,100000,1000000")
    ap.add_argument("--runs", type=int, help="runs per variant for every comparison")
    ap.add_argument("--runs-1m", type=int, default=3, help="runs at >= 500k cases (default 3)")
    ap.add_argument(
        "--only", default="parse,startup,e2e,flush", help="comparisons to run (comma list)"
    )
    ap.add_argument(
        "--e2e-cases",
        default=",".join(map(str, E2E_SIZES)),
        help="real callback sizes (comma list; the --spill-cases row also prices the result file)",
    )
    ap.add_argument("--spill-cases", type=int, default=SPILL_ROW_CASES)
    ap.add_argument("--flush-entries", type=int, default=1000)
    ap.add_argument("--no-warmup", action="store_true", help="skip the untimed warm-up round")
    ap.add_argument("--data-dir", type=Path, default=DATA_DIR, help="report cache directory")
    ap.add_argument("--json", type=Path, default=HERE / "results" / "latest.json")
    ap.add_argument(
        "--publish",
        action="store_true",
        help="also write benchmarks/latest-results.json and .md (committed copies)",
    )
    return ap.parse_args(argv)


def main(argv: Optional[list[str]] = None) -> int:
    args = parse_args(argv)
    global DATA_DIR, SPILL_ROW_CASES
    DATA_DIR = args.data_dir
    SPILL_ROW_CASES = args.spill_cases
    only = {s.strip() for s in args.only.split(",") if s.strip()}
    if args.sizes:
        sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    else:
        sizes = list(QUICK_SIZES if args.quick else FULL_SIZES)
    runs = {
        "parse": args.runs or (3 if args.quick else 7),
        "startup": args.runs or (10 if args.quick else 30),
        "e2e": args.runs or (3 if args.quick else 11),
        "flush": args.runs or (2 if args.quick else 5),
    }
    if not Path(CI_REPORT).exists():
        log(f"ci-report not found next to {PYTHON}: run this with the project's venv python")
        return 2
    started = time.monotonic()
    LOAD_START[:] = [round(x, 2) for x in os.getloadavg()]
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="ci-report-bench-") as tmp_name:
        tmp = Path(tmp_name)
        (tmp / "home").mkdir()
        env = clean_env(tmp)
        warm = not args.no_warmup
        if "parse" in only:
            for size in sizes:
                n = min(runs["parse"], args.runs_1m) if size >= 500000 else runs["parse"]
                comp = parse_comparison(size, n, env, tmp)
                run_comparison(comp, env, tmp, warm)
                results[comp.name] = summarize(comp)
        if "startup" in only:
            comp = startup_comparison(runs["startup"])
            run_comparison(comp, env, tmp, warm)
            results[comp.name] = summarize(comp)
        if "e2e" in only or "flush" in only:
            rec = start_receiver(tmp, env)
            try:
                counter = [int(time.time())]
                if "e2e" in only:
                    for cases in [int(c) for c in args.e2e_cases.split(",") if c.strip()]:
                        n = min(runs["e2e"], 5) if cases >= SPILL_ROW_CASES else runs["e2e"]
                        comp = e2e_comparison(cases, n, rec, tmp, counter)
                        run_comparison(comp, env, tmp, warm)
                        results[comp.name] = summarize(comp)
                if "flush" in only:
                    comp = flush_comparison(args.flush_entries, runs["flush"], rec, tmp)
                    run_comparison(comp, env, tmp, warm)
                    results[comp.name] = summarize(comp)
            finally:
                stop_receiver(rec)
    command = "python benchmarks/run.py" + (
        " " + " ".join(argv if argv is not None else sys.argv[1:])
        if (argv if argv is not None else sys.argv[1:])
        else ""
    )
    doc = {
        "schema": "ci-report/benchmarks/v1",
        "command": command,
        "environment": environment(),
        "elapsed_s": round(time.monotonic() - started, 1),
        "comparisons": results,
        "targets": evaluate(results, sizes),
    }
    text = tables(doc, markdown=False)
    print(text)
    print(f"\n(total {doc['elapsed_s']} s; JSON: {args.json})")
    write(args.json, doc)
    if args.publish:
        write(HERE / "latest-results.json", doc)
        update_readme(HERE / "README.md", HERE / "latest-results.md")
        update_project_readme(REPO / "README.md", doc)
    return 0


README_START = "<!-- latest-results:start -->"
README_END = "<!-- latest-results:end -->"


def update_readme(readme: Path, results_md: Path) -> None:
    """Put the published tables into the README between the two markers."""
    if not readme.exists():
        return
    text = readme.read_text()
    if README_START not in text or README_END not in text:
        return
    body = results_md.read_text().split("\n", 2)[2].strip()  # without the "# ..." title
    head, rest = text.split(README_START, 1)
    _old, tail = rest.split(README_END, 1)
    readme.write_text(f"{head}{README_START}\n{body}\n{README_END}{tail}")


def update_project_readme(readme: Path, doc: dict[str, Any]) -> None:
    """The project README's table (between the same markers): the targets of this run and
    the machine it ran on."""
    if not readme.exists():
        return
    text = readme.read_text()
    if README_START not in text or README_END not in text:
        return
    env = doc["environment"]
    lines = [
        f"`{doc['command']}` at {env.get('commit', '?')}, {env['date']}; {machine_line(env)}.",
        "",
        "| target | measured | limit | result | detail |",
        "|---|---:|---|---|---|",
    ]
    for t in doc["targets"]:
        cells = [t["target"], str(t["measured"]), t["limit"], t["result"], t["detail"]]
        lines.append("| " + " | ".join(cells) + " |")
    head, rest = text.split(README_START, 1)
    _old, tail = rest.split(README_END, 1)
    readme.write_text(f"{head}{README_START}\n" + "\n".join(lines) + f"\n{README_END}{tail}")


def write(json_path: Path, doc: dict[str, Any]) -> None:
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(doc, indent=2) + "\n")
    env = doc["environment"]
    md = [
        "# ci-report benchmark results",
        "",
        f"`{doc['command']}` at {env.get('commit', '?')}"
        + (" (src modified)" if env.get("src_dirty") else "")
        + f", {env['date']}, {doc['elapsed_s']} s in all.",
        "",
        f"Machine: {machine_line(env)}.",
        "",
        tables(doc, markdown=True),
        "",
    ]
    json_path.with_suffix(".md").write_text("\n".join(md))


if __name__ == "__main__":
    sys.exit(main())
