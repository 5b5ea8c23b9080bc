"""Jenkins API client: URLs, crumbs, trigger statuses, cancel semantics (requests-mock)."""

from __future__ import annotations

import pytest

from ci_report.errors import ConfigError
from ci_report.platform.jenkins import (
    JenkinsClient,
    JenkinsHTTPError,
    JenkinsUnavailable,
    job_full_name,
    job_path_url,
    queue_id_from_location,
)

BASE = "https://ci.example/"


@pytest.fixture
def client() -> JenkinsClient:
    return JenkinsClient(BASE, "bot", "tok-123456")


def test_job_paths() -> None:
    assert job_path_url(BASE, "a/b/c") == BASE + "job/a/job/b/job/c/"
    assert job_path_url("https://ci.example", "/a/") == BASE + "job/a/"
    assert job_path_url(BASE, "job/a/job/b") == BASE + "job/a/job/b/"
    assert job_path_url(BASE, "my app/feature%2Ffoo") == BASE + "job/my%20app/job/feature%252Ffoo/"
    assert job_path_url(BASE, "https://other/job/x") == "https://other/job/x/"
    assert job_full_name("job/a/job/b") == "a/b"
    assert job_full_name("https://ci.example/job/a/job/b%20c/") == "a/b c"
    with pytest.raises(ConfigError):
        job_path_url(BASE, "/")


def test_queue_id_from_location() -> None:
    assert queue_id_from_location("http://proxy-view/queue/item/42/") == 42
    assert queue_id_from_location("https://ci.example/jenkins/queue/item/7") == 7
    assert queue_id_from_location("https://ci.example/job/x/") is None
    assert queue_id_from_location(None) is None


def test_no_url_is_config_error() -> None:
    with pytest.raises(ConfigError):
        JenkinsClient("", None, None)


def test_201_and_303(client: JenkinsClient, requests_mock) -> None:
    url = BASE + "job/a/buildWithParameters"
    requests_mock.post(url, status_code=201, headers={"Location": "http://x/queue/item/5/"})
    response = client.trigger("a", [("K", "v")], parameterized=True)
    assert (response.queue_id, response.merged) == (5, False)
    assert requests_mock.last_request.text == "K=v"
    requests_mock.post(url, status_code=303, headers={"Location": "http://x/queue/item/4/"})
    response = client.trigger("a", [("K", "v")], parameterized=True)
    assert (response.queue_id, response.merged) == (4, True)


def test_crumb_only_after_403(client: JenkinsClient, requests_mock) -> None:
    url = BASE + "job/a/build"
    requests_mock.post(
        url,
        [
            {"status_code": 403, "text": "No valid crumb was included in the request"},
            {"status_code": 201, "headers": {"Location": "/queue/item/9/"}},
        ],
    )
    crumb = requests_mock.get(
        BASE + "crumbIssuer/api/json", json={"crumbRequestField": "Jenkins-Crumb", "crumb": "c1"}
    )
    assert client.trigger("a", [], parameterized=False).queue_id == 9
    assert crumb.call_count == 1
    assert requests_mock.request_history[0].headers.get("Jenkins-Crumb") is None
    assert requests_mock.last_request.headers["Jenkins-Crumb"] == "c1"


def test_not_parameterized_falls_back_to_build(client: JenkinsClient, requests_mock) -> None:
    requests_mock.post(
        BASE + "job/a/buildWithParameters", status_code=400, text="a is not parameterized"
    )
    requests_mock.post(
        BASE + "job/a/build", status_code=201, headers={"Location": "/queue/item/3/"}
    )
    response = client.trigger("a", [("X", "1")], parameterized=True)
    assert response.endpoint == "build" and response.queue_id == 3


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (401, JenkinsHTTPError),
        (404, JenkinsHTTPError),
        (409, JenkinsHTTPError),
        (302, JenkinsUnavailable),
        (503, JenkinsUnavailable),
    ],
)
def test_trigger_errors(client: JenkinsClient, requests_mock, status: int, kind: type) -> None:
    requests_mock.post(
        BASE + "job/a/build", status_code=status, text="nope", headers={"Location": BASE + "job/a/"}
    )
    with pytest.raises(kind) as info:
        client.trigger("a", [], parameterized=False)
    assert info.value.status == status
    assert "tok-123456" not in str(info.value.message) + str(info.value.fix)


@pytest.mark.parametrize(
    ("status", "outcome"),
    [(204, "cancelled"), (404, "cancelled"), (500, "left"), (422, "forbidden")],
)
def test_cancel(client: JenkinsClient, requests_mock, status: int, outcome: str) -> None:
    requests_mock.post(BASE + "queue/cancelItem?id=12", status_code=status)
    assert client.cancel_queue_item(12) == outcome


def test_redirects_not_followed(client: JenkinsClient, requests_mock) -> None:
    requests_mock.get(
        BASE + "job/a/api/json", status_code=302, headers={"Location": "https://login.example/"}
    )
    with pytest.raises(JenkinsHTTPError) as info:
        client.job_info("a")
    assert "login.example" in (info.value.fix or "")


def test_job_info_404(client: JenkinsClient, requests_mock) -> None:
    requests_mock.get(BASE + "job/a/job/b/api/json", status_code=404)
    with pytest.raises(JenkinsHTTPError, match="not found"):
        client.job_info("a/b")


def test_find_by_parameter(client: JenkinsClient, requests_mock) -> None:
    requests_mock.get(BASE + "queue/api/json", json={"items": [{"id": 8, "params": "\nT=zz"}]})
    requests_mock.get(
        BASE + "job/a/api/json",
        json={
            "builds": [
                {
                    "number": 3,
                    "queueId": 7,
                    "url": "u",
                    "actions": [{}, {"parameters": [{"name": "T", "value": "abc"}]}],
                }
            ]
        },
    )
    assert client.find_by_parameter("a", "T", "zz") == {"queueId": 8}
    assert client.find_by_parameter("a", "T", "abc") == {"queueId": 7, "number": 3, "url": "u"}
    assert client.find_by_parameter("a", "T", "none") is None


def test_connection_refused_is_not_sent() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = JenkinsClient(f"http://127.0.0.1:{port}/", None, None, connect_timeout=1)
    with pytest.raises(JenkinsUnavailable) as info:
        client.trigger("a", [], parameterized=False)
    assert info.value.maybe_sent is False


# -- what a platform engineer trips over -------------------------------------------------
def test_credentials_in_jenkins_url_move_to_the_session() -> None:
    client = JenkinsClient("https://bot:tok%2Fsecret-9@ci.example/")
    assert client.base_url == BASE and client.user == "bot"
    assert client.session.auth == ("bot", "tok/secret-9")
    assert "secret" not in client.job_url("a") + client.queue_item_url(3)
    explicit = JenkinsClient("https://bot:url-token@ci.example/", "other", "explicit-token")
    assert explicit.session.auth == ("other", "explicit-token")
    assert job_path_url(BASE, "https://u:tok-9876@ci.example/job/x") == BASE + "job/x/"


def test_unusable_jenkins_url_is_config_error() -> None:
    for url in ("http://", "http://127.0.0.1:99999/", "https://:tok@/"):
        with pytest.raises(ConfigError) as info:
            JenkinsClient(url, "u", "t")
        assert "JENKINS_URL" in info.value.message


def test_html_login_page_fails_fast_and_is_named(client: JenkinsClient, requests_mock) -> None:
    page = "<html><head><title>Sign in [Jenkins]</title></head><body>" + "x" * 500 + "</body>"
    requests_mock.get(BASE + "job/a/api/json", text=page, headers={"Content-Type": "text/html"})
    with pytest.raises(JenkinsHTTPError) as info:  # not JenkinsUnavailable: no retry loop
        client.job_info("a")
    err = info.value
    assert not isinstance(err, JenkinsUnavailable) and err.exit_code == 2
    assert "HTML page" in err.message and err.cause == "an HTML page titled 'Sign in [Jenkins]'"
    assert "login page" in (err.fix or "")


def test_json_that_is_not_an_object_is_not_job_not_found(
    client: JenkinsClient, requests_mock
) -> None:
    requests_mock.get(BASE + "job/a/api/json", json=[1, 2])
    with pytest.raises(JenkinsHTTPError) as info:
        client.job_info("a")
    assert "not JSON" in info.value.message and "not found" not in info.value.message


def test_html_200_to_the_trigger_post_says_what_came(client: JenkinsClient, requests_mock) -> None:
    requests_mock.post(
        BASE + "job/a/build", text="<html><title>Log in</title></html>", status_code=200
    )
    with pytest.raises(JenkinsHTTPError) as info:
        client.trigger("a", [], parameterized=False)
    assert "HTTP 200" in info.value.message and "Log in" in (info.value.cause or "")


def test_connection_refused_cause_is_short_and_plain() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = JenkinsClient(f"http://bot:tok-never-shown@127.0.0.1:{port}/")
    with pytest.raises(JenkinsUnavailable) as info:
        client.job_info("a")
    err = info.value
    assert err.message == f"cannot connect to Jenkins at http://127.0.0.1:{port}/"
    assert err.cause == "connection refused (nothing listens at that host and port)"
    assert err.maybe_sent is False
    assert "tok-never-shown" not in f"{err.message} {err.cause} {err!r}"


def test_a_dead_proxy_is_named_as_the_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", "http://puser:proxy-pass-1@127.0.0.1:9")
    monkeypatch.setenv("http_proxy", "http://puser:proxy-pass-1@127.0.0.1:9")
    client = JenkinsClient("http://jenkins.example.invalid/", "u", "t")
    with pytest.raises(JenkinsUnavailable) as info:
        client.job_info("a")
    err = info.value
    assert "through the proxy http://127.0.0.1:9" in err.message
    assert "NO_PROXY" in (err.fix or "") and "proxy-pass-1" not in err.message


def test_answers_are_read_within_a_cap(requests_mock) -> None:
    """A huge answer is refused at the cap, not read whole (issue 9 finding 6)."""
    small = JenkinsClient(BASE, "u", "t", max_response_bytes=1000)
    url = BASE + "job/a/4/artifact/ci-report/callback.json"
    requests_mock.get(url, content=b"x" * 1001)
    with pytest.raises(JenkinsHTTPError, match="larger than 1000 bytes"):
        small.artifact("a", 4, "ci-report/callback.json")
    requests_mock.get(url, content=b"x" * 1000)
    assert small.artifact("a", 4, "ci-report/callback.json") == b"x" * 1000
    assert small.artifact("a", 4, "ci-report/callback.json", max_bytes=10_000) == b"x" * 1000
    requests_mock.get(BASE + "job/a/4/api/json", content=b'{"n": "' + b"y" * 2000 + b'"}')
    with pytest.raises(JenkinsHTTPError, match="larger than 1000 bytes"):
        small.build("a", 4)


@pytest.mark.parametrize(
    "url", ["htp://ci.example/job/a/", "http://[::1/job/a/"], ids=["scheme", "host"]
)
def test_an_unusable_url_from_an_answer_is_a_configuration_error(
    url: str, client: JenkinsClient
) -> None:
    """One vocabulary (ci_report.http.url_errors): a URL Jenkins hands back (a build's or a
    queue item's ``url``) with an unknown scheme or a malformed host is refused as such, never
    reported as 'Jenkins unreachable' and never retried. (The base URL is checked earlier.)"""
    with pytest.raises(ConfigError) as info:
        client.get_json(url)
    assert info.value.message.startswith("unusable Jenkins URL")
    # as JENKINS_URL itself: refused when the client is made (was: a ValueError for the IPv6 one)
    with pytest.raises(ConfigError) as made:
        JenkinsClient(url.replace("/job/a/", "/").replace("://", "://bot:tok-1@"))
    assert made.value.message in ("no usable Jenkins URL", "JENKINS_URL is not a usable URL")
    assert "tok-1" not in f"{made.value.message} {made.value.cause}"
