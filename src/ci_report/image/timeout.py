"""Pick the executor timeout from the estimate and the measured bandwidth (design.md 6).

    timeout = clamp(1.5 x (pull + build + push) + 120 s, floor, cap)

- push  = estimated bytes / bandwidth; bandwidth from the push history of that registry host
  (EWMA), else ``--bandwidth`` (MB/s), else a conservative 0.5 MB/s;
- pull  = bytes of the base images / max(push bandwidth, 2 MB/s) (downloads are rarely slower
  than uploads);
- build = the given seconds, else the median of recorded builds to that host, else 120 s.

``--timeout SECONDS`` wins over all of it (the plan still says what auto would have chosen).
Every step is a human line in ``reasoning`` with its numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional

from ..console import Console, get_console
from .estimate import Estimate
from .history import PushHistory
from .units import fmt_bytes, fmt_rate
from .wire import fields_from_wire, to_wire

__all__ = [
    "DEFAULT_BANDWIDTH_BPS",
    "DEFAULT_BUILD_SECONDS",
    "MARGIN",
    "OVERHEAD_SECONDS",
    "TimeoutPlan",
    "plan_timeout",
    "show_plan",
]

DEFAULT_BANDWIDTH_BPS = 500_000.0  # 0.5 MB/s: the slow end of what the real case saw
DEFAULT_PULL_BPS = 2_000_000.0
DEFAULT_BUILD_SECONDS = 120.0
MARGIN = 1.5
OVERHEAD_SECONDS = 120.0


def formula_seconds(pull_s: float, build_s: float, push_s: float) -> float:
    """The one timeout formula: ``MARGIN x (pull + build + push) + OVERHEAD_SECONDS``."""
    return MARGIN * (pull_s + build_s + push_s) + OVERHEAD_SECONDS


FORMULA_TEXT = f"x{MARGIN:g} + {OVERHEAD_SECONDS:.0f} s"


@dataclass
class TimeoutPlan:
    seconds: int
    source: str  # 'explicit' | 'history' | 'bandwidth-flag' | 'default'
    bandwidth_bps: float
    expected_push_s: float
    expected_pull_s: float
    expected_build_s: float
    reasoning: list[str]
    floor: int
    cap: int
    auto_seconds: int = 0  # what the formula gives (also when --timeout overrides it)
    bandwidth_source: str = "default"  # where bandwidth_bps came from
    samples: int = 0  # history pushes behind the EWMA
    push_bytes: int = 0
    pull_bytes: int = 0
    clamped: Optional[str] = None  # 'floor' | 'cap' | None
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """camelCase, as in the plan file (``expectedPushSeconds``, ``bandwidthBps``, ...)."""
        data: dict[str, Any] = to_wire(self)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TimeoutPlan:
        kw = fields_from_wire(cls, data)
        missing = [n for n in ("seconds", "source", "bandwidth_bps") if n not in kw]
        if missing:
            raise ValueError(f"timeout plan without {', '.join(missing)}")
        kw.setdefault("expected_push_s", 0.0)
        kw.setdefault("expected_pull_s", 0.0)
        kw.setdefault("expected_build_s", 0.0)
        kw.setdefault("reasoning", [])
        kw.setdefault("floor", 0)
        kw.setdefault("cap", 0)
        return cls(**kw)


_BANDWIDTH_FROM = {
    "history": "bandwidth from the push history",
    "bandwidth-flag": "bandwidth from --bandwidth",
    "default": "default bandwidth",
}


def headline(plan: TimeoutPlan) -> str:
    """``timeout: 868 s (auto, bandwidth from the push history)``: what decided the number."""
    if plan.source == "explicit":
        how = "explicit"
    elif not plan.push_bytes and plan.seconds == plan.cap:
        how = "auto: the cap, no estimate"
    else:
        how = f"auto, {_BANDWIDTH_FROM.get(plan.source, plan.source)}"
    return f"timeout: {plan.seconds} s ({how})"


def show_plan(plan: TimeoutPlan, console: Optional[Console] = None) -> None:
    console = console or get_console()
    console.info(headline(plan))
    for line in plan.reasoning:
        console.detail("", line)
    for line in plan.warnings:
        console.warn(line)


def plan_timeout(
    estimate: Optional[Estimate],
    *,
    registry_host: str,
    history: Optional[PushHistory],
    explicit: Optional[int] = None,
    bandwidth_mbps: Optional[float] = None,
    floor: float = 600,
    cap: float = 10800,
    default_bandwidth_bps: float = DEFAULT_BANDWIDTH_BPS,
    build_seconds: Optional[float] = None,
    pull_bandwidth_bps: Optional[float] = None,
) -> TimeoutPlan:
    floor_i, cap_i = int(floor), int(cap)
    if cap_i < floor_i:
        cap_i = floor_i
    reasoning: list[str] = []
    warnings: list[str] = []

    # -- bandwidth -------------------------------------------------------------------------
    measured = None
    if history is not None:
        try:
            measured = history.bandwidth_for(registry_host)
        except Exception:  # history trouble must never stop a build
            measured = None
    samples = 0
    if measured:
        bps, samples = measured
        bw_source = "history"
        bw_text = f"EWMA of {samples} push{'es' if samples != 1 else ''} to {registry_host}"
    elif bandwidth_mbps and bandwidth_mbps > 0:
        bps = float(bandwidth_mbps) * 1e6
        bw_source = "bandwidth-flag"
        bw_text = "from --bandwidth"
    else:
        bps = float(default_bandwidth_bps)
        bw_source = "default"
        bw_text = f"conservative default; no push to {registry_host} measured yet"
    bps = max(bps, 1.0)

    # -- push ------------------------------------------------------------------------------
    push_bytes = estimate.total_bytes if estimate is not None else 0
    pull_bytes = estimate.pull_bytes if estimate is not None else 0
    push_s = push_bytes / bps
    if estimate is not None:
        line = f"push {fmt_bytes(push_bytes)} at {fmt_rate(bps)} ({bw_text}) = {push_s:.0f} s"
        if estimate.is_guess or not estimate.reachable:
            line += " [estimate includes a guess]"
        reasoning.append(line)
    else:
        reasoning.append(f"push size unknown (no estimate); bandwidth {fmt_rate(bps)} ({bw_text})")

    if measured and bandwidth_mbps:
        # history > --bandwidth > default: say so, or the flag looks silently ignored
        reasoning.append(
            f"--bandwidth {float(bandwidth_mbps):g} MB/s not used: the measured bandwidth of "
            f"{samples} earlier push{'es' if samples != 1 else ''} to {registry_host} comes "
            "first (history, then --bandwidth, then the default)"
        )

    # -- pull ------------------------------------------------------------------------------
    pull_bps = pull_bandwidth_bps or max(bps, DEFAULT_PULL_BPS)
    pull_s = pull_bytes / pull_bps
    if pull_bytes:
        reasoning.append(
            f"pull {fmt_bytes(pull_bytes)} of base images at {fmt_rate(pull_bps)} "
            f"({'given' if pull_bandwidth_bps else 'assumed'}) = {pull_s:.0f} s"
        )

    # -- build -----------------------------------------------------------------------------
    if build_seconds is not None:
        build_s = float(build_seconds)
        reasoning.append(f"build {build_s:.0f} s (given)")
    else:
        measured_build = None
        if history is not None:
            try:
                measured_build = history.build_seconds_for(registry_host)
            except Exception:
                measured_build = None
        if measured_build:
            build_s, n = measured_build
            reasoning.append(f"build {build_s:.0f} s (median of {n} recorded build(s))")
        else:
            build_s = DEFAULT_BUILD_SECONDS
            reasoning.append(f"build {build_s:.0f} s (default; no build recorded)")

    # -- formula ---------------------------------------------------------------------------
    raw = formula_seconds(pull_s, build_s, push_s)
    clamped = None
    if estimate is None:
        auto = cap_i
        reasoning.append(f"no estimate: using the cap {cap_i} s so a slow push is not cut short")
    else:
        auto = math.ceil(raw)
        formula = (
            f"timeout = {MARGIN} x ({pull_s:.0f} + {build_s:.0f} + {push_s:.0f}) "
            f"+ {OVERHEAD_SECONDS:.0f} = {auto} s"
        )
        if auto < floor_i:
            clamped = "floor"
            formula += f" -> raised to the floor {floor_i} s"
            auto = floor_i
        elif auto > cap_i:
            clamped = "cap"
            formula += f" -> capped at {cap_i} s"
            auto = cap_i
            warnings.append(
                f"the push alone needs about {push_s:.0f} s at {fmt_rate(bps)}, more than the "
                f"cap allows: push fewer bytes (smaller base, layered JARs, --reproducible) "
                "or raise the cap"
            )
        reasoning.append(formula)

    if explicit is not None:
        seconds, source = int(explicit), "explicit"
        reasoning.append(f"--timeout {seconds} s given: used as is (auto would be {auto} s)")
        if estimate is not None and seconds < pull_s + build_s + push_s:
            warnings.append(
                f"--timeout {seconds} s is shorter than the expected "
                f"{pull_s + build_s + push_s:.0f} s (pull + build + push): "
                f"the push will probably be killed; auto would pick {auto} s"
            )
    else:
        seconds, source = auto, bw_source

    return TimeoutPlan(
        seconds=seconds,
        source=source,
        bandwidth_bps=bps,
        expected_push_s=push_s,
        expected_pull_s=pull_s,
        expected_build_s=build_s,
        reasoning=reasoning,
        floor=floor_i,
        cap=cap_i,
        auto_seconds=auto,
        bandwidth_source=bw_source,
        samples=samples,
        push_bytes=push_bytes,
        pull_bytes=pull_bytes,
        clamped=clamped,
        warnings=warnings,
    )
