"""estimate_push against a mocked registry: parts, presence, fallbacks, console lines."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import pytest
import requests

from ci_report.console import Console
from ci_report.image.docker_config import load_docker_config
from ci_report.image.estimate import base_guess, estimate_push, fmt_bytes, show_estimate

OCI = "application/vnd.oci.image.manifest.v1+json"
L1, L2 = "sha256:" + "1" * 64, "sha256:" + "2" * 64


def _manifest(layers):
    return {
        "schemaVersion": 2,
        "mediaType": OCI,
        "config": {"mediaType": "x", "digest": "sha256:" + "c" * 64, "size": 1000},
        "layers": [{"mediaType": "x", "digest": d, "size": s} for d, s in layers],
    }


@pytest.fixture
def project(tmp_path: Path):
    (tmp_path / "target").mkdir()
    (tmp_path / "target" / "app.jar").write_bytes(b"j" * 1_000_000)
    (tmp_path / "conf.yml").write_bytes(b"c" * 100_000)
    (tmp_path / "Dockerfile").write_text(
        "FROM base.example.com/java/jre:21\nCOPY target/app.jar /app.jar\nCOPY conf.yml /c\n"
    )
    return tmp_path


def _mock_base(m):
    m.get(
        "https://base.example.com/v2/java/jre/manifests/21",
        content=json.dumps(_manifest([(L1, 30_000_000), (L2, 50_000_000)])).encode(),
        headers={"Content-Type": OCI, "Docker-Content-Digest": "sha256:" + "d" * 64},
    )


def test_estimate_parts_with_present_base_layer(requests_mock, project):
    _mock_base(requests_mock)
    requests_mock.head(f"https://reg.example.com/v2/team/app/blobs/{L1}", status_code=200)
    requests_mock.head(f"https://reg.example.com/v2/team/app/blobs/{L2}", status_code=404)
    est = estimate_push(
        dockerfile=project / "Dockerfile",
        context=project,
        destinations=["reg.example.com/team/app:1", "reg.example.com/team/app:latest"],
        docker_config=None,
    )
    assert est.reachable and est.base_image == "base.example.com/java/jre:21"
    assert est.base_bytes_total == 80_000_000 and est.base_bytes_present == 30_000_000
    assert est.part("base-layers") == 50_000_000
    assert est.part("context") == int(1_000_000 * 0.95 + 100_000 * 0.45)
    assert est.part("config") == 50_000
    assert est.total_bytes == 50_000_000 + 995_000 + 50_000
    assert est.pull_bytes == 80_000_000
    assert [x["present"] for x in est.base_layers] == [["reg.example.com/team/app"], []]
    assert any("2 destinations, 1 distinct" in n for n in est.notes)
    d = est.to_dict()
    assert d["totalBytes"] == est.total_bytes and d["isGuess"] is False
    json.dumps(d)


def test_unreachable_registry_falls_back_to_a_labelled_guess(requests_mock, project):
    requests_mock.get(
        "https://base.example.com/v2/java/jre/manifests/21",
        exc=requests.exceptions.ConnectionError("refused"),
    )
    requests_mock.get(
        "https://reg.example.com/v2/team/app/manifests/1",
        exc=requests.exceptions.ConnectionError("refused"),
    )
    est = estimate_push(
        dockerfile=project / "Dockerfile",
        context=project,
        destinations=["reg.example.com/team/app:1"],
        docker_config=None,
    )
    assert not est.reachable and est.is_guess
    guess, _ = base_guess("base.example.com/java/jre:21")
    assert est.part("base-layers") == guess == 125_000_000
    assert any("cannot connect to base.example.com" in n for n in est.notes)
    assert any("guessed 125 MB" in n for n in est.notes)
    stream = io.StringIO()
    show_estimate(est, Console(stream=stream, color="never"))
    assert "[registry not reachable]" in stream.getvalue().splitlines()[0]


def test_credentials_from_config_and_denied_destination(requests_mock, project, tmp_path):
    cfg = tmp_path / "config.json"
    auth = base64.b64encode(b"ci:pw").decode()
    cfg.write_text(json.dumps({"auths": {"base.example.com": {"auth": auth}}}))
    requests_mock.get(
        "https://base.example.com/v2/java/jre/manifests/21",
        [
            {"status_code": 401, "headers": {"WWW-Authenticate": 'Basic realm="x"'}},
            {
                "content": json.dumps(_manifest([(L1, 10)])).encode(),
                "headers": {"Content-Type": OCI},
            },
        ],
    )
    requests_mock.head(f"https://reg.example.com/v2/team/app/blobs/{L1}", status_code=403)
    est = estimate_push(
        dockerfile=project / "Dockerfile",
        context=project,
        destinations=["reg.example.com/team/app:1"],
        docker_config=load_docker_config(cfg),
    )
    assert requests_mock.request_history[1].headers["Authorization"].startswith("Basic ")
    assert not est.reachable and est.part("base-layers") == 10  # counted as missing
    assert any("denied" in n for n in est.notes)


def test_same_registry_base_is_mounted(requests_mock, project):
    (project / "Dockerfile").write_text("FROM reg.example.com/base/jre:21\nCOPY conf.yml /c\n")
    requests_mock.get(
        "https://reg.example.com/v2/base/jre/manifests/21",
        content=json.dumps(_manifest([(L1, 10_000_000)])).encode(),
        headers={"Content-Type": OCI},
    )
    est = estimate_push(
        dockerfile=project / "Dockerfile",
        context=project,
        destinations=["reg.example.com/team/app:1"],
        docker_config=None,
    )
    assert est.part("base-layers") == 0 and est.base_bytes_present == 10_000_000
    assert any("mounts" in n for n in est.notes)


def test_run_layers_sized_from_previous_image_and_cache(requests_mock, project):
    (project / "Dockerfile").write_text(
        "FROM maven AS build\nRUN mvn package\n"
        "FROM base.example.com/java/jre:21\nCOPY --from=build /t/app.jar /app.jar\n"
        "RUN chmod +x /app.jar\n"
    )
    _mock_base(requests_mock)
    prev = _manifest([(L1, 30_000_000), (L2, 50_000_000), ("sha256:" + "9" * 64, 40_000_000)])
    requests_mock.get(
        "https://reg.example.com/v2/team/app/manifests/1",
        content=json.dumps(prev).encode(),
        headers={"Content-Type": OCI},
    )
    requests_mock.head(f"https://reg.example.com/v2/team/app/blobs/{L1}", status_code=200)
    requests_mock.head(f"https://reg.example.com/v2/team/app/blobs/{L2}", status_code=200)
    requests_mock.get(
        "https://registry-1.docker.io/v2/library/maven/manifests/latest",
        exc=requests.exceptions.ConnectionError("offline"),
    )
    est = estimate_push(
        dockerfile=project / "Dockerfile",
        context=project,
        destinations=["reg.example.com/team/app:1"],
        docker_config=None,
        cache_repo="reg.example.com/team/app/cache",
    )
    assert est.part("base-layers") == 0 and est.base_bytes_present == 80_000_000
    assert est.part("built-layers") == 40_000_000 and est.part("cache") == 40_000_000
    assert est.is_guess
    # maven could not be sized: guessed and added to the pull
    assert est.pull_bytes == 80_000_000 + base_guess("maven")[0]
    assert not est.reachable


def test_scratch_and_fmt():
    assert fmt_bytes(412_000_000) == "412 MB" and fmt_bytes(3_003_266) == "3.0 MB"
    assert fmt_bytes(48_000) == "48 kB" and fmt_bytes(12) == "12 B"
    assert fmt_bytes(1_234_000_000) == "1.23 GB" and fmt_bytes(None) == "?"


def test_one_byte_format_across_the_image_wing():
    # issue 14: the estimate printed "412 MB" and the summary "412.0 MB" in the same run
    from ci_report.image import diagnosis, estimate, report, runner, service, timeout, units

    for module in (diagnosis, estimate, report, runner, service, timeout):
        assert module.fmt_bytes is units.fmt_bytes, module.__name__


def test_scratch_image(tmp_path):
    (tmp_path / "bin").write_bytes(b"x" * 2_000_000)
    (tmp_path / "Dockerfile").write_text("FROM scratch\nCOPY bin /bin\n")
    est = estimate_push(
        dockerfile=tmp_path / "Dockerfile", context=tmp_path, destinations=[], docker_config=None
    )
    assert est.reachable and est.base_image is None and est.pull_bytes == 0
    assert est.total_bytes == 900_000 + 50_000
    assert "FROM scratch: no base layers" in est.notes
