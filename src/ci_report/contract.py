"""The contract the Jenkins shared library relies on, published by ``ci-report config --json``.

Gathered from the modules that own each part (no copies here): build results
(``callback.payload``), run statuses (``platform.runs``), diagnosis codes (``image.diagnosis``),
the number rules of the settings (``config.Limit`` via ``setting_limits``) and the exit-code
table (``errors.EXIT_CODES``). The library's own copies (``shared-library/src/io/cireport/
Contract.groovy``) are compared with this by ``tests/integration/test_library_cli_contract.py``.
"""

from __future__ import annotations

from typing import Any

from . import __version__

SCHEMA = "ci-report/contract/v1"


def contract() -> dict[str, Any]:
    """The contract as JSON-ready data: schema, version, enums, limits and exitCodes.

    ``limits`` maps each limited setting (``timeout``, ``bandwidth``, ``deadline``,
    ``max_attempts``...) to its env names, rule text and bounds (``minimum`` /
    ``exclusiveMinimum`` / ``maximum``, ``keywords``); ``exitCodes`` maps each command to
    ``{"<code>": meaning}`` (JSON object keys are strings)."""
    from .callback.payload import BUILD_RESULTS
    from .config import setting_limits
    from .errors import EXIT_CODES
    from .image.diagnosis import CODES
    from .platform.runs import RUN_STATUSES

    limits = setting_limits()
    return {
        "schema": SCHEMA,
        "version": __version__,
        "enums": {
            "buildResults": list(BUILD_RESULTS),
            "runStatuses": list(RUN_STATUSES),
            "diagnosisCodes": list(CODES),
            "timeoutKeywords": list(limits["timeout"].get("keywords", [])),
        },
        "limits": limits,
        "exitCodes": {
            command: {str(code): meaning for code, meaning in table.items()}
            for command, table in EXIT_CODES.items()
        },
    }
