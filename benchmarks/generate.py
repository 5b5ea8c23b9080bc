"""Deterministic synthetic JUnit reports for the benchmarks.

``python benchmarks/generate.py 1000 10000 [--out DIR]`` writes (or reuses) one report per size
and prints its path. Reports are cached in ``benchmarks/data/`` (git-ignored) under a name that
carries the format version, the size and the seed, so a changed generator never reuses a stale
file.

Shape (realistic for Surefire/Gradle/pytest aggregates):
- ``<testsuites>`` with one ``<testsuite>`` per ``SUITE_SIZE`` cases (1k -> 4 suites, 100k -> 400),
  each with ``<properties>``, a short suite-level ``<system-out>`` and per-suite counts;
- per case: ``classname``, ``name`` (some parametrized, some with characters that need escaping),
  ``time``; 10 % carry a ``caseId`` property;
- 4 % ``<failure>`` and 1 % ``<error>`` (5 % failed in all), each with a message and a ~2 KB Java
  stack trace; 2 % ``<skipped>``; 1 % of passed cases have a short ``<system-out>``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

FORMAT_VERSION = 1
DEFAULT_SEED = 20240606
SUITE_SIZE = 250
FAIL_RATE = 0.04
ERROR_RATE = 0.01
SKIP_RATE = 0.02
STDOUT_RATE = 0.01
CASE_ID_RATE = 0.10
TRACE_BYTES = 2048

DATA_DIR = Path(__file__).resolve().parent / "data"

_PACKAGES = ["billing", "orders", "search", "auth", "inventory", "reports", "shipping", "users"]
_LAYERS = ["api", "service", "repository", "domain", "web", "jobs"]
_VERBS = ["creates", "rejects", "updates", "returns", "retries", "parses", "validates", "merges"]
_NOUNS = ["invoice", "order", "token", "cart", "payload", "session", "report", "address"]
_QUALIFIERS = ["when_empty", "with_unicode", "after_timeout", "on_conflict", "for_admin", ""]


@dataclass
class Expected:
    """What the generator wrote, for checking parsers against."""

    total: int = 0
    failed: int = 0
    errored: int = 0
    skipped: int = 0

    @property
    def passed(self) -> int:
        return self.total - self.failed - self.errored - self.skipped


def report_path(cases: int, seed: int = DEFAULT_SEED, out_dir: Path = DATA_DIR) -> Path:
    return Path(out_dir) / f"junit-v{FORMAT_VERSION}-{cases}-s{seed}.xml"


def _stack_trace(rng: random.Random, exc: str, message: str) -> str:
    lines = [f"{exc}: {message}"]
    size = len(lines[0])
    while size < TRACE_BYTES:
        pkg = rng.choice(_PACKAGES)
        layer = rng.choice(_LAYERS)
        cls = f"{pkg.capitalize()}{layer.capitalize()}Impl"
        method = f"{rng.choice(_VERBS)}{rng.choice(_NOUNS).capitalize()}"
        line = f"\tat com.example.{pkg}.{layer}.{cls}.{method}({cls}.java:{rng.randint(12, 900)})"
        lines.append(line)
        size += len(line) + 1
    return "\n".join(lines)


def _case_name(rng: random.Random, index: int) -> str:
    qualifier = rng.choice(_QUALIFIERS)
    name = f"test_{rng.choice(_VERBS)}_{rng.choice(_NOUNS)}"
    if qualifier:
        name += "_" + qualifier
    roll = rng.random()
    if roll < 0.15:
        name += f"[param-{index % 97}]"
    elif roll < 0.17:
        name += '[a<b & "c">d]'  # needs escaping in XML
    return f"{name}_{index}"


def write_report(path: Path, cases: int, seed: int = DEFAULT_SEED) -> Expected:
    """Write a report of exactly ``cases`` test cases to ``path`` (atomically)."""
    rng = random.Random(f"{seed}:{cases}")
    expected = Expected()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    suites = max(1, -(-cases // SUITE_SIZE))
    with open(tmp, "w", encoding="utf-8", newline="\n", buffering=1 << 20) as out:
        out.write('<?xml version="1.0" encoding="UTF-8"?>\n')
        out.write(f'<testsuites name="synthetic-{cases}">\n')
        done = 0
        for s in range(suites):
            n = min(SUITE_SIZE, cases - done)
            pkg = _PACKAGES[s % len(_PACKAGES)]
            layer = _LAYERS[(s // len(_PACKAGES)) % len(_LAYERS)]
            classname_base = f"com.example.{pkg}.{layer}.Suite{s:05d}Test"
            body: list[str] = []
            counts = Expected()
            suite_time = 0.0
            for i in range(n):
                index = done + i
                classname = classname_base + ("" if i % 50 < 40 else "$Nested")
                name = _case_name(rng, index)
                seconds = round(rng.expovariate(1 / 0.05), 3)
                suite_time += seconds
                attrs = f'name={quoteattr(name)} classname={quoteattr(classname)} time="{seconds}"'
                children: list[str] = []
                if rng.random() < CASE_ID_RATE:
                    children.append(
                        f'<properties><property name="caseId" value="{100000 + index}"/>'
                        "</properties>"
                    )
                roll = rng.random()
                counts.total += 1
                if roll < FAIL_RATE + ERROR_RATE:
                    is_error = roll >= FAIL_RATE
                    if is_error:
                        counts.errored += 1
                        exc = "java.lang.IllegalStateException"
                        message = f"connection pool exhausted after {rng.randint(1, 30)} s"
                        tag = "error"
                    else:
                        counts.failed += 1
                        exc = "org.opentest4j.AssertionFailedError"
                        want, got = rng.randint(0, 99), rng.randint(100, 999)
                        message = f"expected: <{want}> but was: <{got}>"
                        tag = "failure"
                    trace = _stack_trace(rng, exc, message)
                    children.append(
                        f"<{tag} message={quoteattr(message)} type={quoteattr(exc)}>"
                        f"{escape(trace)}</{tag}>"
                    )
                    children.append(
                        f"<system-out>{escape('log: ' + name + ' started')}</system-out>"
                    )
                elif roll < FAIL_RATE + ERROR_RATE + SKIP_RATE:
                    counts.skipped += 1
                    children.append('<skipped message="disabled until #1234 is fixed"/>')
                elif rng.random() < STDOUT_RATE:
                    children.append(f"<system-out>{escape('ok ' + name)}</system-out>")
                if children:
                    body.append(f"    <testcase {attrs}>{''.join(children)}</testcase>\n")
                else:
                    body.append(f"    <testcase {attrs}/>\n")
            out.write(
                f'  <testsuite name="{classname_base}" tests="{counts.total}" '
                f'failures="{counts.failed}" errors="{counts.errored}" '
                f'skipped="{counts.skipped}" time="{suite_time:.3f}" '
                f'timestamp="2024-06-06T12:00:00" hostname="agent-{s % 7}">\n'
                "    <properties>"
                '<property name="java.version" value="17.0.9"/>'
                f'<property name="shard" value="{s % 4}"/>'
                "</properties>\n"
            )
            out.write("".join(body))
            out.write(f"    <system-out>{escape(f'suite {s} finished')}</system-out>\n")
            out.write("  </testsuite>\n")
            expected.total += counts.total
            expected.failed += counts.failed
            expected.errored += counts.errored
            expected.skipped += counts.skipped
            done += n
        out.write("</testsuites>\n")
    os.replace(tmp, path)
    counts_path(path).write_text(
        json.dumps(
            {
                "total": expected.total,
                "failed": expected.failed,
                "errored": expected.errored,
                "skipped": expected.skipped,
            }
        )
        + "\n"
    )
    return expected


def counts_path(report: Path) -> Path:
    return report.with_suffix(".counts.json")


def expected_counts(report: Path) -> dict[str, int]:
    """The counts the generator wrote for ``report``."""
    return json.loads(counts_path(report).read_text())


def ensure_report(cases: int, seed: int = DEFAULT_SEED, out_dir: Path = DATA_DIR) -> Path:
    """The cached report of ``cases`` cases, generated on first use."""
    path = report_path(cases, seed, out_dir)
    if not path.exists() or not counts_path(path).exists():
        write_report(path, cases, seed)
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sizes", nargs="+", type=int, help="numbers of test cases")
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED)
    ap.add_argument("--out", type=Path, default=DATA_DIR, help="output directory")
    ap.add_argument("--force", action="store_true", help="regenerate even if cached")
    args = ap.parse_args(argv)
    for size in args.sizes:
        path = report_path(size, args.seed, args.out)
        if args.force or not path.exists() or not counts_path(path).exists():
            exp = write_report(path, size, args.seed)
            print(
                f"{path} ({path.stat().st_size / 1e6:.1f} MB; {exp.total} cases, "
                f"{exp.failed} failed, {exp.errored} errors, {exp.skipped} skipped)"
            )
        else:
            print(f"{path} (cached)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
