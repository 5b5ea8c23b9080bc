"""One exit-code table: ``errors.EXIT_CODES`` against the command table of docs/design.md, the
commands the CLI has, and the codes the code returns."""

from __future__ import annotations

import re
from pathlib import Path

from ci_report.cli import COMMANDS
from ci_report.errors import COMMON_EXIT_CODES, EXIT_CODES

DESIGN = Path(__file__).resolve().parents[2] / "docs" / "design.md"


def _design_exit_cells() -> dict[str, str]:
    """command -> the "exit codes" cell of docs/design.md section 3's command table."""
    section = DESIGN.read_text(encoding="utf-8").split("## 3. Commands", 1)[1].split("\n## ", 1)[0]
    cells: dict[str, str] = {}
    for line in section.splitlines():
        if not line.startswith("| `"):
            continue
        parts = [c.strip() for c in line.strip().strip("|").split("|")]
        for name in re.findall(r"`([a-z-]+)`", parts[0]):
            cells[name] = parts[-1]
    return cells


def _codes(cell: str) -> set[int]:
    return {int(n) for n in re.findall(r"(?<![\w.])(\d{1,3})(?![\w.])", cell)}


def test_every_command_has_a_row_and_a_table() -> None:
    cells = _design_exit_cells()
    assert set(cells) == set(COMMANDS), "docs/design.md's command table vs the CLI's commands"
    assert set(EXIT_CODES) == set(COMMANDS)


def test_design_table_states_the_same_codes_as_errors_py() -> None:
    common = set(COMMON_EXIT_CODES)
    for name, cell in _design_exit_cells().items():
        stated = _codes(cell)
        table = set(EXIT_CODES[name])
        assert stated <= table, f"{name}: design.md states {sorted(stated - table)}, errors.py not"
        assert table - common <= stated, (
            f"{name}: errors.py has {sorted(table - common - stated)}, design.md's row does not"
        )


def test_common_codes_are_stated_once_above_the_table() -> None:
    section = DESIGN.read_text(encoding="utf-8").split("## 3. Commands", 1)[1].split("| command")[0]
    for code in COMMON_EXIT_CODES:
        assert re.search(rf"\b{code}\b", section), f"design.md: no common {code}"


def test_every_meaning_is_one_line() -> None:
    for name, table in EXIT_CODES.items():
        for code, meaning in table.items():
            assert 0 <= code <= 255, (name, code)
            assert meaning and "\n" not in meaning and len(meaning) <= 160, (name, code)


def test_trigger_and_sync_codes_come_from_the_table() -> None:
    from ci_report.cli import platform_cmd
    from ci_report.platform import sync, trigger

    assert platform_cmd.EXIT_MEANINGS is EXIT_CODES["trigger"]
    assert set(trigger.RESULT_EXIT.values()) <= set(EXIT_CODES["trigger"])
    for code in (sync.EXIT_DONE, sync.EXIT_FAILED, sync.EXIT_USAGE, sync.EXIT_NOTHING):
        assert code in EXIT_CODES["sync"]
    assert EXIT_CODES["sync"][sync.EXIT_NOTHING].startswith("nothing to recover")
    assert EXIT_CODES["trigger"][trigger.EXIT_LOST].startswith("lost or unknown")


def test_image_watch_does_not_exit_with_a_signal_code() -> None:
    assert not {129, 130, 143} & set(EXIT_CODES["image-watch"])


def test_help_lists_the_exit_codes_from_the_table() -> None:
    import click
    from click.testing import CliRunner

    from ci_report.cli import cli

    ctx = click.Context(cli)
    for name in sorted(set(COMMANDS) - {"config"}):  # config --help: the config helper's
        out = CliRunner().invoke(cli, [name, "--help"], terminal_width=200).output
        own = out.split("Exit codes:", 1)[1]
        for code, meaning in EXIT_CODES[name].items():
            if COMMON_EXIT_CODES.get(code) == meaning:
                also = next(ln for ln in own.splitlines() if ln.strip().startswith("and "))
                assert re.search(rf"\b{code}\b", also), (name, code)
            else:
                assert re.search(rf"^\s+{code}  {re.escape(meaning[:30])}", own, re.M), (name, code)
        assert cli.get_command(ctx, name) is not None
