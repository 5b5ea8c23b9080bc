"""Reference parsing and the registry client (requests-mock: the wire format is the contract)."""

from __future__ import annotations

import base64
import json

import pytest
import requests

from ci_report.errors import InputError
from ci_report.image.docker_config import Credentials
from ci_report.image.registry import (
    ACCEPT_MANIFESTS,
    DOCKER_LIST,
    DOCKER_MANIFEST,
    DOCKER_SCHEMA1,
    OCI_INDEX,
    OCI_MANIFEST,
    RegistryClient,
    RegistryError,
    parse_challenge,
    parse_reference,
)

D = "sha256:" + "a" * 64
D2 = "sha256:" + "b" * 64


# -- references --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "ref, registry, repo, tag, digest, explicit_reg, host, api",
    [
        (
            "alpine",
            "docker.io",
            "library/alpine",
            "latest",
            None,
            False,
            "registry-1.docker.io",
            "https://registry-1.docker.io",
        ),
        ("alpine:3.20", "docker.io", "library/alpine", "3.20", None, False, None, None),
        ("bitnami/redis:7", "docker.io", "bitnami/redis", "7", None, False, None, None),
        ("docker.io/nginx", "docker.io", "library/nginx", "latest", None, True, None, None),
        ("index.docker.io/foo/bar:1", "docker.io", "foo/bar", "1", None, True, None, None),
        (
            "reg.example.com/team/app:1.2",
            "reg.example.com",
            "team/app",
            "1.2",
            None,
            True,
            "reg.example.com",
            "https://reg.example.com",
        ),
        (
            "reg.example.com:5000/app",
            "reg.example.com:5000",
            "app",
            "latest",
            None,
            True,
            None,
            "https://reg.example.com:5000",
        ),
        (
            "localhost:5000/a/b/c:t",
            "localhost:5000",
            "a/b/c",
            "t",
            None,
            True,
            None,
            "http://localhost:5000",
        ),
        ("localhost/app", "localhost", "app", "latest", None, True, None, "http://localhost"),
        (
            "127.0.0.1:5001/ci/demo:v1",
            "127.0.0.1:5001",
            "ci/demo",
            "v1",
            None,
            True,
            None,
            "http://127.0.0.1:5001",
        ),
        (f"ghcr.io/org/app@{D}", "ghcr.io", "org/app", None, D, True, None, None),
        (f"ghcr.io/org/app:1@{D}", "ghcr.io", "org/app", "1", D, True, None, None),
        ("team/app", "docker.io", "team/app", "latest", None, False, None, None),
        ("my_reg/app", "docker.io", "my_reg/app", "latest", None, False, None, None),
        ("[::1]:5000/app:x", "[::1]:5000", "app", "x", None, True, None, "http://[::1]:5000"),
    ],
)
def test_parse_reference(ref, registry, repo, tag, digest, explicit_reg, host, api):
    r = parse_reference(ref)
    assert (r.registry, r.repository, r.tag, r.digest) == (registry, repo, tag, digest)
    assert r.explicit_registry is explicit_reg
    if host:
        assert r.host == host
    if api:
        assert r.api_base == api


def test_reference_defaults_and_insecure():
    r = parse_reference("reg.example.com/app")
    assert not r.explicit_tag and r.reference == "latest"
    assert str(r) == "reg.example.com/app:latest"
    assert parse_reference(f"x.io/a@{D}").reference == D
    r = parse_reference("reg.internal:5000/app:1", insecure_registries=["reg.internal:5000"])
    assert r.insecure and r.api_base == "http://reg.internal:5000"


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "UPPER/app",
        "reg.io/App:1",
        "a b",
        "https://reg.io/app",
        "app:bad tag",
        "app@sha256:short",
        "reg.io/app:-x",
    ],
)
def test_parse_reference_rejects(bad):
    with pytest.raises(InputError):
        parse_reference(bad)


def test_parse_challenge():
    assert parse_challenge(
        'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
        'scope="repository:library/alpine:pull"'
    ) == (
        "bearer",
        {
            "realm": "https://auth.docker.io/token",
            "service": "registry.docker.io",
            "scope": "repository:library/alpine:pull",
        },
    )
    assert parse_challenge('Basic realm="ci-report-test"') == ("basic", {"realm": "ci-report-test"})


# -- manifests ---------------------------------------------------------------------------

BASE = "https://reg.example.com"


def _image(media_type=OCI_MANIFEST, sizes=(100, 200), config=10):
    return {
        "schemaVersion": 2,
        "mediaType": media_type,
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": D,
            "size": config,
        },
        "layers": [
            {
                "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                "digest": f"sha256:{i:064x}",
                "size": s,
            }
            for i, s in enumerate(sizes, start=1)
        ],
    }


def _reply(m, url, body, media_type, digest=D, status=200):
    m.get(
        url,
        content=json.dumps(body).encode(),
        status_code=status,
        headers={"Content-Type": media_type, "Docker-Content-Digest": digest},
    )


@pytest.mark.parametrize("media_type", [OCI_MANIFEST, DOCKER_MANIFEST])
def test_image_manifest_media_types(requests_mock, media_type):
    _reply(requests_mock, f"{BASE}/v2/team/app/manifests/1", _image(media_type), media_type)
    m = RegistryClient("reg.example.com").manifest("team/app", "1")
    assert m.media_type == media_type and m.digest == D
    assert [d.size for d in m.layers] == [100, 200] and m.total_bytes == 310
    assert requests_mock.last_request.headers["Accept"] == ACCEPT_MANIFESTS
    for t in (OCI_INDEX, OCI_MANIFEST, DOCKER_LIST, DOCKER_MANIFEST):
        assert t in ACCEPT_MANIFESTS


def test_media_type_from_body_when_content_type_is_generic(requests_mock):
    _reply(requests_mock, f"{BASE}/v2/a/manifests/1", _image(DOCKER_MANIFEST), "application/json")
    assert RegistryClient("reg.example.com").manifest("a", "1").media_type == DOCKER_MANIFEST


def test_schema1_has_no_sizes(requests_mock):
    body = {"schemaVersion": 1, "fsLayers": [{"blobSum": D}, {"blobSum": D2}]}
    _reply(requests_mock, f"{BASE}/v2/a/manifests/old", body, DOCKER_SCHEMA1)
    m = RegistryClient("reg.example.com").manifest("a", "old")
    assert not m.sizes_known and [d.digest for d in m.layers] == [D2, D]


def _index(media_type, with_attestation=True):
    entries = [
        {
            "mediaType": OCI_MANIFEST,
            "digest": "sha256:" + "1" * 64,
            "size": 500,
            "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"},
        },
        {
            "mediaType": OCI_MANIFEST,
            "digest": "sha256:" + "2" * 64,
            "size": 500,
            "platform": {"os": "linux", "architecture": "amd64"},
        },
    ]
    if with_attestation:
        entries.insert(
            0,
            {
                "mediaType": OCI_MANIFEST,
                "digest": "sha256:" + "3" * 64,
                "size": 800,
                "platform": {"os": "unknown", "architecture": "unknown"},
                "annotations": {
                    "vnd.docker.reference.type": "attestation-manifest",
                    "vnd.docker.reference.digest": "sha256:" + "2" * 64,
                },
            },
        )
    return {"schemaVersion": 2, "mediaType": media_type, "manifests": entries}


@pytest.mark.parametrize("media_type", [OCI_INDEX, DOCKER_LIST])
def test_index_picks_linux_amd64_and_skips_attestation(requests_mock, media_type):
    _reply(
        requests_mock, f"{BASE}/v2/lib/base/manifests/21", _index(media_type), media_type, digest=D2
    )
    _reply(
        requests_mock,
        f"{BASE}/v2/lib/base/manifests/sha256:{'2' * 64}",
        _image(sizes=(1000, 2000, 3000)),
        OCI_MANIFEST,
        digest="sha256:" + "2" * 64,
    )
    m = RegistryClient("reg.example.com").manifest("lib/base", "21")
    assert m.platform == "linux/amd64" and m.index_digest == D2
    assert m.index_media_type == media_type
    assert m.layers_bytes == 6000 and m.digest == "sha256:" + "2" * 64
    assert len(m.skipped) == 1 and "unknown/unknown" in m.skipped[0]


def test_index_other_platform_and_missing_platform(requests_mock):
    _reply(requests_mock, f"{BASE}/v2/b/manifests/1", _index(OCI_INDEX), OCI_INDEX)
    _reply(
        requests_mock, f"{BASE}/v2/b/manifests/sha256:{'1' * 64}", _image(sizes=(7,)), OCI_MANIFEST
    )
    c = RegistryClient("reg.example.com")
    assert c.manifest("b", "1", platform="linux/arm64/v8").layers_bytes == 7
    assert c.manifest("b", "1", platform="linux/arm64").platform == "linux/arm64/v8"
    with pytest.raises(RegistryError) as err:
        c.manifest("b", "1", platform="linux/s390x")
    assert err.value.kind == "not-found"
    assert "available: linux/amd64, linux/arm64/v8" in err.value.message
    assert "unknown" not in err.value.message


def test_index_of_only_attestations_is_not_found(requests_mock):
    idx = _index(OCI_INDEX)
    idx["manifests"] = idx["manifests"][:1]
    _reply(requests_mock, f"{BASE}/v2/c/manifests/1", idx, OCI_INDEX)
    with pytest.raises(RegistryError, match="no linux/amd64"):
        RegistryClient("reg.example.com").manifest("c", "1")


# -- auth --------------------------------------------------------------------------------


def test_bearer_flow_with_basic_credentials(requests_mock):
    realm = "https://auth.example.com/token"
    requests_mock.get(
        f"{BASE}/v2/team/app/manifests/1",
        [
            {
                "status_code": 401,
                "headers": {
                    "WWW-Authenticate": (
                        f'Bearer realm="{realm}",service="reg",scope="repository:team/app:pull"'
                    )
                },
            },
            {"content": json.dumps(_image()).encode(), "headers": {"Content-Type": OCI_MANIFEST}},
        ],
    )
    requests_mock.get(realm, json={"access_token": "tok-123", "expires_in": 300})
    creds = Credentials(username="ci", password="pw")
    m = RegistryClient("reg.example.com", credentials=creds).manifest("team/app", "1")
    assert m.layers_bytes == 300
    token_req = requests_mock.request_history[1]
    assert token_req.qs == {
        "service": ["reg"],
        "scope": ["repository:team/app:pull"],
        "account": ["ci"],
    }
    assert token_req.headers["Authorization"] == "Basic " + base64.b64encode(b"ci:pw").decode()
    assert requests_mock.last_request.headers["Authorization"] == "Bearer tok-123"


def test_bearer_token_reused_for_same_scope(requests_mock):
    realm = "https://auth.example.com/token"
    challenge = {
        "WWW-Authenticate": f'Bearer realm="{realm}",service="reg",scope="repository:a:pull"'
    }

    def blob(request, context):
        if request.headers.get("Authorization") != "Bearer t":
            context.status_code = 401
            context.headers.update(challenge)
        return b""

    requests_mock.head(f"{BASE}/v2/a/blobs/{D}", content=blob)
    requests_mock.head(f"{BASE}/v2/a/blobs/{D2}", status_code=404)
    requests_mock.get(realm, json={"token": "t"})
    c = RegistryClient("reg.example.com")
    assert c.blob_exists("a", D) is True
    assert c.blob_exists("a", D) is True
    assert sum(1 for r in requests_mock.request_history if r.url.startswith(realm)) == 1
    assert c.blob_exists("a", D2) is False


def test_anonymous_token_then_insufficient_scope_is_auth_error(requests_mock):
    realm = "https://auth.example.com/token"
    requests_mock.get(
        f"{BASE}/v2/private/app/manifests/1",
        status_code=401,
        headers={
            "WWW-Authenticate": f'Bearer realm="{realm}",service="reg",'
            'scope="repository:private/app:pull",error="insufficient_scope"'
        },
        json={"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]},
    )
    requests_mock.get(realm, json={"token": "anon"})
    with pytest.raises(RegistryError) as err:
        RegistryClient("reg.example.com").manifest("private/app", "1")
    assert err.value.kind == "auth" and "UNAUTHORIZED" in err.value.message
    assert "Authorization" not in requests_mock.request_history[1].headers


def test_token_server_refuses_wrong_password(requests_mock):
    realm = "https://auth.example.com/token"
    requests_mock.get(
        f"{BASE}/v2/a/manifests/1",
        status_code=401,
        headers={"WWW-Authenticate": f'Bearer realm="{realm}",service="reg"'},
    )
    requests_mock.get(realm, status_code=401, json={"details": "invalid username/password"})
    creds = Credentials(username="ci", password="wrong-secret")
    with pytest.raises(RegistryError) as err:
        RegistryClient("reg.example.com", credentials=creds).manifest("a", "1")
    assert err.value.kind == "auth"
    assert "'ci'" in err.value.message and "wrong-secret" not in str(vars(err.value))
    assert err.value.cause == "invalid username/password"


def test_identity_token_uses_oauth_refresh_grant(requests_mock):
    realm = "https://auth.example.com/token"
    requests_mock.get(
        f"{BASE}/v2/a/manifests/1",
        [
            {
                "status_code": 401,
                "headers": {"WWW-Authenticate": f'Bearer realm="{realm}",service="r"'},
            },
            {"content": json.dumps(_image()).encode(), "headers": {"Content-Type": OCI_MANIFEST}},
        ],
    )
    requests_mock.post(realm, json={"access_token": "x"})
    RegistryClient("reg.example.com", credentials=Credentials(identity_token="rt")).manifest(
        "a", "1"
    )
    body = requests_mock.request_history[1].text
    assert "grant_type=refresh_token" in body and "refresh_token=rt" in body


def test_basic_auth_challenge(requests_mock):
    url = f"{BASE}/v2/a/manifests/1"
    expected = "Basic " + base64.b64encode(b"u:p").decode()

    def handler(request, context):
        if request.headers.get("Authorization") != expected:
            context.status_code = 401
            context.headers["WWW-Authenticate"] = 'Basic realm="test"'
            return b'{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}'
        context.headers["Content-Type"] = OCI_MANIFEST
        return json.dumps(_image()).encode()

    requests_mock.get(url, content=handler)
    ok = RegistryClient("reg.example.com", credentials=Credentials(username="u", password="p"))
    assert ok.manifest("a", "1").layers_bytes == 300
    with pytest.raises(RegistryError) as err:
        RegistryClient("reg.example.com").manifest("a", "1")
    assert err.value.kind == "auth" and "without credentials" in err.value.message
    with pytest.raises(RegistryError) as err:
        RegistryClient(
            "reg.example.com", credentials=Credentials(username="u", password="x")
        ).manifest("a", "1")
    assert "with the given credentials" in err.value.message


def test_ping(requests_mock):
    requests_mock.get(
        f"{BASE}/v2/",
        status_code=401,
        headers={"WWW-Authenticate": 'Bearer realm="https://a/token",service="s"'},
    )
    assert RegistryClient("reg.example.com").ping() == {
        "status": 401,
        "auth": "bearer",
        "realm": "https://a/token",
        "service": "s",
    }
    requests_mock.get("http://127.0.0.1:5000/v2/", json={})
    assert RegistryClient("127.0.0.1:5000").ping() == {"status": 200, "auth": "none"}


# -- errors ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "status, body, headers, kind, text",
    [
        (
            404,
            {"errors": [{"code": "MANIFEST_UNKNOWN", "message": "manifest unknown"}]},
            {},
            "not-found",
            "[MANIFEST_UNKNOWN] manifest unknown",
        ),
        (
            403,
            {
                "errors": [
                    {"code": "DENIED", "message": "requested access to the resource is denied"}
                ]
            },
            {},
            "denied",
            "DENIED",
        ),
        (
            429,
            {"errors": [{"code": "TOOMANYREQUESTS", "message": "pull rate limit"}]},
            {"Retry-After": "60"},
            "rate-limited",
            "Retry-After 60",
        ),
        (500, None, {}, "unknown", "HTTP 500"),
    ],
)
def test_http_errors(requests_mock, status, body, headers, kind, text):
    requests_mock.get(
        f"{BASE}/v2/a/manifests/1",
        status_code=status,
        headers=headers,
        json=body if body is not None else None,
        text=None if body else "oops",
    )
    with pytest.raises(RegistryError) as err:
        RegistryClient("reg.example.com").manifest("a", "1")
    assert err.value.kind == kind and text in err.value.message
    assert err.value.status == status


def test_network_and_tls_errors(requests_mock):
    requests_mock.get(
        f"{BASE}/v2/a/manifests/1", exc=requests.exceptions.ConnectionError("refused")
    )
    with pytest.raises(RegistryError) as err:
        RegistryClient("reg.example.com").manifest("a", "1")
    assert err.value.kind == "network" and "cannot connect to reg.example.com" in err.value.message
    requests_mock.get(
        f"{BASE}/v2/b/manifests/1",
        exc=requests.exceptions.SSLError("[SSL: WRONG_VERSION_NUMBER] wrong version"),
    )
    with pytest.raises(RegistryError) as err:
        RegistryClient("reg.example.com").manifest("b", "1")
    assert err.value.kind == "tls" and "plain HTTP" in err.value.fix
    requests_mock.get(f"{BASE}/v2/c/manifests/1", exc=requests.exceptions.ReadTimeout("slow"))
    with pytest.raises(RegistryError) as err:
        RegistryClient("reg.example.com").manifest("c", "1")
    assert err.value.kind == "network" and "in time" in err.value.message


def test_head_blob_errors(requests_mock):
    requests_mock.head(f"{BASE}/v2/a/blobs/{D}", status_code=403)
    with pytest.raises(RegistryError) as err:
        RegistryClient("reg.example.com").blob_exists("a", D)
    assert err.value.kind == "denied"


def test_client_host_forms():
    assert RegistryClient("docker.io").base == "https://registry-1.docker.io"
    assert RegistryClient("http://reg.example.com").base == "http://reg.example.com"
    assert RegistryClient("reg.example.com", insecure=True).base == "http://reg.example.com"
    assert RegistryClient("localhost:5000").base == "http://localhost:5000"
