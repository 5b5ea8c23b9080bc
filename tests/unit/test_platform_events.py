"""The Observer hooks: no-ops by default, fanned out by MultiObserver, never raising."""

from __future__ import annotations

from ci_report.platform.events import MultiObserver, Observer, safe


class Recorder(Observer):
    def __init__(self) -> None:
        self.seen: list[tuple[str, tuple]] = []

    def callback_received(self, outcome, modes=(), reason=None) -> None:
        self.seen.append(("callback_received", (outcome, tuple(modes), reason)))

    def trigger_failed(self, code: str) -> None:
        self.seen.append(("trigger_failed", (code,)))


class Broken(Observer):
    def trigger_failed(self, code: str) -> None:
        raise RuntimeError("metrics bug")


def test_base_observer_hooks_do_nothing() -> None:
    o = Observer()
    o.callback_received("applied", ["hmac"])
    o.agent_report(1, 2.0, 3)
    o.run_transition("r", None, "queued", "created")
    o.reconcile_pass(0.1, 1, 0)
    o.sync_done("artifact")
    o.trigger_failed("job-missing")
    o.jenkins_error("unreachable")


def test_multi_observer_fans_out_and_swallows_listener_errors() -> None:
    a, b = Recorder(), Recorder()
    multi = MultiObserver(a, Broken(), None, b)
    multi.trigger_failed("job-missing")
    multi.callback_received("rejected", ["api-key"], "auth")
    assert (
        a.seen
        == b.seen
        == [
            ("trigger_failed", ("job-missing",)),
            ("callback_received", ("rejected", ("api-key",), "auth")),
        ]
    )
    assert multi.listener_errors == 1


def test_safe_wraps_none_and_bare_observers() -> None:
    safe(None).trigger_failed("x")
    safe(Broken()).trigger_failed("x")
    m = MultiObserver()
    assert safe(m) is m
