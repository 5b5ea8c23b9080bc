"""Real bytes through a throttled uplink: measure bandwidth into PushHistory, and hit a real
push timeout under busybox ``timeout`` (exit 143, what the diagnosis names ``push-timeout``)."""

from __future__ import annotations

import pytest
import registry_fixtures as rf
from registry_fixtures import make_image, noise, throttled_push

from ci_report.image.estimate import Estimate, EstimatePart
from ci_report.image.history import PushHistory
from ci_report.image.registry import RegistryClient, RegistryError
from ci_report.image.timeout import plan_timeout

pytestmark = pytest.mark.integration
registry = rf.registry

RATE = 1_000_000  # bytes/s through the proxy


def test_measured_bandwidth_goes_into_history_and_timeout(registry, tmp_path):
    layout = make_image(tmp_path / "img", [{"app.jar": noise(2_500_000, "bw")}], tag="v1")
    layer_bytes = sum(b.size for b in layout.layers["v1"])
    rc, elapsed, log = throttled_push(layout.path, "v1", registry.port, "ci/slow", rate=RATE)
    assert rc == 0, log
    bps = layer_bytes / elapsed
    # the proxy is the bottleneck: the measured rate cannot exceed it (10 % for rounding)
    assert bps <= RATE * 1.1

    history = PushHistory(tmp_path / "history.json")
    assert history.record(registry.host, layer_bytes, elapsed, build_seconds=30) == pytest.approx(
        bps, rel=1e-3
    )
    measured, samples = history.bandwidth_for(registry.host)
    assert samples == 1 and measured == pytest.approx(bps, rel=1e-3)

    # the pushed image is really there, with the bytes we sent
    m = RegistryClient(registry.host).manifest("ci/slow", "v1")
    assert m.layers_bytes == layer_bytes

    est = Estimate(
        total_bytes=412_000_000,
        parts=[EstimatePart("context", 412_000_000, "app")],
        base_image=None,
        base_bytes_total=0,
        base_bytes_present=0,
        reachable=True,
        notes=[],
        pull_bytes=0,
    )
    plan = plan_timeout(est, registry_host=registry.host, history=history)
    assert plan.source == "history" and plan.bandwidth_bps == measured
    assert f"EWMA of 1 push to {registry.host}" in plan.reasoning[0]
    assert plan.expected_build_s == 30


def test_push_killed_by_busybox_timeout_exits_143(registry, tmp_path):
    layout = make_image(tmp_path / "big", [{"big.bin": noise(8_000_000, "big")}], tag="v1")
    rc, elapsed, log = throttled_push(
        layout.path, "v1", registry.port, "ci/timeout", rate=RATE, timeout=2
    )
    # busybox timeout sends SIGTERM and exits 128 + 15 (GNU timeout would exit 124)
    assert rc == 143, log
    assert elapsed < 8_000_000 / RATE  # killed before the upload could finish
    with pytest.raises(RegistryError) as err:
        RegistryClient(registry.host).manifest("ci/timeout", "v1")
    assert err.value.kind == "not-found"  # no tag was written


def test_busybox_timeout_code_depends_on_who_reads_it():
    """The same kill is 143 from a shell (the split-mode script) and -15 from Python's
    subprocess (direct mode): a supervisor must map a negative return code to 128 + signal."""
    import subprocess

    busybox = rf.require("busybox")["busybox"]
    timed = [busybox, "timeout", "-s", "TERM", "1", busybox, "sleep", "5"]
    assert subprocess.run(timed, timeout=10).returncode == -15
    shell = [busybox, "sh", "-c", '"$@"; exit $?', "sh", *timed]
    assert subprocess.run(shell, timeout=10).returncode == 143
