"""One casing on the wire: the image wing's JSON (plan file, report, estimate, timeout plan) uses
camelCase keys, and these helpers are the only place that maps dataclass fields to them."""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, TypeVar

__all__ = ["camel", "fields_from_wire", "to_wire"]

T = TypeVar("T")
_WORDS = {"s": "Seconds", "bps": "Bps"}


def camel(name: str) -> str:
    """``expected_push_s`` -> ``expectedPushSeconds``, ``total_bytes`` -> ``totalBytes``."""
    first, *rest = name.split("_")
    return first + "".join(_WORDS.get(w, w[:1].upper() + w[1:]) for w in rest)


def to_wire(obj: Any) -> Any:
    """A dataclass (recursively, also inside lists and dicts) as camelCase JSON values."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {camel(f.name): to_wire(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_wire(x) for x in obj]
    if isinstance(obj, dict):
        return {k: to_wire(v) for k, v in obj.items()}
    return obj


def fields_from_wire(cls: type[T], data: Mapping[str, Any]) -> dict[str, Any]:
    """Keyword arguments for ``cls`` from its camelCase JSON (unknown keys are ignored, missing
    ones keep the field's default)."""
    if not isinstance(data, Mapping):
        raise ValueError(f"expected a JSON object for {cls.__name__}")
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        key = camel(f.name)
        if key in data:
            out[f.name] = data[key]
    return out
