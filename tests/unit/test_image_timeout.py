"""The adaptive timeout: formula, bandwidth sources, clamping, reasoning lines."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from ci_report.console import Console
from ci_report.image.estimate import Estimate, EstimatePart
from ci_report.image.history import PushHistory
from ci_report.image.timeout import plan_timeout, show_plan


def _est(total=412_000_000, pull=0, guess=False, reachable=True):
    return Estimate(
        total_bytes=total,
        parts=[EstimatePart("context", total, "x", guess=guess)],
        base_image=None,
        base_bytes_total=0,
        base_bytes_present=0,
        reachable=reachable,
        notes=[],
        pull_bytes=pull,
    )


def test_history_bandwidth_and_formula(tmp_path: Path):
    h = PushHistory(tmp_path / "h.json")
    for _ in range(5):
        h.record("reg.example.com", 62_000_000, 100.0)  # 0.62 MB/s
    plan = plan_timeout(_est(), registry_host="reg.example.com", history=h)
    assert plan.source == "history" and plan.samples == 5
    assert plan.expected_push_s == pytest.approx(412 / 0.62)
    assert plan.reasoning[0] == (
        "push 412 MB at 0.62 MB/s (EWMA of 5 pushes to reg.example.com) = 665 s"
    )
    assert plan.reasoning[1] == "build 120 s (default; no build recorded)"
    expected = 1.5 * (0 + 120 + 412 / 0.62) + 120
    assert plan.seconds == int(expected) + 1
    assert plan.reasoning[2] == f"timeout = 1.5 x (0 + 120 + 665) + 120 = {plan.seconds} s"


def test_bandwidth_flag_then_default(tmp_path: Path):
    h = PushHistory(tmp_path / "h.json")
    plan = plan_timeout(_est(100_000_000), registry_host="r.io", history=h, bandwidth_mbps=2)
    assert plan.source == "bandwidth-flag" and plan.bandwidth_bps == 2e6
    assert plan.expected_push_s == 50
    plan = plan_timeout(_est(100_000_000), registry_host="r.io", history=None)
    assert plan.source == "default" and plan.bandwidth_bps == 500_000
    assert "conservative default" in plan.reasoning[0]


def test_history_wins_over_flag(tmp_path: Path):
    h = PushHistory(tmp_path / "h.json")
    h.record("r.io", 10_000_000, 10.0)
    plan = plan_timeout(_est(), registry_host="r.io", history=h, bandwidth_mbps=50)
    assert plan.source == "history" and plan.bandwidth_bps == 1e6


def test_floor_and_cap():
    small = plan_timeout(_est(1_000_000), registry_host="r.io", history=None, bandwidth_mbps=10)
    assert small.seconds == 600 and small.clamped == "floor"
    assert "raised to the floor 600 s" in small.reasoning[-1]
    big = plan_timeout(_est(10_000_000_000), registry_host="r.io", history=None)
    assert big.seconds == 10800 and big.clamped == "cap"
    assert "capped at 10800 s" in big.reasoning[-1] and big.warnings


def test_pull_and_build_parts(tmp_path: Path):
    plan = plan_timeout(
        _est(200_000_000, pull=230_000_000),
        registry_host="r.io",
        history=None,
        bandwidth_mbps=0.5,
        build_seconds=300,
    )
    assert plan.expected_pull_s == pytest.approx(115)  # 230 MB at max(0.5, 2) MB/s
    assert "pull 230 MB of base images at 2.00 MB/s (assumed) = 115 s" in plan.reasoning
    assert "build 300 s (given)" in plan.reasoning
    assert plan.seconds == int(1.5 * (115 + 300 + 400) + 120) + 1


def test_build_median_from_history(tmp_path: Path):
    h = PushHistory(tmp_path / "h.json")
    for b in (100, 200, 300):
        h.record("r.io", 10_000_000, 10.0, build_seconds=b)
    plan = plan_timeout(_est(), registry_host="r.io", history=h)
    assert plan.expected_build_s == 200
    assert "build 200 s (median of 3 recorded build(s))" in plan.reasoning


def test_explicit_wins_and_warns_when_too_short():
    plan = plan_timeout(_est(), registry_host="r.io", history=None, explicit=600)
    assert plan.seconds == 600 and plan.source == "explicit"
    assert plan.auto_seconds == 1536
    assert "auto would be" in plan.reasoning[-1]
    assert plan.warnings and "probably be killed" in plan.warnings[0]
    ok = plan_timeout(_est(1_000_000), registry_host="r.io", history=None, explicit=900)
    assert ok.seconds == 900 and not ok.warnings


def test_no_estimate_uses_cap():
    plan = plan_timeout(None, registry_host="r.io", history=None, cap=7200)
    assert plan.seconds == 7200 and "no estimate" in plan.reasoning[-1]


def test_guess_is_flagged_in_reasoning():
    plan = plan_timeout(_est(guess=True), registry_host="r.io", history=None)
    assert plan.reasoning[0].endswith("[estimate includes a guess]")


def test_show_plan_goes_through_console():
    stream = io.StringIO()
    plan = plan_timeout(_est(), registry_host="r.io", history=None, explicit=60)
    show_plan(plan, Console(stream=stream, color="never"))
    out = stream.getvalue().splitlines()
    assert out[0] == "[ci-report] timeout: 60 s (explicit)"
    assert out[1].startswith("[ci-report]   push 412 MB at 0.50 MB/s")
    assert plan.to_dict()["seconds"] == 60


def test_ignored_bandwidth_flag_is_explained(tmp_path: Path):
    # history > --bandwidth > default: the console must say why --bandwidth did not count
    h = PushHistory(tmp_path / "h.json")
    h.record("r.io", 10_000_000, 10.0)
    plan = plan_timeout(_est(), registry_host="r.io", history=h, bandwidth_mbps=0.2)
    assert plan.source == "history"
    note = [line for line in plan.reasoning if line.startswith("--bandwidth")]
    assert note == [
        "--bandwidth 0.2 MB/s not used: the measured bandwidth of 1 earlier push to r.io "
        "comes first (history, then --bandwidth, then the default)"
    ]
    plan = plan_timeout(_est(), registry_host="r.io", history=None, bandwidth_mbps=0.2)
    assert not [line for line in plan.reasoning if "not used" in line]


def test_headline_says_what_decided_the_timeout(tmp_path: Path):
    def head(plan) -> str:
        stream = io.StringIO()
        show_plan(plan, Console(stream=stream, color="never"))
        return stream.getvalue().splitlines()[0]

    h = PushHistory(tmp_path / "h.json")
    assert head(plan_timeout(_est(), registry_host="r.io", history=h)) == (
        "[ci-report] timeout: 1536 s (auto, default bandwidth)"
    )
    h.record("r.io", 10_000_000, 10.0)
    assert head(plan_timeout(_est(), registry_host="r.io", history=h)).endswith(
        "(auto, bandwidth from the push history)"
    )
    assert head(plan_timeout(_est(), registry_host="x.io", history=h, bandwidth_mbps=1)).endswith(
        "(auto, bandwidth from --bandwidth)"
    )
    # no estimate: the cap decided, not the history
    assert head(plan_timeout(None, registry_host="r.io", history=h, cap=7200)) == (
        "[ci-report] timeout: 7200 s (auto: the cap, no estimate)"
    )


def test_plan_and_estimate_round_trip_in_one_casing(tmp_path: Path):
    # issue 14: the plan file mixed snake_case (timeoutPlan) and camelCase (estimate)
    from ci_report.image.timeout import TimeoutPlan

    est = _est(pull=30_000_000)
    est.base_layers = [{"digest": "sha256:" + "a" * 64, "size": 5, "present": []}]
    plan = plan_timeout(est, registry_host="reg.example.com", history=None, bandwidth_mbps=2.0)
    wire = plan.to_dict()
    assert "expectedPushSeconds" in wire and "bandwidthBps" in wire
    assert all("_" not in k for k in wire) and all("_" not in k for k in est.to_dict())
    assert TimeoutPlan.from_dict(wire) == plan
    assert Estimate.from_dict(est.to_dict()) == est
    with pytest.raises(ValueError):
        TimeoutPlan.from_dict({"expected_push_s": 1})  # the old casing is not read


def test_the_timeout_formula_lives_in_one_place(monkeypatch):
    # the plan and the "would have fitted" fix use the same formula
    from ci_report.image import timeout
    from ci_report.image.diagnosis import fitting_timeout

    assert fitting_timeout(100, 200) == 600  # 1.5 x 300 + 120 = 570 -> whole minutes
    monkeypatch.setattr(timeout, "MARGIN", 2.0)
    assert fitting_timeout(100, 200) == 720  # 2 x 300 + 120
    plan = plan_timeout(
        _est(total=0), registry_host="r.io", history=None, bandwidth_mbps=1.0, floor=0
    )
    assert plan.auto_seconds == 2 * (0 + 120 + 0) + 120
