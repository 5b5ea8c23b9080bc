"""The Jenkins shared library against the real CLI: every command line it builds must run.

``shared-library/test/tools/real_cli.groovy`` runs the library's steps (``ciReport.callback``,
``imagePush`` direct and split, ``install``) in the pipeline harness with a real ``sh``: the exact
scripts the library builds run in a temporary workspace against this checkout's ``ci-report``, with
the secrets bound as the library binds them. Split mode runs the generated script under busybox
``sh`` with the fake Kaniko executor, as in the Kaniko debug image. Needs groovy 2.4 + Java 17
(``CI_REPORT_SKIP_GROOVY=1`` skips) and busybox; ``install`` also needs a package index to build
its wheelhouse (skipped when none is reachable).
"""

from __future__ import annotations

import base64
import glob
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any, Iterator

import pytest
from install_wheelhouse import build_wheelhouse

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
LIB = ROOT / "shared-library"
FAKE = ROOT / "tests" / "data" / "kaniko" / "fake-executor"
DEST = "127.0.0.1:5999/team/app:1.0"
APPLETS = ("sh", "timeout", "tee", "date", "dirname", "rm", "cat")
# The harness's credential store (shared-library/test/unit/StepTestBase.groovy SECRETS).
SECRETS = {
    "ci-report-api-key": "s3cr3t-api-key-value",
    "ci-report-jwt": "s3cr3t-jwt-secret-value",
    "ci-report-signature": "whsec_c2VjcmV0LXNpZ25pbmcta2V5",
}
REPORT = (
    '<testsuite name="s" tests="2" failures="1" time="1.5">'
    '<testcase classname="c" name="t1" time="0.5"/>'
    '<testcase classname="c" name="t2" time="1"><failure message="boom">x</failure></testcase>'
    "</testsuite>"
)


def _clean_env() -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CI_REPORT_", "JENKINS_", "FAKE_KANIKO_", "PIP_", "DOCKER_"))
        and k not in ("RUN_ID", "API_CALLBACK_URL", "WORKSPACE")
    }
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["NO_PROXY"] = "*"
    return env


def _java17() -> str:
    for home in [os.environ.get("JAVA_HOME", ""), *sorted(glob.glob("/usr/lib/jvm/java-17-*"))]:
        if home and os.access(os.path.join(home, "bin", "java"), os.X_OK):
            return home
    pytest.fail("no Java 17 JDK found (set JAVA_HOME)")


@pytest.fixture(scope="module")
def groovy() -> str:
    if os.environ.get("CI_REPORT_SKIP_GROOVY") == "1":
        pytest.skip("CI_REPORT_SKIP_GROOVY=1")
    exe = shutil.which("groovy")
    if exe is None:
        pytest.fail(
            "groovy is not on PATH (apt-get install -y groovy), or set CI_REPORT_SKIP_GROOVY=1"
        )
    return exe


@pytest.fixture(scope="module")
def busybox(tmp_path_factory: pytest.TempPathFactory) -> Path:
    bb = shutil.which("busybox")
    if bb is None:
        pytest.fail("busybox is missing: apt-get install -y busybox")
    out = tmp_path_factory.mktemp("busybox")
    for applet in APPLETS:
        (out / applet).symlink_to(bb)
    return out


def run_steps(groovy: str, tmp: Path, scenarios: list[dict[str, Any]]) -> dict[str, Any]:
    src, out = tmp / "scenarios.json", tmp / "results.json"
    src.write_text(json.dumps(scenarios))
    env = _clean_env()
    env["JAVA_HOME"] = _java17()
    proc = subprocess.run(
        [groovy, "-cp", "test:src:test/stubs", "test/tools/real_cli.groovy", str(src), str(out)],
        cwd=str(LIB),
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return {r["name"]: r for r in json.loads(out.read_text())}


def workspace(tmp: Path, name: str) -> Path:
    ws = tmp / name
    (ws / "build" / "test-results").mkdir(parents=True)
    (ws / "build" / "test-results" / "TEST-a.xml").write_text(REPORT)
    (ws / "target").mkdir()
    (ws / "target" / "app.jar").write_bytes(os.urandom(200_000))
    (ws / "Dockerfile").write_text("FROM scratch\nCOPY target/app.jar /app.jar\n")
    (ws / "dc").mkdir()
    auth = base64.b64encode(b"ci:secret-pass").decode()
    (ws / "dc" / "config.json").write_text(
        json.dumps({"auths": {"127.0.0.1:5999": {"auth": auth}}})
    )
    return ws


def scenario(
    tmp: Path, name: str, step: str, options: dict[str, Any], **extra: Any
) -> dict[str, Any]:
    ws = workspace(tmp, name)
    env = {
        "HOME": str(ws / "home"),
        "CI_REPORT_OUTBOX": str(ws / "outbox"),
        "CI_REPORT_HISTORY": str(ws / "history.json"),
        "DOCKER_CONFIG": str(ws / "dc"),
    }
    env.update(extra.pop("env", {}))
    return {
        "name": name,
        "step": step,
        "options": options,
        "workspace": str(ws),
        "env": env,
        "credentials": SECRETS,
        "pipelineEnv": {"RUN_ID": "64"},
        "currentBuild": {"currentResult": "UNSTABLE", "duration": 120000, "startTimeInMillis": 0},
        **extra,
    }


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[str]:
    env = _clean_env()
    env.update(
        JENKINS_API_KEY=SECRETS["ci-report-api-key"],
        JENKINS_JWT_SECRET=SECRETS["ci-report-jwt"],
        JENKINS_SIGNATURE_SECRET=SECRETS["ci-report-signature"],
    )
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ci_report",
            "receiver",
            "--port",
            "0",
            "--db",
            str(tmp_path / "r.db"),
        ],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    line = proc.stderr.readline()
    match = re.search(r"listening on (http://127\.0\.0\.1:\d+)/api/jenkins/callback", line)
    assert match, line
    try:
        yield match.group(1)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=10)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_callback_commands_run_against_the_real_cli(
    groovy: str, tmp_path: Path, receiver: str
) -> None:
    url = receiver + "/api/jenkins/callback"
    scenarios = [
        scenario(
            tmp_path,
            "delivered",
            "callback",
            {
                "url": url,
                "junit": ["build/test-results/**/*.xml", "reports/*.xml"],
                "apiKeyCredentialsId": "ci-report-api-key",
                "jwtCredentialsId": "ci-report-jwt",
                "signatureCredentialsId": "ci-report-signature",
                "failOnError": True,
            },
        ),
        scenario(
            tmp_path,
            "dry-run",
            "callback",
            {
                "apiKeyCredentialsId": None,
                "dryRun": True,
                "dryRunOutput": "out/payload.json",
                "runId": "run-7",
                "status": "failure",
                "statusStyle": "extended",
                "caseMap": "case map.json",
                "extraArgs": ["--max-results", "500"],
                "junit": "build/test-results/*.xml",
            },
        ),
        scenario(
            tmp_path,
            "queued",
            "callback",
            {
                "url": f"http://127.0.0.1:{closed_port()}/api/jenkins/callback",
                "unstableOnError": True,
                "extraArgs": ["--max-attempts", "1", "--deadline", "2"],
            },
            currentBuild={"currentResult": "SUCCESS", "duration": 1000, "startTimeInMillis": 0},
        ),
        scenario(tmp_path, "no-url", "callback", {}),
    ]
    (tmp_path / "dry-run" / "case map.json").write_text('{"t1": 11}')
    r = run_steps(groovy, tmp_path, scenarios)

    ok = r["delivered"]
    assert (ok["returned"], ok["error"], ok["result"]) == (0, None, None), ok
    assert ok["sh"][0]["rc"] == 0 and ok["sh"][0]["script"].startswith(
        "ci-report callback --strict "
    )
    assert ok["archived"] == [{"artifacts": "ci-report/callback.json", "exists": True}]
    with urllib.request.urlopen(receiver + "/api/executions/64", timeout=10) as resp:
        row = json.load(resp)
    assert (row["status"], row["passed"], row["failed"]) == ("failed", 1, 1)
    assert sorted(row["modes"].split(",")) == ["api-key", "hmac", "jwt"], row
    for secret in SECRETS.values():
        assert secret not in json.dumps(ok)

    dry = r["dry-run"]
    assert dry["returned"] == 0 and dry["error"] is None, dry
    payload = json.loads((tmp_path / "dry-run" / "out" / "payload.json").read_text())
    assert (payload["runId"], payload["status"], payload["build"]["result"]) == (
        "run-7",
        "failed",
        "FAILURE",
    )
    assert {c["caseName"]: c["caseId"] for c in payload["results"]} == {"t1": 11, "t2": None}
    assert payload["durationMs"] == 120000
    assert dry["archived"] == [{"artifacts": "out/payload.json", "exists": True}]

    queued = r["queued"]
    assert (queued["returned"], queued["result"]) == (75, "UNSTABLE"), queued
    assert queued["archived"][0]["exists"]

    no_url = r["no-url"]
    assert (no_url["returned"], no_url["result"]) == (78, None), no_url
    assert "no callback URL configured" in no_url["sh"][0]["stderr"]
    assert no_url["log"] and no_url["log"][0].startswith(
        "[WARNING] ci-report callback: configuration error"
    )


def test_image_push_direct_and_split_run_against_the_real_cli(
    groovy: str, busybox: Path, tmp_path: Path
) -> None:
    common = {"destinations": [DEST], "executor": str(FAKE), "timeout": 60}
    scenarios = [
        scenario(
            tmp_path,
            "direct-ok",
            "imagePush",
            dict(common, mode="direct", extraArgs=["--cache=true"]),
            env={"FAKE_KANIKO_SCENARIO": "success"},
        ),
        scenario(
            tmp_path,
            "direct-auth",
            "imagePush",
            dict(common, mode="direct"),
            env={"FAKE_KANIKO_SCENARIO": "registry-auth"},
        ),
        scenario(
            tmp_path,
            "split-ok",
            "imagePush",
            dict(common, extraArgs=["--cache=true"], timeout="auto", bandwidth=2.5),
            env={"FAKE_KANIKO_SCENARIO": "success"},
            busybox=str(busybox),
        ),
        scenario(
            tmp_path,
            "split-auth",
            "imagePush",
            common,
            env={"FAKE_KANIKO_SCENARIO": "registry-auth"},
            busybox=str(busybox),
        ),
        scenario(
            tmp_path,
            "split-preflight",
            "imagePush",
            common,
            env={"DOCKER_CONFIG": str(tmp_path / "no-docker-config")},
            busybox=str(busybox),
        ),
        scenario(
            tmp_path,
            "split-skipped",
            "imagePush",
            dict(common, dockerfile="no/Dockerfile", skipIfNoDockerfile=True),
            busybox=str(busybox),
        ),
    ]
    r = run_steps(groovy, tmp_path, scenarios)

    def report(name: str) -> dict[str, Any]:
        return json.loads((tmp_path / name / "ci-report" / "image-push.json").read_text())

    ok = r["direct-ok"]
    assert (ok["returned"], ok["error"]) == (0, None), ok
    assert [s["container"] for s in ok["sh"]] == [None]
    assert report("direct-ok")["outcome"] == "pushed"
    assert ok["archived"] == [{"artifacts": "ci-report/image-push.json", "exists": True}]

    bad = r["direct-auth"]
    assert bad["sh"][0]["rc"] == 1, bad
    assert bad["error"] == report("direct-auth")["diagnosis"]["summary"]
    assert bad["result"] == "FAILURE"

    split = r["split-ok"]
    assert (split["returned"], split["error"]) == (0, None), split
    assert [(s["container"], s["rc"]) for s in split["sh"]] == [
        ("python", 0),
        ("kaniko", 0),
        ("python", 0),
        ("python", 0),
    ]
    # image-watch beside the kaniko step (it stops once the rc file is there), then diagnose with
    # the step's own exit status
    assert split["sh"][2]["script"].startswith("ci-report image-watch --plan "), split["sh"]
    assert split["sh"][3]["script"].endswith("--step-exit 0"), split["sh"]
    assert split["sh"][1]["script"] == "/busybox/sh .ci-report/kaniko-run.sh"
    plan = json.loads((tmp_path / "split-ok" / ".ci-report" / "image-plan.json").read_text())
    assert plan["executorArgs"][-1] == "--cache=true"
    limit = plan["timeoutSeconds"] + plan["killGraceSeconds"] + 120
    assert any(f"Jenkins timeout {limit} s" in line for line in split["log"]), split["log"]
    assert report("split-ok")["outcome"] == "pushed"
    assert split["archived"] == [{"artifacts": "ci-report/image-push.json", "exists": True}]

    auth = r["split-auth"]
    assert [s["rc"] for s in auth["sh"]] == [0, 1, 0, 1], auth
    rep = report("split-auth")
    assert rep["diagnosis"]["code"] == "registry-auth"
    assert auth["error"] == rep["diagnosis"]["summary"]

    pre = r["split-preflight"]
    assert [s["rc"] for s in pre["sh"]] == [1], pre
    rep = report("split-preflight")
    assert (rep["phase"], rep["diagnosis"]["code"]) == ("preflight", "registry-auth")
    assert pre["error"] == rep["diagnosis"]["summary"]
    assert pre["archived"] == [{"artifacts": "ci-report/image-push.json", "exists": True}]

    skipped = r["split-skipped"]
    assert (skipped["returned"], skipped["error"], len(skipped["sh"])) == (0, None, 1), skipped
    assert report("split-skipped")["outcome"] == "skipped"


@pytest.fixture(scope="module")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The files the shipped hash-pinned requirements name, plus this checkout's ci-report wheel."""
    try:
        return build_wheelhouse(tmp_path_factory.mktemp("wheels"))
    except RuntimeError as exc:
        pytest.skip(f"cannot build a wheelhouse (no package index?): {exc}")


def test_install_creates_the_venv_then_reuses_it(
    groovy: str, tmp_path: Path, wheelhouse: Path
) -> None:
    venv = tmp_path / "agent@tmp" / "tools" / "ci-report-0.1.0"
    # the agent's pip settings name an index that does not exist: the wheelhouse is the only source
    agent = {
        "PIP_INDEX_URL": "http://127.0.0.1:9/simple",
        "PIP_EXTRA_INDEX_URL": "http://127.0.0.1:9/x",
    }
    options = {"venvDir": str(venv), "wheelhouse": str(wheelhouse)}
    scenarios = [scenario(tmp_path, f"install-{n}", "install", options, env=agent) for n in (1, 2)]
    r = run_steps(groovy, tmp_path, scenarios)
    first, second = r["install-1"], r["install-2"]
    exe = f"{venv}/bin/ci-report"
    assert (first["returned"], first["error"]) == (exe, None), first
    assert [s["rc"] for s in first["sh"]] == [0, 0]
    assert (venv / "pyvenv.cfg").is_file()
    out = subprocess.run([exe, "--version"], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "ci-report 0.1.0"
    assert second["returned"] == exe and len(second["sh"]) == 1, second
    assert second["log"] == [f"ci-report 0.1.0 is already installed in {venv}"]


# Values a Jenkinsfile might pass: numbers and their text, fractions, zero, negatives, keywords.
CONTRACT_SAMPLES: list[Any] = [
    "auto",
    " AUTO ",
    "10m",
    "1800",
    "1800.5",
    1800,
    1800.5,
    0.5,
    "0.5",
    1,
    "1",
    0,
    "0",
    "0.0",
    -1,
    "-1",
]


def test_library_contract_matches_the_cli_contract(groovy: str, tmp_path: Path) -> None:
    """Contract.groovy's enums and option rules equal what `ci-report config --json` publishes,
    and the library's checks accept exactly the values the CLI accepts (timeout '1800.5' yes,
    bandwidth 0 no)."""
    from ci_report.config import load_settings
    from ci_report.errors import ConfigError

    proc = subprocess.run(
        [sys.executable, "-m", "ci_report", "config", "--json"],
        env=_clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    cli = json.loads(proc.stdout)["contract"]
    values = tmp_path / "values.json"
    options = ["timeout", "bandwidth", "timeoutCap", "deadlineSeconds", "maxAttempts"]
    options += ["connectTimeoutSeconds", "readTimeoutSeconds"]
    values.write_text(json.dumps({o: CONTRACT_SAMPLES for o in options}))
    env = _clean_env()
    env["JAVA_HOME"] = _java17()
    dump = subprocess.run(
        [groovy, "-cp", "test:src:test/stubs", "test/tools/contract_dump.groovy", str(values)],
        cwd=str(LIB),
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert dump.returncode == 0, dump.stdout + dump.stderr
    lib = json.loads(dump.stdout)
    ours = lib["contract"]

    assert ours["buildResults"] == cli["enums"]["buildResults"]
    assert ours["timeoutKeywords"] == cli["enums"]["timeoutKeywords"]
    assert set(ours["limits"]) == set(options)
    for option, rule in ours["limits"].items():
        published = cli["limits"][rule["setting"]]
        for bound in ("minimum", "exclusiveMinimum", "maximum"):
            assert rule.get(bound) == published.get(bound), (option, bound, rule, published)
        assert rule.get("keywords", []) == published.get("keywords", []), option
    callback_codes = {str(code) for code in ours["callbackExitCodes"]}
    assert callback_codes <= set(cli["exitCodes"]["callback"]), callback_codes

    empty_config = tmp_path / "empty.toml"
    empty_config.write_text("")

    def cli_accepts(setting: str, value: Any) -> bool:
        # The library hands the CLI each value as text; the CLI resolves it as it does for any run.
        env = {cli["limits"][setting]["env"][0]: str(value)}
        try:
            load_settings({}, env=env, cwd=tmp_path, config_file=str(empty_config))
        except ConfigError:
            return False
        return True

    disagreements = []
    for option, verdicts in lib["verdicts"].items():
        setting = ours["limits"][option]["setting"]
        for value, library_ok in zip(CONTRACT_SAMPLES, verdicts):
            cli_ok = cli_accepts(setting, value)
            if library_ok != cli_ok:
                disagreements.append(f"{option}={value!r}: library {library_ok}, CLI {cli_ok}")
    assert not disagreements, "\n".join(disagreements)
