"""JUnit report discovery and a hardened, streaming parser.

Parsing
-------
Each file goes first to the pull path (:mod:`ci_report.junit_pull`: the C pull parser, 64 KB
feeds, each ``<testcase>`` read on its ``end`` event and dropped), which takes plain files only
and hands anything unusual (a DOCTYPE, a default namespace, an encoding it cannot check, an
error, a huge text node, tag or case) to the bounded path below, which resumes after the cases
already counted. The bounded path feeds the file in chunks to a bare ``xml.parsers.expat``
parser; the handlers build one ``<testcase>`` at a time (stdlib ``TreeBuilder``), read it the way
junitparser's ``xunit2.TestCase`` does (junitparser is the test oracle, not a run-time
dependency of this module), turn it into a :class:`CaseResult` and drop it. Nothing
else is kept: suite-level ``<system-out>`` is never stored, texts inside a case are capped at
``max_message`` characters while they stream in, so memory stays flat for
reports of any size (a 20 MB text node is fine). Both paths give the same cases
(tests/unit/test_junit_pull.py). Without ``on_case``, once ``results`` has no room left for
them, passed cases are only counted (no record). Cyclic GC is paused while a file is parsed (no
cycles are made; it would only rescan the kept results).

Hardening (no DTD at all): the pull path never feeds the C parser a chunk that holds (or whose
seam with the previous one holds) ``<!DOCTYPE`` or a NUL byte, nor a file declared in an encoding
those byte checks do not hold for: such a file goes to the bounded path, whose prolog is fed in
small slices so that a ``<!DOCTYPE`` stops the file with "DOCTYPE is not allowed ..." before any
entity can be declared or expanded; no external entity, file or URL is ever
read; nesting deeper than :data:`MAX_DEPTH` is refused; one tag, comment or processing
instruction larger than :data:`MAX_TOKEN_BYTES` is refused (expat holds a token whole, so a 200 MB
attribute would take 600 MB); only regular files are opened, non-blocking (a FIFO named like a
report never hangs the build), and a symlink loop is one unreadable file; one broken file gives a
:class:`ParseError` and the other files still count. Cases read before an error
in a file (a truncated report) are kept and the error says how many.

Semantics
---------
- Roots ``<testsuites>`` or ``<testsuite>``; nested suites count each case once;
  ``suites_time_ms`` sums the ``time`` of top-level suites only.
- Status per case: ``status="disabled"|"notrun"`` (CTest, googletest, tst) ->
  skipped whatever the children say; else ``<error>`` -> error, ``<failure>`` ->
  failed (a failure wins over ``<skipped>``: a failure is never hidden),
  ``<rerunError>``/``<rerunFailure>`` without a final result -> error/failed,
  ``<skipped>`` -> skipped, else passed. ``<flakyFailure>``/``<flakyError>``
  (passed on a Surefire rerun) -> passed with ``flaky=True``.
- Reruns written as repeated ``<testcase>`` elements (Gradle test-retry, go
  ``-count``, web-test-runner, pytest-style retries): in one file, executions of
  the same (suite, classname, name) of which at least one failed form one case:
  passed + flaky if any execution passed, else failed/error. Repeats that all
  passed or skipped stay separate cases (parametrized tests with equal names).
  Bounded: at most :data:`PENDING_LIMIT` failed cases wait for a rerun and
  :data:`PASSED_KEYS_LIMIT` passed executions are remembered per file (junit_keys.py).
- A ``<error>``/``<failure>`` directly inside a ``<testsuite>`` (a class that
  failed to load) counts as one case named ``(suite)`` of that suite, as
  Jenkins' JUnit plugin does.
- ``time``: seconds; ``"1,234"`` is a decimal comma (1.234 s), ``"1,234.5"``
  has a thousands separator; negative or unparsable -> 0.
- ``case_id``: testcase property ``caseId``/``case_id``/``testcase_id`` (all
  digits -> int), else ``case_map`` looked up as ``"classname.name"``, then
  ``"classname::name"``, then ``"name"``.
"""

from __future__ import annotations

import gc
import math
import os
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Union
from xml.etree.ElementTree import Element, TreeBuilder
from xml.parsers import expat

from .fileio import NotRegularFile, open_regular
from .junit_keys import PassedKeys
from .junit_limits import (
    CASE_MAX_DEPTH,
    CASE_MAX_ELEMENTS,
    CHUNK_BYTES,
    MAX_DEPTH,
    MAX_TOKEN_BYTES,
    NO_TEXT_TAGS,
    PENDING_LIMIT,
    PROLOG_SLICE,
    RESULT_KINDS,
    ROOTS,
    SUITE_CASE_NAME,
    TEXTLEN,
)
from .junit_limits import (
    PASSED_KEYS_LIMIT as PASSED_KEYS_LIMIT,  # re-exported: part of the documented limits
)
from .junit_pull import CLASSNAMES_SHARED, Shortcut, parse_pull

__all__ = [
    "DEFAULT_PATTERNS",
    "CaseResult",
    "Discovery",
    "ParseError",
    "TestRun",
    "discover_reports",
    "load_case_map",
    "parse_reports",
]

CaseId = Union[int, str]
#: a CaseResult without a __dict__ where the Python has dataclass slots (3.10+): a build keeps
#: up to 2 x max_results of them
_SLOTS: dict[str, bool] = {"slots": True} if sys.version_info >= (3, 10) else {}

DEFAULT_PATTERNS: tuple[str, ...] = (
    "**/target/surefire-reports/TEST-*.xml",
    "**/target/failsafe-reports/TEST-*.xml",
    "**/build/test-results/**/*.xml",
    "**/TEST-*.xml",
    "**/*junit*.xml",
    "**/test-results/**/*.xml",
    "**/test-reports/**/*.xml",
    "**/reports/junit/**/*.xml",
)
#: Directories never entered by glob discovery.
SKIP_DIRS = frozenset({".git", ".hg", ".svn", "node_modules", ".venv", "__pycache__"})
#: Files older than ``since_ms`` minus this many ms are skipped (clock/mtime slack).
MTIME_TOLERANCE_MS = 2000

DOCTYPE_REFUSED = "DOCTYPE is not allowed (entity expansion / external entities refused)"
TOKEN_REFUSED = (
    f"a single tag, attribute or comment is larger than {MAX_TOKEN_BYTES >> 20} MB "
    "(refused: it would have to be held in memory whole)"
)
_DISABLED_STATUSES = frozenset({"disabled", "notrun"})
_CASE_ID_PROPS = ("caseId", "case_id", "testcase_id")
_TEXTLEN = TEXTLEN  # private attribute: full text length of a capped element


# --------------------------------------------------------------------------- data


@dataclass
class Discovery:
    files: list[Path]
    skipped_old: list[Path] = field(default_factory=list)
    unmatched_patterns: list[str] = field(default_factory=list)


@dataclass(**_SLOTS)
class CaseResult:
    name: str
    classname: Optional[str]
    status: str  # 'passed' | 'failed' | 'error' | 'skipped'
    duration_ms: int
    message: Optional[str]
    case_id: Optional[CaseId]
    flaky: bool
    file: str
    suite: Optional[str]
    attempts: int = 1  #: executions merged into this case (reruns), see module doc


@dataclass
class ParseError:
    file: str
    error: str


@dataclass
class TestRun:
    __test__ = False  # not a pytest class

    files: list[str] = field(default_factory=list)
    parse_errors: list[ParseError] = field(default_factory=list)
    passed: int = 0
    failed: int = 0  # excludes errored
    errored: int = 0
    skipped: int = 0
    suites_time_ms: Optional[int] = None
    cases_time_ms: int = 0
    results: list[CaseResult] = field(default_factory=list)
    results_truncated: bool = False
    flaky: int = 0  #: passed cases marked flaky
    reruns: int = 0  #: repeated testcase elements merged into an earlier execution
    #: failing executions merged into an earlier passing one of the same name (said loudly)
    failed_after_pass: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return self.passed + self.failed + self.errored + self.skipped


# ---------------------------------------------------------------------- discovery


def _glob_regex(pattern: str) -> re.Pattern[str]:
    """Translate a glob with ``**`` (any number of directories) to a regex on '/' paths."""
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif c == "*":
            out.append("[^/]*")
            i += 1
        elif c == "?":
            out.append("[^/]")
            i += 1
        elif c == "[" and "]" in pattern[i + 2 :]:
            j = pattern.index("]", i + 2)
            body = pattern[i + 1 : j]
            if body.startswith("!"):
                body = "^" + body[1:]
            out.append("[" + body.replace("\\", "\\\\") + "]")
            i = j + 1
        else:
            out.append(re.escape(c))
            i += 1
    return re.compile("".join(out) + r"\Z")


def _split_base(pattern: str, root: Path) -> tuple[Path, str]:
    """Split a glob into the directory to walk and the pattern relative to it."""
    parts = pattern.replace("\\", "/").split("/")
    fixed: list[str] = []
    for part in parts[:-1]:
        if any(ch in part for ch in "*?["):
            break
        fixed.append(part)
    rest = "/".join(parts[len(fixed) :])
    base_str = "/".join(fixed)
    if pattern.startswith("/"):
        base = Path("/" + base_str.lstrip("/"))
    else:
        base = root / base_str if base_str else root
    return base, rest


def _walk(base: Path) -> list[Path]:
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(base):
        dirnames[:] = [d for d in dirnames if d not in SKIP_DIRS]
        found.extend(Path(dirpath, f) for f in filenames)
    return found


def _glob(pattern: str, root: Path) -> list[Path]:
    base, rest = _split_base(pattern, root)
    if not base.is_dir():
        return []
    regex = _glob_regex(rest)
    hits = []
    for path in _walk(base):
        rel = path.relative_to(base).as_posix()
        if regex.match(rel):
            hits.append(path)
    return hits


def _is_old(path: Path, since_ms: Optional[int]) -> bool:
    if since_ms is None:
        return False
    try:
        mtime_ms = path.stat().st_mtime * 1000
    except OSError:
        return False
    return mtime_ms < since_ms - MTIME_TOLERANCE_MS


def _key(path: Path) -> Path:
    """The path that identifies a report for deduplication. A symlink loop or an unreadable
    directory on the way makes ``resolve()`` fail: that file is then keyed by its absolute path,
    kept, and reported as one unreadable file by the parser (never an abort)."""
    try:
        return path.resolve()
    except (OSError, RuntimeError):  # RuntimeError: "Symlink loop" before Python 3.13
        return Path(os.path.abspath(path))


def _literal_file(pattern: str, root: Path) -> Optional[Path]:
    candidate = Path(pattern)
    if not candidate.is_absolute():
        candidate = root / candidate
    try:
        return candidate if candidate.is_file() else None
    except OSError:
        return None


def discover_reports(
    patterns: Optional[Sequence[str]], root: Path, since_ms: Optional[int] = None
) -> Discovery:
    """Find report files under ``root``.

    ``patterns`` None/empty -> :data:`DEFAULT_PATTERNS` (then ``unmatched_patterns``
    stays empty: defaults are best effort). A pattern naming an existing file
    (absolute or relative to ``root``) is always included, whatever its name and age.
    Globs support ``**``; :data:`SKIP_DIRS` are never entered; symlinked
    directories are not followed. Results are deduplicated by resolved path and
    sorted. With ``since_ms``, globbed files modified before the build started
    (minus :data:`MTIME_TOLERANCE_MS`) go to ``skipped_old``.
    """
    use_defaults = not patterns
    pats = list(DEFAULT_PATTERNS if use_defaults else patterns or ())
    root = Path(root)
    chosen: dict[Path, Path] = {}
    old: dict[Path, Path] = {}
    unmatched: list[str] = []
    for pattern in pats:
        literal = _literal_file(pattern, root)
        if literal is not None:
            chosen.setdefault(_key(literal), literal)
            continue
        hits = _glob(pattern, root)
        if not hits and not use_defaults:
            unmatched.append(pattern)
        for hit in hits:
            key = _key(hit)
            if key in chosen:
                continue
            if _is_old(hit, since_ms):
                old.setdefault(key, hit)
            else:
                chosen[key] = hit
    for key in chosen:
        old.pop(key, None)
    return Discovery(
        files=sorted(chosen.values(), key=str),
        skipped_old=sorted(old.values(), key=str),
        unmatched_patterns=unmatched,
    )


# ----------------------------------------------------------------------- case map


def _as_case_id(value: Any) -> Optional[CaseId]:
    if value is None:
        return None
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return value
    text = str(value).strip()
    if not text:
        return None
    return int(text) if text.isdigit() and text.isascii() else text


def load_case_map(path: Path) -> dict[str, CaseId]:
    """Load a case map: a JSON object ``{key: caseId}`` or a CSV ``key,caseId``.

    Keys are ``"classname.name"``, ``"classname::name"`` or ``"name"`` (tried in
    that order). A CSV header row (second column not an id, e.g. ``caseId``) is
    skipped. Raises ``ValueError`` with a readable message on bad content.
    """
    import csv  # here: only a build with a case map pays for these imports
    import json

    text = Path(path).read_text(encoding="utf-8-sig")
    if text.lstrip().startswith("{"):
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ValueError(f"case map {path}: not valid JSON: {exc}") from None
        return {str(k): v for k, v in ((k, _as_case_id(v)) for k, v in data.items()) if v}
    mapping: dict[str, CaseId] = {}
    for lineno, row in enumerate(csv.reader(text.splitlines()), start=1):
        if not row or not row[0].strip() or row[0].lstrip().startswith("#"):
            continue
        if len(row) < 2:
            raise ValueError(f"case map {path}: line {lineno}: expected 'key,caseId'")
        key, value = row[0].strip(), row[1].strip()
        if lineno == 1 and value.lower() in ("caseid", "case_id", "id", "testcase_id"):
            continue
        case_id = _as_case_id(value)
        if case_id is not None:
            mapping[key] = case_id
    return mapping


# ------------------------------------------------------------------------ helpers

_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


def parse_seconds(value: Optional[str]) -> Optional[float]:
    """Parse a JUnit ``time`` attribute: ``"1.5"``, ``"1,5"``, ``"1,234.5"``, ``"2,503"``.

    One comma and no dot is a decimal comma; commas next to a dot (or several
    commas) are thousands separators. Returns None when absent or unparsable,
    0.0 for negative or non-finite values.
    """
    if value is None:
        return None
    try:  # fast path: plain decimal
        seconds = float(value)
    except ValueError:
        pass
    else:
        if "_" not in value:
            return seconds if seconds >= 0 and math.isfinite(seconds) else 0.0
    text = value.strip().replace("\u00a0", "").replace(" ", "").replace("_", "")
    if not text:
        return None
    if "," in text:
        if "." in text or text.count(",") > 1:
            text = text.replace(",", "")
        else:
            text = text.replace(",", ".")
    if not _NUMBER.fullmatch(text):
        return None
    seconds = float(text)
    if not math.isfinite(seconds) or seconds < 0:
        return 0.0
    return seconds


def _to_ms(seconds: Optional[float]) -> int:
    return round(seconds * 1000) if seconds else 0


def _time_ms(value: Optional[str]) -> int:
    """``_to_ms(parse_seconds(value))``, with the common plain positive decimal inlined."""
    if value is None:
        return 0
    try:
        seconds = float(value)
    except ValueError:
        return _to_ms(parse_seconds(value))
    if 0 < seconds < math.inf and "_" not in value:
        return round(seconds * 1000)
    return _to_ms(parse_seconds(value))


def truncate(text: str, limit: int, total: Optional[int] = None) -> str:
    """Cut ``text`` to at most ``limit`` chars, ending with a visible marker."""
    total = max(total or 0, len(text))
    if total <= limit:
        return text
    marker = f"... [truncated, {total} chars]"
    if limit <= len(marker):
        return marker[:limit]
    return text[: limit - len(marker)] + marker


# ------------------------------------------------------------------------ parsing


class _Refused(Exception):
    """Stops one file with a readable reason."""


class _Collector:
    """Accumulates counts and the capped result lists for the whole run."""

    def __init__(
        self,
        max_results: int,
        on_case: Optional[Callable[[CaseResult], None]],
        on_passed: Optional[Callable[[str, Optional[str], int, Optional[CaseId]], None]] = None,
    ):
        self.run = TestRun()
        self.max_results = max_results
        self.on_case = on_case
        self.on_passed = on_passed if on_case is not None else None
        self.bad: list[CaseResult] = []
        self.other: list[CaseResult] = []

    def add(self, case: CaseResult) -> None:
        run = self.run
        status = case.status
        if status == "passed":
            run.passed += 1
            run.flaky += case.flaky
        elif status == "failed":
            run.failed += 1
        elif status == "error":
            run.errored += 1
        else:
            run.skipped += 1
        # at most max_results records in all: failures first, so a failure kept takes the
        # place of the last passed/skipped one (never in results now)
        bad, other = self.bad, self.other
        if status in ("failed", "error"):
            if len(bad) < self.max_results:
                bad.append(case)
                if len(bad) + len(other) > self.max_results:
                    other.pop()
        elif len(other) + len(bad) < self.max_results:
            other.append(case)
        if self.on_case is not None:
            self.on_case(case)

    def add_suite_time(self, seconds: Optional[float]) -> None:
        if seconds is not None:
            self.run.suites_time_ms = (self.run.suites_time_ms or 0) + _to_ms(seconds)

    def finish(self) -> TestRun:
        run = self.run
        results = self.bad[: self.max_results]
        results += self.other[: self.max_results - len(results)]
        run.results = results
        run.results_truncated = run.total > len(results)
        return run


@dataclass
class _Suite:
    name: Optional[str]
    depth: int


class _Semantics:
    """Turns one complete ``<testcase>`` element into a CaseResult.

    It reads the element directly (name, classname, the first result child of each kind, its
    ``message`` attribute and text) exactly as junitparser's ``TestCase``/``Result`` wrappers
    do; tests/unit/test_junit_oracle.py checks that case by case against junitparser on the
    whole corpus. Importing junitparser cost ~15 ms per build (its version lookup through
    importlib.metadata), which is why it left the hot path."""

    def __init__(self, max_message: int, case_map: Optional[Mapping[str, CaseId]]):
        self.max_message = max_message
        self.case_map = case_map
        self.kinds = RESULT_KINDS
        #: the classnames of the records made: each one str, however many records hold it
        self.classnames: dict[Optional[str], Optional[str]] = {}

    def _shared(self, classname: Optional[str]) -> Optional[str]:
        names = self.classnames
        if len(names) >= CLASSNAMES_SHARED:  # bounded: a report of distinct classnames
            names.clear()
        return names.setdefault(classname, classname)

    def case(self, elem: Element, file: str, suite: Optional[str]) -> CaseResult:
        first: dict[str, Element] = {}
        kinds = self.kinds
        for child in elem:
            kind = kinds.get(child.tag)
            if kind is not None and kind not in first:
                first[kind] = child
        status, deciding = self._status(elem, first)
        seconds = parse_seconds(elem.get("time"))
        name = elem.get("name") or ""
        classname = self._shared(elem.get("classname") or None)
        return CaseResult(
            name=name,
            classname=classname,
            status=status,
            duration_ms=_to_ms(seconds),
            message=self._message(deciding),
            case_id=self._case_id(elem, classname, name),
            flaky=status == "passed" and "flaky" in first,
            file=file,
            suite=suite,
        )

    def bare_case(self, attrs: Mapping[str, str], file: str, suite: Optional[str]) -> CaseResult:
        """A ``<testcase>`` with no children: passed (or skipped when disabled)."""
        status = attrs.get("status")
        name = attrs.get("name") or ""
        classname = self._shared(attrs.get("classname") or None)
        return CaseResult(
            name,
            classname,
            "passed"
            if status is None or status.strip().lower() not in _DISABLED_STATUSES
            else "skipped",
            _time_ms(attrs.get("time")),
            None,
            self._mapped_id(classname, name) if self.case_map else None,
            False,
            file,
            suite,
        )

    @staticmethod
    def _status(elem: Element, first: dict[str, Element]) -> tuple[str, Optional[Element]]:
        if (elem.get("status") or "").strip().lower() in _DISABLED_STATUSES:
            return "skipped", first.get("skipped")
        for kind, status in (
            ("error", "error"),
            ("failure", "failed"),
            ("rerun-error", "error"),
            ("rerun-failure", "failed"),
            ("skipped", "skipped"),
        ):
            if kind in first:
                return status, first[kind]
        return "passed", first.get("flaky")

    def _message(self, result: Optional[Element]) -> Optional[str]:
        if result is None:
            return None
        message = (result.get("message") or "").strip()
        total = None
        if not message:
            message = (result.text or "").strip()
            textlen = result.get(_TEXTLEN)
            total = int(textlen) if textlen else None
        if not message:
            return None
        return truncate(message, self.max_message, total)

    def case_id_of(self, elem: Element, classname: Optional[str], name: str) -> Optional[CaseId]:
        """The case id :meth:`case` gives the record of ``elem``."""
        return self._case_id(elem, classname, name)

    def _case_id(self, elem: Element, classname: Optional[str], name: str) -> Optional[CaseId]:
        props = elem.find("properties")
        if props is not None:
            values = {p.get("name"): p.get("value", p.text) for p in props.iter("property")}
            for key in _CASE_ID_PROPS:
                case_id = _as_case_id(values.get(key))
                if case_id is not None:
                    return case_id
        return self._mapped_id(classname, name) if self.case_map else None

    def _mapped_id(self, classname: Optional[str], name: str) -> Optional[CaseId]:
        assert self.case_map is not None
        keys = (f"{classname}.{name}", f"{classname}::{name}") if classname else ()
        for key in (*keys, name):
            if key in self.case_map:
                return _as_case_id(self.case_map[key])
        return None


class _Reruns:
    """Merges repeated executions of one test in a file (see module doc)."""

    def __init__(self, emit: Callable[[CaseResult], None], run: TestRun):
        self.emit = emit
        self.run = run
        self.pending: dict[tuple[Optional[str], Optional[str], str], CaseResult] = {}
        self.passed_keys = PassedKeys()

    def add(self, case: CaseResult) -> None:
        key = (case.suite, case.classname, case.name)
        status = case.status
        if status == "passed" and not self.pending:  # the common case
            self.passed_keys.add(hash(key))
            self.emit(case)
            return
        bad = status in ("failed", "error")
        prev = self.pending.get(key)
        if prev is not None:
            self.run.reruns += 1
            if case.status == "passed":
                del self.pending[key]
                case.attempts = prev.attempts + 1
                case.flaky = True
                case.message = case.message or prev.message
                self._emit_passed(case, key)
            elif bad:
                del self.pending[key]
                case.attempts = prev.attempts + 1
                self.pending[key] = case
            else:
                prev.attempts += 1
            return
        if bad:
            if hash(key) in self.passed_keys:
                self.run.reruns += 1  # an earlier execution passed: counted there
                self.run.failed_after_pass.append(f"{case.classname or ''}::{case.name}")
                return
            self.pending[key] = case
            if len(self.pending) > PENDING_LIMIT:
                oldest = next(iter(self.pending))
                self.emit(self.pending.pop(oldest))
        else:
            if case.status == "passed":
                self.passed_keys.add(hash(key))
            self.emit(case)

    def _emit_passed(self, case: CaseResult, key: tuple[Any, ...]) -> None:
        self.passed_keys.add(hash(key))
        self.emit(case)

    def flush(self) -> None:
        for case in self.pending.values():
            self.emit(case)
        self.pending.clear()
        self.passed_keys.clear()


class _FileParser:
    """Expat handlers for one file: tracks suites, builds one testcase at a time.

    A ``<testcase>`` without children (the common passed case) needs no element
    at all; the element only comes in once a child appears.
    """

    def __init__(self, file: str, collector: _Collector, semantics: _Semantics):
        self.file = file
        self.collector = collector
        self.semantics = semantics
        self.reruns = _Reruns(collector.add, collector.run)
        self.max_text = semantics.max_message + 1
        self.depth = 0
        self.root_seen = False
        self.suites: list[_Suite] = []
        self.in_case = False
        self.case_attrs: dict[str, str] = {}
        self.builder: Optional[TreeBuilder] = None  # only once the case has children
        self.case_depth = 0  # element depth where the current case started
        self.synthetic = False  # current case is a suite-level <error>/<failure>
        self.case_elements = 0
        self.skip_depth = 0  # >0 while ignoring an over-deep / over-long case subtree
        self.text_stack: list[list[int]] = []  # per open case child: [kept, total, on]
        self.cases = 0
        self.top_suites = 0  # top-level suites opened (their time counted)
        # after the pull path gave up on the file: what it already handed over (not again)
        self.skip_cases = 0
        self.skip_top_suites = 0

    # the pull path's sink (see junit_pull.PullSink) --------------------------------

    def pull_suite(self, attrs: Mapping[str, str], top: bool) -> None:
        if top:
            self.top_suites += 1
            self.collector.add_suite_time(parse_seconds(attrs.get("time")))

    def pull_case(self, elem: Element, suite: Optional[str]) -> None:
        self.cases += 1
        if len(elem):
            case = self.semantics.case(elem, self.file, suite)
        else:
            case = self.semantics.bare_case(elem.attrib, self.file, suite)
        self.collector.run.cases_time_ms += case.duration_ms
        self.reruns.add(case)

    def shortcut(self) -> Shortcut:
        collector = self.collector
        return Shortcut(
            self.reruns.pending,
            self.reruns.passed_keys,
            _time_ms,
            None if self.semantics.case_map else CaseResult,
            self.file,
            collector.other,
            collector.max_results,
            collector.on_case,
            collector.on_passed,
            collector.bad,
            self.semantics.case_id_of,
            self.semantics.classnames,
        )

    def pull_counted(self, cases: int, time_ms: int) -> None:
        """Passed cases the pull path took itself (see junit_pull.Shortcut)."""
        self.cases += cases
        run = self.collector.run
        run.passed += cases
        run.cases_time_ms += time_ms

    def resume_after_pull(self) -> None:
        """The bounded path takes the file over from the start: skip what was handed over."""
        self.skip_cases, self.cases = self.cases, 0
        self.skip_top_suites, self.top_suites = self.top_suites, 0

    # expat handlers -------------------------------------------------------------

    def start(self, tag: str, attrs: dict[str, str]) -> None:
        self.depth += 1
        depth = self.depth
        if depth > MAX_DEPTH:
            raise _Refused(f"elements nested deeper than {MAX_DEPTH} levels")
        if self.in_case:
            self._case_start(tag, attrs)
        elif tag == "testcase" and depth > 1:  # inlined _begin_case: the hot path
            self.in_case = True
            self.case_attrs = attrs
            self.case_depth = depth
            self.synthetic = False
            self.case_elements = 0
        elif depth == 1:
            self._root(tag, attrs)
        elif tag == "testsuite":
            self._open_suite(attrs)
        elif tag in ("error", "failure") and self.suites and self.suites[-1].depth == depth - 1:
            name = self.suites[-1].name
            self._begin_case({"name": SUITE_CASE_NAME, "classname": name or ""})
            self.synthetic = True
            self._case_start(tag, attrs)

    def end(self, tag: str) -> None:
        depth = self.depth
        self.depth -= 1
        if self.in_case:
            if self.skip_depth:
                self.skip_depth -= 1
            elif depth == self.case_depth:
                self._finish_case(tag)
            else:
                self._case_end(tag)
        elif self.suites and self.suites[-1].depth == depth:
            self.suites.pop()

    def data(self, text: str) -> None:
        if self.skip_depth or not self.text_stack:
            return
        state = self.text_stack[-1]
        state[1] += len(text)
        if not state[2]:
            return
        room = self.max_text - state[0]
        if room <= 0:
            return
        piece = text[:room]
        state[0] += len(piece)
        assert self.builder is not None
        self.builder.data(piece)

    @staticmethod
    def refuse_doctype(*_args: Any) -> None:
        raise _Refused(DOCTYPE_REFUSED)

    @staticmethod
    def refuse_entity(*_args: Any) -> int:
        raise _Refused(DOCTYPE_REFUSED)

    # structure --------------------------------------------------------------------

    def _root(self, tag: str, attrs: dict[str, str]) -> None:
        self.root_seen = True
        if tag not in ROOTS:
            raise _Refused(f"root element <{tag}> is not <testsuites> or <testsuite>")
        if tag == "testsuite":
            self._open_suite(attrs)

    def _open_suite(self, attrs: dict[str, str]) -> None:
        top = not self.suites
        self.suites.append(_Suite(attrs.get("name"), self.depth))
        if top:
            self.top_suites += 1
            if self.top_suites > self.skip_top_suites:
                self.collector.add_suite_time(parse_seconds(attrs.get("time")))

    def _begin_case(self, attrs: dict[str, str]) -> None:
        self.in_case = True
        self.case_attrs = attrs
        self.case_depth = self.depth
        self.synthetic = False
        self.case_elements = 0

    def _case_start(self, tag: str, attrs: dict[str, str]) -> None:
        if self.builder is None:
            self.builder = TreeBuilder()
            self.builder.start("testcase", self.case_attrs)
            self.text_stack = []
        self.case_elements += 1
        if (
            self.skip_depth
            or len(self.text_stack) >= CASE_MAX_DEPTH
            or self.case_elements > CASE_MAX_ELEMENTS
        ):
            self.skip_depth += 1
            return
        self.builder.start(tag, attrs)
        parent_on = self.text_stack[-1][2] if self.text_stack else 1
        self.text_stack.append([0, 0, int(parent_on and tag not in NO_TEXT_TAGS)])

    def _case_end(self, tag: str) -> None:
        assert self.builder is not None
        elem = self.builder.end(tag)
        kept, total, _on = self.text_stack.pop()
        if total > kept:
            elem.set(_TEXTLEN, str(total))

    def _finish_case(self, tag: str) -> None:
        self.in_case = False
        if self.cases < self.skip_cases:  # the pull path counted it already
            self.builder = None
            self.text_stack = []
            self.cases += 1
            return
        suite = self.suites[-1].name if self.suites else None
        builder = self.builder
        if builder is None:
            case = self.semantics.bare_case(self.case_attrs, self.file, suite)
        else:
            if self.synthetic:
                self._case_end(tag)
            builder.end("testcase")
            self.builder = None
            self.text_stack = []
            case = self.semantics.case(builder.close(), self.file, suite)
        self.collector.run.cases_time_ms += case.duration_ms
        self.cases += 1
        self.reruns.add(case)

    def flush(self) -> None:
        self.reruns.flush()


def _new_expat(handlers: _FileParser) -> Any:
    parser = expat.ParserCreate()
    parser.buffer_text = True
    parser.buffer_size = 1 << 16
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.StartDoctypeDeclHandler = handlers.refuse_doctype
    parser.EntityDeclHandler = handlers.refuse_entity
    parser.UnparsedEntityDeclHandler = handlers.refuse_entity
    parser.ExternalEntityRefHandler = handlers.refuse_entity
    parser.StartElementHandler = handlers.start
    parser.EndElementHandler = handlers.end
    parser.CharacterDataHandler = handlers.data
    return parser


def _check_token(parser: Any, fed: int) -> None:
    """Refuse one token (a start tag with its attributes, a comment, a processing instruction)
    larger than :data:`MAX_TOKEN_BYTES`: expat holds a whole token in memory before any handler
    sees it, so a 200 MB attribute would otherwise take several times that. Text is not a
    token: it streams in pieces (and is capped), so a huge text node never trips this."""
    if fed - parser.CurrentByteIndex > MAX_TOKEN_BYTES:
        raise _Refused(TOKEN_REFUSED)


def _feed(parser: Any, handlers: _FileParser, stream: Any) -> None:
    """Feed the file; the prolog goes in small slices so a DOCTYPE stops us early."""
    first = stream.read(CHUNK_BYTES)
    if not first.strip():
        raise _Refused("empty file" if not first else "empty file (only whitespace)")
    pos = 0
    while pos < len(first) and not handlers.root_seen:
        parser.Parse(first[pos : pos + PROLOG_SLICE], False)
        pos += PROLOG_SLICE
    if pos < len(first):
        parser.Parse(first[pos:], False)
    fed = len(first)
    while True:
        _check_token(parser, fed)
        chunk = stream.read(CHUNK_BYTES)
        if not chunk:
            break
        parser.Parse(chunk, False)
        fed += len(chunk)
    parser.Parse(b"", True)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, _Refused):
        return str(exc)
    if isinstance(exc, expat.ExpatError):
        reason = expat.ErrorString(exc.code) if exc.code else str(exc)
        return f"not XML: line {exc.lineno}, column {exc.offset}: {reason}"
    if isinstance(exc, NotRegularFile):
        return "cannot read: not a regular file (a FIFO, socket, device or directory)"
    if isinstance(exc, OSError):
        return f"cannot read: {exc.strerror or exc}"
    if isinstance(exc, RecursionError):
        return "document too deeply nested"
    if isinstance(exc, MemoryError):
        return "out of memory while parsing"
    return f"unexpected {type(exc).__name__}: {exc}"


def _parse_file(path: Path, collector: _Collector, semantics: _Semantics) -> Optional[str]:
    """Parse one file into ``collector``; return an error description or None."""
    handlers = _FileParser(str(path), collector, semantics)
    error: Optional[str] = None
    gc_was_enabled = gc.isenabled()
    gc.disable()  # a parse makes no cycles: the collector would only rescan the kept results
    try:
        with open_regular(path) as stream:  # a FIFO or device named like a report never blocks
            if not parse_pull(stream, handlers):  # anything unusual: the bounded path
                handlers.resume_after_pull()
                stream.seek(0)
                _feed(_new_expat(handlers), handlers, stream)
    except Exception as exc:  # one bad file never stops the others
        error = _describe(exc)
    finally:
        handlers.flush()
        if gc_was_enabled:
            gc.enable()
    if error and handlers.cases:
        error += f" ({handlers.cases} test case(s) before the error were counted)"
    return error


def parse_reports(
    files: Sequence[Path],
    *,
    max_results: int = 10_000,
    max_message: int = 8_000,
    case_map: Optional[Mapping[str, CaseId]] = None,
    on_case: Optional[Callable[[CaseResult], None]] = None,
    on_passed: Optional[Callable[[str, Optional[str], int, Optional[CaseId]], None]] = None,
) -> TestRun:
    """Parse JUnit files into one :class:`TestRun` (see the module doc for the rules).

    ``on_case`` gets every case (after rerun merging, so failed cases may come
    at the end of their file); ``results`` keeps at most ``max_results``:
    failures and errors first, then skipped/passed in file order. ``on_passed`` (with
    ``on_case``) may take the place of ``on_case`` for a passed case (no result child, so no
    message or flaky mark) that is not kept in ``results``: it gets the case's name,
    classname, duration in ms and case id (from its properties; never used with a case map),
    in the same order among on_case's calls
    (the result file's encoder writes those directly, without a record). Never raises
    for a bad file: it lands in ``parse_errors`` and the others still count.
    """
    collector = _Collector(max_results, on_case, on_passed)
    semantics = _Semantics(max_message, case_map)
    for path in files:
        collector.run.files.append(str(path))
        error = _parse_file(Path(path), collector, semantics)
        if error:
            collector.run.parse_errors.append(ParseError(str(path), error))
    return collector.finish()
