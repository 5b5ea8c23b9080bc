"""How the image wing prints bytes, durations and rates: one format everywhere (decimal units,
as bandwidth is in MB/s), so the estimate, the timeout plan, heartbeats and the summary agree."""

from __future__ import annotations

from typing import Optional

__all__ = ["fmt_bytes", "fmt_duration", "fmt_rate"]


def fmt_bytes(n: Optional[float]) -> str:
    """``412 MB``, ``3.0 MB``, ``48 kB``, ``1.23 GB``, ``512 B``; ``?`` when unknown."""
    if n is None:
        return "?"
    n = float(n)
    if n >= 1e9:
        return f"{n / 1e9:.2f} GB"
    if n >= 10e6:
        return f"{n / 1e6:.0f} MB"
    if n >= 1e6:
        return f"{n / 1e6:.1f} MB"
    if n >= 1e3:
        return f"{n / 1e3:.0f} kB"
    return f"{int(n)} B"


def fmt_duration(seconds: Optional[float]) -> str:
    """``45s``, ``3m05s``, ``1h02m03s``; ``?`` when unknown."""
    if seconds is None:
        return "?"
    s = round(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m{s % 60:02d}s"


def fmt_rate(bps: Optional[float]) -> str:
    """Bytes per second as ``0.62 MB/s``."""
    return "?" if not bps else f"{bps / 1e6:.2f} MB/s"
