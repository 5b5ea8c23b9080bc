"""estimate_push and RegistryClient against real docker-registry 2.8 processes on 127.0.0.1.

Base images live on an open registry; destinations on registries with htpasswd or token auth,
so the base layers are really HEAD-checked in another registry (no cross-repo mount).
Sizes are compared with the registry's own manifests, read independently with skopeo.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import registry_fixtures as rf
from registry_fixtures import PASSWORD, USER, free_port, make_image, make_index, noise, skopeo_push

from ci_report.image.docker_config import load_docker_config
from ci_report.image.estimate import estimate_push, fmt_bytes
from ci_report.image.registry import (
    DOCKER_MANIFEST,
    OCI_INDEX,
    OCI_MANIFEST,
    RegistryClient,
    RegistryError,
)

pytestmark = pytest.mark.integration
# the shared fixtures (module-scoped registries)
registry, htpasswd_registry, token_registry = rf.registry, rf.htpasswd_registry, rf.token_registry

BASE_LAYERS = [
    {"usr/lib/jvm/lib.so": noise(600_000, "jre")},
    {"etc/os-release": b"ID=test\n", "bin/sh": noise(150_000, "os")},
]


@pytest.fixture(scope="module")
def bases(registry, tmp_path_factory):
    """On the open registry: base/jre:21 (OCI), base/multi:1 (index with an attestation),
    base/docker:1 (Docker schema 2)."""
    tmp = tmp_path_factory.mktemp("layouts")
    single = make_image(tmp / "single", BASE_LAYERS, tag="21")
    skopeo_push(single.path, "21", f"{registry.host}/base/jre:21")
    multi = make_index(tmp / "multi", [{"app/data": noise(300_000, "multi")}], tag="1")
    skopeo_push(multi.path, "1", f"{registry.host}/base/multi:1", all_platforms=True)
    docker = make_image(tmp / "docker", [{"x": noise(50_000, "docker")}], tag="1")
    skopeo_push(docker.path, "1", f"{registry.host}/base/docker:1", extra=("--format", "v2s2"))
    return {"single": single, "multi": multi, "docker": docker, "dir": tmp}


def _project(tmp: Path, base: str, app_bytes: int = 200_000) -> Path:
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "app.bin").write_bytes(noise(app_bytes, "app"))
    (tmp / "Dockerfile").write_text(f"FROM {base}\nCOPY app.bin /app/app.bin\n")
    return tmp


def _registry_layer_sizes(reg, repo: str, ref: str) -> list[int]:
    data, _ = reg.manifest(repo, ref)
    return [layer["size"] for layer in data["layers"]]


def test_estimate_matches_registry_manifest_nothing_present(
    registry, token_registry, bases, tmp_path
):
    ctx = _project(tmp_path / "ctx", f"{registry.host}/base/jre:21")
    cfg = load_docker_config(token_registry.authfile(tmp_path / "docker"))
    est = estimate_push(
        dockerfile=ctx / "Dockerfile",
        context=ctx,
        destinations=[f"{token_registry.host}/team/app:1"],
        docker_config=cfg,
    )
    sizes = _registry_layer_sizes(registry, "base/jre", "21")
    assert est.reachable, est.notes
    assert est.base_bytes_total == sum(sizes) and est.pull_bytes == sum(sizes)
    assert [layer["size"] for layer in est.base_layers] == sizes
    assert est.base_bytes_present == 0 and est.part("base-layers") == sum(sizes)
    assert est.part("context") == int(200_000 * 0.45)
    assert est.total_bytes == sum(sizes) + int(200_000 * 0.45) + 50_000
    # the token server was asked with the config.json credentials
    assert any(r["user"] == USER for r in token_registry.token_server.requests)


def test_destination_holding_base_layers_counts_them_present(
    registry, token_registry, bases, tmp_path
):
    authfile = token_registry.authfile(tmp_path / "docker")
    # an earlier build pushed the base into the destination repository
    skopeo_push(
        bases["single"].path, "21", f"{token_registry.host}/team/svc:old", authfile=authfile
    )
    ctx = _project(tmp_path / "ctx", f"{registry.host}/base/jre:21")
    est = estimate_push(
        dockerfile=ctx / "Dockerfile",
        context=ctx,
        destinations=[f"{token_registry.host}/team/svc:new"],
        docker_config=load_docker_config(authfile),
    )
    sizes = _registry_layer_sizes(registry, "base/jre", "21")
    assert est.reachable, est.notes
    assert est.base_bytes_present == est.base_bytes_total == sum(sizes)
    assert est.part("base-layers") == 0
    assert all(layer["present"] for layer in est.base_layers)
    assert f"{fmt_bytes(sum(sizes))} already in the destination" in est.parts[0].detail


def test_index_with_attestation_resolves_to_amd64(registry, htpasswd_registry, bases, tmp_path):
    ctx = _project(tmp_path / "ctx", f"{registry.host}/base/multi:1")
    est = estimate_push(
        dockerfile=ctx / "Dockerfile",
        context=ctx,
        destinations=[f"{htpasswd_registry.host}/team/multi:1"],
        docker_config=load_docker_config(htpasswd_registry.authfile(tmp_path / "d")),
    )
    index, media_type = registry.manifest("base/multi", "1")
    assert media_type == OCI_INDEX and len(index["manifests"]) == 3
    amd = next(m for m in index["manifests"] if m["platform"]["architecture"] == "amd64")
    amd_sizes = _registry_layer_sizes(registry, "base/multi", amd["digest"])
    assert est.reachable, est.notes
    assert est.base_bytes_total == sum(amd_sizes)
    assert est.base_digest == amd["digest"]
    assert any("skipped 1 attestation entry" in n for n in est.notes)

    client = RegistryClient(registry.host)
    m = client.manifest("base/multi", "1")
    assert m.platform == "linux/amd64" and m.index_media_type == OCI_INDEX
    arm = client.manifest("base/multi", "1", platform="linux/arm64")
    assert arm.platform == "linux/arm64/v8" and arm.digest != m.digest
    with pytest.raises(RegistryError, match="no linux/s390x"):
        client.manifest("base/multi", "1", platform="linux/s390x")


def test_manifest_media_types_and_blob_head(registry, bases):
    client = RegistryClient(registry.host)
    assert client.ping() == {"status": 200, "auth": "none"}
    oci = client.manifest("base/jre", "21")
    assert oci.media_type == OCI_MANIFEST and oci.digest == bases["single"].digests["21"]
    docker = client.manifest("base/docker", "1")
    assert docker.media_type == DOCKER_MANIFEST
    assert [d.size for d in docker.layers] == _registry_layer_sizes(registry, "base/docker", "1")
    layer = oci.layers[0].digest
    assert client.blob_exists("base/jre", layer) is True
    assert client.blob_exists("base/docker", layer) is False
    assert client.blob_exists("no/such-repo", layer) is False
    with pytest.raises(RegistryError) as err:
        client.manifest("base/jre", "nope")
    assert err.value.kind == "not-found" and err.value.code == "MANIFEST_UNKNOWN"


def test_htpasswd_basic_auth(htpasswd_registry, bases, tmp_path):
    authfile = htpasswd_registry.authfile(tmp_path / "d")
    skopeo_push(bases["single"].path, "21", f"{htpasswd_registry.host}/x/y:1", authfile=authfile)
    creds = load_docker_config(authfile).credentials_for(htpasswd_registry.host)
    client = RegistryClient(htpasswd_registry.host, credentials=creds)
    assert client.ping()["auth"] == "basic"
    assert client.manifest("x/y", "1").layers_bytes == sum(
        b.size for b in bases["single"].layers["21"]
    )
    with pytest.raises(RegistryError) as err:
        RegistryClient(htpasswd_registry.host).manifest("x/y", "1")
    assert err.value.kind == "auth"
    bad = load_docker_config(htpasswd_registry.authfile(tmp_path / "bad", USER, "wrong"))
    with pytest.raises(RegistryError) as err:
        RegistryClient(
            htpasswd_registry.host, credentials=bad.credentials_for(htpasswd_registry.host)
        ).manifest("x/y", "1")
    assert err.value.kind == "auth" and "wrong" not in err.value.message


def test_token_auth_anonymous_pull_and_wrong_password(token_registry, bases, tmp_path):
    authfile = token_registry.authfile(tmp_path / "d")
    skopeo_push(bases["single"].path, "21", f"{token_registry.host}/pub/img:1", authfile=authfile)
    anon = RegistryClient(token_registry.host)
    info = anon.ping()
    assert info["auth"] == "bearer" and info["service"] == "ci-report-registry"
    assert anon.manifest("pub/img", "1").layers_bytes > 0  # anonymous token grants pull
    creds = load_docker_config(token_registry.authfile(tmp_path / "bad", USER, "nope"))
    with pytest.raises(RegistryError) as err:
        RegistryClient(
            token_registry.host, credentials=creds.credentials_for(token_registry.host)
        ).manifest("pub/img", "1")
    assert err.value.kind == "auth" and "invalid username/password" in (err.value.cause or "")
    assert PASSWORD not in str(err.value.message)


def test_unauthenticated_destination_makes_estimate_unreachable(
    registry, htpasswd_registry, bases, tmp_path
):
    ctx = _project(tmp_path / "ctx", f"{registry.host}/base/jre:21")
    est = estimate_push(
        dockerfile=ctx / "Dockerfile",
        context=ctx,
        destinations=[f"{htpasswd_registry.host}/team/app:1"],
        docker_config=None,
    )
    assert not est.reachable
    assert est.base_bytes_total == sum(_registry_layer_sizes(registry, "base/jre", "21"))
    assert est.part("base-layers") == est.base_bytes_total  # counted as missing
    assert any("(auth)" in n for n in est.notes)


def test_closed_port_falls_back_without_raising(tmp_path):
    port = free_port()  # nothing listens there
    ctx = _project(tmp_path / "ctx", f"127.0.0.1:{port}/base/eclipse-temurin:21-jre")
    est = estimate_push(
        dockerfile=ctx / "Dockerfile",
        context=ctx,
        destinations=[f"127.0.0.1:{port}/team/app:1"],
        docker_config=None,
    )
    assert not est.reachable and est.is_guess
    assert est.part("base-layers") == 125_000_000  # JRE guess, labelled
    assert any(f"cannot connect to 127.0.0.1:{port}" in n for n in est.notes)
    json.dumps(est.to_dict())
