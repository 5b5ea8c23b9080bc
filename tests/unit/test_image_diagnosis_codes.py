"""The image diagnosis codes: every code the image wing can put in a report is in
``diagnosis.CODES``, every one in ``CODES`` can be emitted, and docs/design.md section 6 lists
exactly that set (the codes are a contract: platforms and the Groovy library branch on them)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from ci_report.image.diagnosis import CODES
from ci_report.image.kaniko_log import CATALOGUE

ROOT = Path(__file__).resolve().parents[2]
IMAGE = ROOT / "src" / "ci_report" / "image"
# constructor -> position of its code argument
CODE_ARG = {"Diagnosis": 1, "Problem": 0}


def _literal_codes_of(path: Path) -> set[str]:
    """Codes written as literals where a Diagnosis or a preflight Problem is made: the argument
    itself, or (a variable ``code``) every string assigned to ``code`` in that function."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for func in [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.Module))]:
        assigned = {
            node.value.value
            for node in ast.walk(func)
            if isinstance(node, ast.Assign)
            and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str)
            and any(isinstance(t, ast.Name) and t.id == "code" for t in node.targets)
        }
        for call in [n for n in ast.walk(func) if isinstance(n, ast.Call)]:
            name = getattr(call.func, "id", None)
            if name not in CODE_ARG:
                continue
            arg = next((k.value for k in call.keywords if k.arg == "code"), None)
            if arg is None and len(call.args) > CODE_ARG[name]:
                arg = call.args[CODE_ARG[name]]
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                found.add(arg.value)
            elif isinstance(arg, ast.Name) and arg.id == "code":
                found |= assigned
    return found


def emitted_codes() -> set[str]:
    codes = {entry.code for entry in CATALOGUE}  # Kaniko's error lines
    for path in sorted(IMAGE.glob("*.py")):
        codes |= _literal_codes_of(path)
    return codes


def documented_codes() -> list[str]:
    text = (ROOT / "docs" / "design.md").read_text(encoding="utf-8")
    section = text.split("\n## 6. ", 1)[1].split("\n## ", 1)[0]
    listed = section.split("Diagnosis codes (stable identifiers", 1)[1]
    return re.findall(r"^- `([a-z0-9-]+)`: ", listed, flags=re.M)


def test_every_code_the_image_wing_emits_is_declared_and_every_declared_one_is_emitted() -> None:
    assert emitted_codes() == set(CODES)


def test_design_doc_lists_exactly_the_codes() -> None:
    documented = documented_codes()
    assert len(documented) == len(set(documented)), "a code is listed twice"
    assert set(documented) == set(CODES)
