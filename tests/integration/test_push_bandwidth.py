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


BUILD_S = TAIL_S = 3.0  # the shim's build before the push and its wind-down after it

SHIM = '''#!{python}
"""An executor that really pushes (skopeo through the throttled proxy) between Kaniko's own
"Pushing image to" and "Pushed" lines, so ci-report measures the push as it measures Kaniko's.
A build step of {build_s} s comes before the push and {tail_s} s of wind-down after it, as with
Kaniko: a push timed from the executor's start, or to its exit, is then far off."""
import json, subprocess, sys, time

def log(msg):
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    print(f'time="{{now}}" level=info msg="{{msg}}"', file=sys.stderr, flush=True)

if sys.argv[1:2] == ["version"]:
    print("Kaniko version :  v1.28.3")
    sys.exit(0)
log("COPY app.jar /app.jar")
time.sleep({build_s})
log("Pushing image to {dest}")
rc = subprocess.run(json.loads({cmd!r}), stdout=subprocess.DEVNULL, stderr=sys.stderr).returncode
if rc == 0:
    log("Pushed {repo}@{digest}")
    time.sleep({tail_s})
sys.exit(rc)
'''


def test_ci_report_measures_a_real_push_into_history(registry, tmp_path, monkeypatch):
    """issue 14: the test above measures its own proxy; this one goes through ci-report's path
    (log lines -> LogState.push_seconds -> PushHistory) with real bytes on a throttled uplink."""
    import base64
    import json
    import sys

    from ci_report.cli import main

    app = noise(2_500_000, "measured")
    layout = make_image(tmp_path / "img", [{"app.jar": app}], tag="v1")
    layer_bytes = sum(b.size for b in layout.layers["v1"])
    proxy = rf.ThrottlingProxy(registry.port, RATE)
    try:
        dest = f"{proxy.host}/ci/measured:v1"
        cmd = rf.skopeo_cmd(layout.path, "v1", dest)
        shim = tmp_path / "executor"
        shim.write_text(
            SHIM.format(
                python=sys.executable,
                dest=dest,
                repo=dest.rsplit(":", 1)[0],
                digest=layout.digests["v1"],
                cmd=json.dumps(cmd),
                build_s=BUILD_S,
                tail_s=TAIL_S,
            )
        )
        shim.chmod(0o755)
        (tmp_path / "ctx").mkdir()
        (tmp_path / "ctx" / "app.jar").write_bytes(app)
        (tmp_path / "ctx" / "Dockerfile").write_text("FROM scratch\nCOPY app.jar /app.jar\n")
        (tmp_path / "dc").mkdir()
        auth = base64.b64encode(b"ci:unused").decode()
        (tmp_path / "dc" / "config.json").write_text(
            json.dumps({"auths": {proxy.host: {"auth": auth}}})
        )
        history_file = tmp_path / "history.json"
        for key in ("CI_REPORT_TIMEOUT", "CI_REPORT_BANDWIDTH"):
            monkeypatch.delenv(key, raising=False)
        monkeypatch.setenv("CI_REPORT_HISTORY", str(history_file))
        monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "dc"))
        monkeypatch.setenv("NO_PROXY", "*")
        with pytest.raises(SystemExit) as exc:
            main(
                ["image-push", "--context", str(tmp_path / "ctx"), "--destination", dest,
                 "--executor", str(shim), "--timeout", "120", "--heartbeat", "0"]
            )  # fmt: skip
        assert exc.value.code in (0, None)
    finally:
        proxy.stop()
    measured, samples = PushHistory(history_file).bandwidth_for(proxy.host)
    assert samples == 1
    # the build before the push is recorded as build time, not as push time
    (host,) = json.loads(history_file.read_text())["hosts"].values()
    (sample,) = host["samples"]
    assert BUILD_S - 0.5 <= sample["build_seconds"] <= BUILD_S + 2, sample
    # ci-report divides its estimate (the .jar x 0.95 + config) by the time between the two log
    # lines; the proxy lets RATE bytes/s through, and the real layer is about the .jar's size
    assert layer_bytes / RATE >= 2.0  # the push took seconds, not milliseconds
    print(f"measured {measured / 1e6:.2f} MB/s through a {RATE / 1e6:.2f} MB/s proxy")
    assert 0.5 * RATE <= measured <= 1.15 * RATE, (measured, layer_bytes)
