"""The wire contract's constants exist once (ci_report/wire.py) and everyone uses that copy."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import ci_report
from ci_report import config, verify, wire
from ci_report.callback import delivery, diagnose
from ci_report.platform import receiver

SRC = Path(ci_report.__file__).parent


def _code_strings(tree: ast.AST) -> list[ast.Constant]:
    """String literals in code, docstrings left out (they may name the path for the reader)."""
    docstrings = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                docstrings.add(id(body[0].value))
    return [
        n
        for n in ast.walk(tree)
        if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docstrings
    ]


def test_callback_path_is_written_only_in_wire() -> None:
    offenders = []
    for path in sorted(SRC.rglob("*.py")):
        if path.name == "wire.py":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        offenders += [
            f"{path.relative_to(SRC)}:{n.lineno}"
            for n in _code_strings(tree)
            if "/api/jenkins/callback" in n.value
        ]
    assert offenders == []


def test_every_side_reads_the_same_constants() -> None:
    assert config.CALLBACK_PATH is wire.CALLBACK_PATH
    assert receiver.CALLBACK_PATH is wire.CALLBACK_PATH
    assert receiver.TEST_PATH == wire.TEST_PATH == wire.CALLBACK_PATH + "/test"
    assert diagnose.CALLBACK_PATH is wire.CALLBACK_PATH
    assert verify.DEFAULT_TOLERANCE_S == wire.SIGNATURE_TOLERANCE_S
    assert diagnose.SKEW_LIMIT_S == wire.SIGNATURE_TOLERANCE_S
    assert delivery.CLOCK_SKEW_LIMIT_S == wire.SIGNATURE_TOLERANCE_S


def test_no_module_restates_the_tolerance_as_a_literal() -> None:
    pattern = re.compile(r"^(DEFAULT_TOLERANCE_S|SKEW_LIMIT_S|CLOCK_SKEW_LIMIT_S)\s*=\s*\d", re.M)
    offenders = [
        str(p.relative_to(SRC))
        for p in SRC.rglob("*.py")
        if pattern.search(p.read_text(encoding="utf-8"))
    ]
    assert offenders == []


def test_the_verifier_defaults_to_the_contract_tolerance() -> None:
    v = verify.CallbackVerifier(api_keys=["k"])
    assert v.tolerance_s == wire.SIGNATURE_TOLERANCE_S
