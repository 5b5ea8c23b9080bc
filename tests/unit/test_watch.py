"""platform/watch.py: one metrics observer for everything, page tokens shared by replicas."""

from __future__ import annotations

from typing import Any, Optional

from ci_report.platform.events import MultiObserver, Observer
from ci_report.platform.metrics import PlatformMetrics
from ci_report.platform.watch import find_metrics, setup_watch


class _Ledger:
    def get(self, run_id: str) -> Optional[Any]:
        return None

    def list(self, *args: Any, **kwargs: Any) -> list[Any]:
        return []

    def stuck(self, older_than_s: float, limit: Optional[int] = None) -> list[Any]:
        return []

    def history(self, run_id: str) -> list[dict[str, Any]]:
        return []

    def counts_by_status(self) -> dict[str, int]:
        return {}

    def oldest_open_age_s(self) -> Optional[float]:
        return None


def test_an_observer_that_already_holds_metrics_is_reused() -> None:
    metrics = PlatformMetrics()
    other = Observer()
    watch = setup_watch(MultiObserver(other, metrics))
    assert watch.metrics is metrics
    assert find_metrics(watch.observer) is metrics
    fresh = setup_watch(other)
    assert fresh.metrics is not None and fresh.metrics is not metrics
    assert isinstance(fresh.observer, MultiObserver) and other in fresh.observer.observers


def test_replicas_with_one_api_token_accept_each_others_sync_forms() -> None:
    a, b = setup_watch(api_token="tok-0123456789"), setup_watch(api_token="tok-0123456789")
    c = setup_watch(api_token="another-token-99")
    for w in (a, b, c):
        w.attach(_Ledger())
    assert a.page is not None and b.page is not None and c.page is not None
    assert a.page.csrf_token("r1") == b.page.csrf_token("r1")
    assert a.page.csrf_token("r1") != c.page.csrf_token("r1")
    assert "tok-0123456789" not in repr(a)
    # without a token each process has its own random key
    x, y = setup_watch(), setup_watch()
    x.attach(_Ledger())
    y.attach(_Ledger())
    assert x.page is not None and y.page is not None
    assert x.page.csrf_token("r1") != y.page.csrf_token("r1")
