"""image-push against a real registry (Debian docker-registry) with the fake executor.

The estimate is checked against what the registry itself says (skopeo), the push history is
written after a success and read on the next run, and a SIGTERM that arrives while the
estimate talks to a registry stops ci-report before the executor starts.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import registry_fixtures as rf
from registry_fixtures import make_image, noise, registry, skopeo_push  # noqa: F401

pytestmark = pytest.mark.integration

FAKE = Path(__file__).resolve().parents[1] / "data" / "kaniko" / "fake-executor"
APP_BYTES = 3_000_000


def _workspace(tmp: Path, base: str, hosts: list[str]) -> Path:
    (tmp / "ctx").mkdir(parents=True)
    (tmp / "ctx" / "app.jar").write_bytes(os.urandom(APP_BYTES))
    (tmp / "ctx" / "Dockerfile").write_text(f"FROM {base}\nCOPY app.jar /app.jar\n")
    (tmp / "dc").mkdir()
    auth = base64.b64encode(b"ci:secret-pass").decode()
    (tmp / "dc" / "config.json").write_text(
        json.dumps({"auths": {h: {"auth": auth} for h in hosts}})
    )
    return tmp


def _env(ws: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CI_REPORT_", "FAKE_KANIKO"))}
    env.update(
        PATH=str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", ""),
        CI_REPORT_HISTORY=str(ws / "history.json"),
        DOCKER_CONFIG=str(ws / "dc"),
        NO_PROXY="*",
        PYTHONUNBUFFERED="1",
        **extra,
    )
    return env


def _push(ws: Path, dest: str, *args: str, **env: str) -> tuple[int, dict, str]:
    report = ws / "report.json"
    report.unlink(missing_ok=True)
    proc = subprocess.run(
        [sys.executable, "-m", "ci_report", "image-push", "--context", "ctx",
         "--destination", dest, "--executor", str(FAKE), "--report", str(report), *args],
        env=_env(ws, **env), cwd=ws, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    data = json.loads(report.read_text()) if report.exists() else {}
    return proc.returncode, data, proc.stderr


@pytest.fixture(scope="module")
def base(registry, tmp_path_factory):  # noqa: F811
    layout = make_image(
        tmp_path_factory.mktemp("base-oci"),
        [{"os.bin": noise(2_000_000, "os")}, {"jre.bin": noise(1_000_000, "jre")}],
        tag="1",
    )
    skopeo_push(layout.path, "1", f"{registry.host}/base:1")
    return f"{registry.host}/base:1"


def test_estimate_history_and_bandwidth_source(registry, base, tmp_path: Path) -> None:  # noqa: F811
    ws = _workspace(tmp_path, base, [registry.host, "127.0.0.1:9"])
    dest = f"{registry.host}/team/app:1"
    rc, rep, err = _push(
        ws, dest, "--", "--insecure-registry", registry.host,
        FAKE_KANIKO_PUSH_SECONDS="1.0",
    )  # fmt: skip
    assert rc == 0, err
    # the base-layer sizes are the registry's own (read with skopeo, not our client)
    manifest, _ = registry.manifest("base", "1")
    registry_bytes = sum(layer["size"] for layer in manifest["layers"])
    est = rep["estimate"]
    assert est["baseBytesTotal"] == registry_bytes == est["pullBytes"]
    assert est["baseBytesPresent"] == registry_bytes  # same registry: mounted, not uploaded
    assert est["totalBytes"] == int(APP_BYTES * 0.95) + 50_000 and not est["isGuess"]
    assert "timeout: 600 s (auto, default bandwidth)" in err
    # history: the estimate's bytes over the measured Pushing -> Pushed time
    sample = json.loads((ws / "history.json").read_text())["hosts"][registry.host]["samples"][0]
    # the executor slept 1.0 s between the two lines; their arrival through the pipe reader can
    # be a few ms apart from their emission on a loaded machine (seen: 0.988 s)
    assert sample["bytes"] == est["totalBytes"] and sample["seconds"] >= 0.9
    line = next(x for x in err.splitlines() if "push history:" in x)  # "in 1s" or more under load
    assert f"push history: {registry.host} 2.9 MB in " in line and ", bandwidth now" in line

    # next run: the history decides, and the console says why --bandwidth did not
    rc, rep, err = _push(ws, dest, "--bandwidth", "0.2", "--", "--insecure-registry", registry.host)
    assert rc == 0, err
    assert rep["timeoutSource"] == "history"
    assert "(auto, bandwidth from the push history)" in err
    assert "--bandwidth 0.2 MB/s not used: the measured bandwidth of 1 earlier push" in err
    assert err.count("phase: pull") == 1  # Kaniko's pull -> build -> pull flip is not echoed


def test_unreachable_destination_is_not_recorded(registry, base, tmp_path: Path) -> None:  # noqa: F811
    # 127.0.0.1:9 refuses connections: base layers count as missing (an upper bound), so
    # bytes / seconds would overstate the bandwidth and shorten the next timeouts
    ws = _workspace(tmp_path, base, [registry.host, "127.0.0.1:9"])
    rc, rep, err = _push(ws, "127.0.0.1:9/team/app:1", FAKE_KANIKO_PUSH_SECONDS="1.0")
    assert rc == 0, err
    assert rep["estimate"]["reachable"] is False
    assert "push history not updated: the registry could not be asked" in err
    assert (
        not (ws / "history.json").exists()
        or "127.0.0.1:9" not in json.loads((ws / "history.json").read_text())["hosts"]
    )


def test_sigterm_during_the_estimate_stops_before_the_executor(tmp_path: Path) -> None:
    rf.require("docker-registry")  # same opt-out as the other registry tests
    silent = socket.socket()  # a "registry" that accepts and never answers
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    host = f"127.0.0.1:{silent.getsockname()[1]}"
    ws = _workspace(tmp_path, f"{host}/base:1", [host])
    args_file = ws / "args.json"
    report = ws / "report.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "ci_report", "image-push", "--context", "ctx",
         "--destination", f"{host}/team/app:1", "--executor", str(FAKE),
         "--report", str(report)],
        env=_env(ws, FAKE_KANIKO_ARGS_FILE=str(args_file)),
        cwd=ws, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    lines: list[str] = []
    started = threading.Event()

    def read() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append(line)
            if "preflight passed" in line:
                started.set()

    threading.Thread(target=read, daemon=True).start()
    try:
        assert started.wait(30), "".join(lines)
        # observed, not slept on: ci-report has connected for the manifest request, which
        # would wait 20 s for an answer that never comes
        silent.settimeout(30)
        conn, _ = silent.accept()
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(10)
        took = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
        with contextlib.suppress(NameError):
            conn.close()
        silent.close()
    text = "".join(lines)
    assert rc == 143, text
    assert took < 5, took
    assert not args_file.exists(), "the executor ran after the SIGTERM"
    rep = json.loads(report.read_text())
    assert (rep["outcome"], rep["exitCode"], rep["phase"]) == ("terminated", 143, "preflight")
    assert rep["diagnosis"]["code"] == "terminated" and rep["signals"] == ["SIGTERM"]
