"""Import requests without paying for three modules it imports at start-up and rarely uses.

- ``importlib.metadata``: urllib3 2.x imports it only for ``version("h2")``, called when HTTP/2
  is switched on (``urllib3.http2.inject_into_urllib3``; ci-report never does).
- ``charset_normalizer`` (~7 ms): requests reads its ``__version__`` for a compatibility warning
  and calls its ``detect`` only for ``Response.text`` of an answer whose Content-Type names no
  charset (and is neither text nor JSON).
- ``idna`` (~1 ms): ``requests.packages`` imports it to alias it; requests and urllib3 import
  it again where they encode a non-ASCII host name.

While requests loads, a stand-in holds each module's place: what requests reads at import
(``version``, ``__version__``; nothing of idna) answers from the stand-in, anything else imports
the real module when it is first used. Afterwards the stand-ins leave ``sys.modules``: whoever
imports one of these modules later gets the real one. A module already imported, or one whose
version cannot be read without importing it, is imported as usual.
"""

from __future__ import annotations

import importlib
import re
import sys
import types
from typing import Any, Optional

_VERSION_LINE = re.compile(r"""^__version__\s*=\s*["']([0-9A-Za-z.+-]+)["']\s*$""", re.M)


def load_requests() -> None:
    """``import requests``, with the stand-ins above (idempotent; cheap once done)."""
    if "requests" in sys.modules:
        return
    stand_ins = []
    if "importlib.metadata" not in sys.modules:
        stand_ins.append(_StandIn("importlib.metadata", version=_metadata_version))
    version = _charset_normalizer_version()
    if version is not None:
        stand_ins.append(_StandIn("charset_normalizer", __version__=version))
    if "idna" not in sys.modules:
        stand_ins.append(_StandIn("idna"))
    for stand_in in stand_ins:
        sys.modules[stand_in.__name__] = stand_in
    try:
        import requests  # noqa: F401
    finally:
        for stand_in in stand_ins:
            if sys.modules.get(stand_in.__name__) is stand_in:
                del sys.modules[stand_in.__name__]


class _StandIn(types.ModuleType):
    """A module's place holder: the given attributes answer at once, any other attribute is
    the real module's (imported then)."""

    def __init__(self, name: str, **attributes: Any) -> None:
        super().__init__(name)
        self.__dict__.update(attributes)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):  # the import system's probes (__path__...): a plain module
            raise AttributeError(name)
        return getattr(_real(self.__name__), name)


def _real(name: str) -> types.ModuleType:
    if isinstance(sys.modules.get(name), _StandIn):
        del sys.modules[name]
    return importlib.import_module(name)


def _metadata_version(distribution_name: str) -> str:
    return str(_real("importlib.metadata").version(distribution_name))


def _charset_normalizer_version() -> Optional[str]:
    """charset_normalizer's ``__version__`` read from its ``version.py`` (not imported), or
    None: already imported, not installed, or laid out differently."""
    if "charset_normalizer" in sys.modules:
        return None
    try:
        import importlib.util
        from pathlib import Path

        spec = importlib.util.find_spec("charset_normalizer")
        if spec is None or not spec.submodule_search_locations:
            return None
        package = Path(next(iter(spec.submodule_search_locations)))
        text = (package / "version.py").read_text("utf-8")
    except (ImportError, OSError, ValueError):
        return None
    found = _VERSION_LINE.findall(text)
    return found[0] if len(found) == 1 else None
