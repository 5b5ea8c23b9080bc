"""The console: prefixed human lines or JSON lines, always redacted."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import pytest

from ci_report.console import MASK, PREFIX, Console, Redactor

pytestmark = pytest.mark.usefixtures("clean_env")


def make(**kw) -> tuple[Console, io.StringIO]:
    stream = io.StringIO()
    kw.setdefault("color", "never")
    return Console(stream=stream, **kw), stream


def test_human_lines_prefixed() -> None:
    console, out = make()
    console.info("hello")
    console.warn("careful")
    console.error("broken")
    console.outcome("done")
    assert out.getvalue().splitlines() == [
        f"{PREFIX} hello",
        f"{PREFIX} careful",
        f"{PREFIX} broken",
        f"{PREFIX} done",
    ]


def test_no_color_when_never_and_color_when_always() -> None:
    console, out = make(color="always")
    console.error("red")
    assert out.getvalue().startswith("\033[31m[ci-report] red")
    console, out = make(color="auto")  # StringIO is not a TTY
    console.error("plain")
    assert "\033[" not in out.getvalue()


def test_json_lines() -> None:
    console, out = make(log_format="json")
    console.warn("no report found", files=0)
    console.info("second")
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    first = json.loads(lines[0])
    assert first["level"] == "warning"
    assert first["message"] == "no report found"
    assert first["files"] == 0
    assert "ts" in first
    assert json.loads(lines[1])["level"] == "info"
    assert not any(line.startswith(PREFIX) for line in lines)


def test_unknown_log_format_refused() -> None:
    with pytest.raises(ValueError):
        Console(log_format="xml")


def test_debug_only_when_enabled() -> None:
    console, out = make()
    console.debug("hidden")
    assert out.getvalue() == ""
    console, out = make(debug=True)
    console.debug("shown")
    assert out.getvalue() == f"{PREFIX} shown\n"


def test_registered_secret_redacted_in_text_and_json_fields() -> None:
    console, out = make()
    console.add_secret("  s3cr3t-value-123\n")
    console.info("the key is s3cr3t-value-123, really")
    assert "s3cr3t" not in out.getvalue()
    assert f"the key is {MASK}, really" in out.getvalue()
    console, out = make(log_format="json")
    console.add_secret("s3cr3t-value-123")
    console.error("x s3cr3t-value-123", detail={"nested": ["s3cr3t-value-123"]})
    record = json.loads(out.getvalue())
    assert "s3cr3t" not in out.getvalue()
    assert record["detail"] == {"nested": [MASK]}


def test_secrets_from_env_redacted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JENKINS_API_KEY", "env-api-key-value")
    monkeypatch.setenv("JENKINS_SIGNATURE_SECRET", "whsec_AAAABBBBCCCC whsec_DDDDEEEEFFFF")
    console, out = make()
    console.info("api env-api-key-value")
    console.info("second key alone: DDDDEEEEFFFF")  # the base64 part of a whsec_ secret
    text = out.getvalue()
    assert "env-api-key-value" not in text
    assert "DDDDEEEEFFFF" not in text


def test_short_secrets_not_masked() -> None:
    r = Redactor()
    r.add("abc")
    assert r.redact("abc abc") == "abc abc"


@pytest.mark.parametrize(
    ("text", "leak"),
    [
        ("Authorization: Bearer abcdefgh.ijklmnop.qrstuvwx", "abcdefgh"),
        ("sent webhook-signature v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=", "g0hM9SsE"),
        ("secret whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "MfKQ9r8G"),
        ("GET https://user:pa55word@jenkins.example.com/job/x", "pa55word"),
        ("token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJlMTIz", "eyJhbGciOiJIUzI1NiJ9"),
        ("headers {'X-Api-Key': 'plainkey123'}", "plainkey123"),
        ("Authorization: Basic dXNlcjpwYXNzd29yZA==", "dXNlcjpwYXNzd29yZA"),
    ],
)
def test_pattern_redaction_without_registration(text: str, leak: str) -> None:
    redacted = Redactor().redact(text)
    assert leak not in redacted
    assert MASK in redacted


def test_url_redaction_keeps_user_and_host() -> None:
    redacted = Redactor().redact("https://user:pa55word@jenkins.example.com/job/x")
    assert redacted == f"https://user:{MASK}@jenkins.example.com/job/x"


def test_ordinary_text_untouched() -> None:
    text = "3 passed, 1 failed in build team/app#42 at https://jenkins.example.com/job/x/42/"
    assert Redactor().redact(text) == text


def test_block_order() -> None:
    console, out = make()
    console.block(
        "callback REJECTED",
        level="error",
        cause="HTTP 401",
        evidence=["answered 401", "body: bad signature"],
        fixes=["check the secret", "run diagnose"],
        facts=[("outbox", "/tmp/x"), ("result file", "/tmp/y")],
        outcome="rejected",  # a field named like the old positional parameter
    )
    assert out.getvalue().splitlines() == [
        f"{PREFIX} callback REJECTED",
        f"{PREFIX}   outbox: /tmp/x",
        f"{PREFIX}   result file: /tmp/y",
        f"{PREFIX}   cause: HTTP 401",
        f"{PREFIX}   evidence: answered 401",
        f"{PREFIX}   evidence: body: bad signature",
        f"{PREFIX}   fix: check the secret",
        f"{PREFIX}   fix: run diagnose",
    ]


def test_block_json_has_details_and_fields() -> None:
    console, out = make(log_format="json")
    console.block("headline", level="error", cause="c", fixes=["f"], outcome="queued")
    records = [json.loads(line) for line in out.getvalue().splitlines()]
    assert records[0]["message"] == "headline" and records[0]["outcome"] == "queued"
    assert records[0]["level"] == "error"
    assert [(r.get("detail"), r["message"]) for r in records[1:]] == [("cause", "c"), ("fix", "f")]


def test_report_error_uses_message_cause_fix() -> None:
    from ci_report.errors import ConfigError

    console, out = make()
    console.report_error(ConfigError("bad", cause="because", fix="do this", evidence=["e1"]))
    assert out.getvalue().splitlines() == [
        f"{PREFIX} bad",
        f"{PREFIX}   cause: because",
        f"{PREFIX}   evidence: e1",
        f"{PREFIX}   fix: do this",
    ]


def test_closed_stream_does_not_raise() -> None:
    console, out = make()
    out.close()
    console.error("nobody listens")  # must not raise


# -- linear-time redaction (finding 7, console part) ----------------------------------------

_HOSTILE_INPUTS = r"""
import sys, time
from ci_report.console import Redactor

r = Redactor()
r.add("registered-secret-value")
MB = 1024 * 1024
inputs = {
    "letters": "a" * MB,
    "token-run": "eyJ-" * (MB // 4),
    "jwt-dots": "eyJ" + "a" * 10 + "." + "b" * MB,
    "bearer-spaces": ("bearer " + " " * 100) * (MB // 108),
    "api-key-spaces": ("x-api-key" + " " * 100) * (MB // 110),
    "scheme-run": "://a:" + "b" * MB,
    "schemes": "http://u:" * (MB // 9),
    "v1-run": "v1," + "A" * MB + "!",
    "message-8000": ("x" * 8000 + " ") * 128,
}
start = time.process_time()
for name, text in inputs.items():
    r.redact(text)
print(f"{time.process_time() - start:.2f}")
"""


def test_redaction_is_linear_on_hostile_megabyte_inputs() -> None:
    """Regression: the URL pattern was tried at every letter of a long word (quadratic: a
    65 KB webhook-id froze the receiver 17 s, an 8000-letter message cost 0.27 s). Nine 1 MB
    inputs shaped against each pattern must finish in one subprocess within a ceiling that a
    quadratic pattern cannot meet by orders of magnitude (1 MB^2 steps are hours)."""
    proc = subprocess.run(
        [sys.executable, "-c", _HOSTILE_INPUTS],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    cpu_s = float(proc.stdout.strip())
    assert cpu_s < 20, f"redacting 9 MB took {cpu_s} s of CPU"


def test_linear_patterns_still_redact_what_they_did() -> None:
    r = Redactor()
    jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJlLXZhbHVl"
    text = (
        f"Authorization: Bearer abcdefgh12345678 token {jwt} and x-api-key: k-123456 "
        "https://bob:hunter2@host/x v1,QUJDREVGR0hJSktMTU5PUFFSU1RVVldY sig whsec_abcd"
    )
    out = r.redact(text)
    for secret in ("abcdefgh12345678", jwt, "k-123456", "hunter2", "QUJDREVGR0hJSktM", "abcd"):
        assert secret not in out, out
    assert "https://bob:****@host/x" in out
    assert "-" + jwt[:20] not in r.redact("prefix-" + jwt)
