"""Limits and tag names shared by the two JUnit parsing paths (ci_report.junit, junit_pull)."""

from __future__ import annotations

MAX_DEPTH = 1000  #: deeper element nesting is refused
CASE_MAX_DEPTH = 32  #: elements deeper than this inside one testcase are ignored
CASE_MAX_ELEMENTS = 10_000  #: elements beyond this inside one testcase are ignored
PENDING_LIMIT = 2000  #: failed cases kept per file waiting for a rerun
PASSED_KEYS_LIMIT = 200_000  #: passed executions whose key is remembered per file (rerun merging)
CHUNK_BYTES = 1 << 20  #: read size of the bounded (expat) path
PROLOG_SLICE = 256  #: the prolog is fed in slices this small (DOCTYPE refused early)
MAX_TOKEN_BYTES = 16 << 20  #: one tag (its attributes), comment or PI larger than this: refused
PULL_CHUNK_BYTES = 1 << 16  #: feed size of the pull (C) path
#: bytes the pull path may feed without an element being released (a case or a suite-level
#: element closed and dropped); beyond it the file goes to the bounded path, which never holds
#: a whole text node, tag or case
PULL_HELD_BYTES = 1 << 20

#: result child tag -> kind; direct children only (the first of each kind counts); a case with
#: none of them (and no ``status`` attribute) passed
RESULT_KINDS: dict[str, str] = {
    "error": "error",
    "failure": "failure",
    "skipped": "skipped",
    "flakyFailure": "flaky",
    "flakyError": "flaky",
    "rerunFailure": "rerun-failure",
    "rerunError": "rerun-error",
}
SUITE_CASE_NAME = "(suite)"
ROOTS = ("testsuites", "testsuite")
NO_TEXT_TAGS = frozenset({"system-out", "system-err"})
TEXTLEN = "{ci-report}textlen"  #: private attribute: full text length of a capped element
