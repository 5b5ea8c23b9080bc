"""ci_report.signals: one recorder for TERM/INT/HUP; saves hold signals off; only one raise."""

from __future__ import annotations

import os
import signal

import pytest

from ci_report.errors import Interrupted
from ci_report.signals import DEFERRED, IMMEDIATE, SignalRecorder


@pytest.fixture
def make_recorder():
    made: list[SignalRecorder] = []

    def make(policy: str = IMMEDIATE) -> SignalRecorder:
        rec = SignalRecorder(policy).install()
        made.append(rec)
        return rec

    yield make
    for rec in made:
        rec.uninstall()


@pytest.mark.parametrize(
    ("signum", "code"),
    [(signal.SIGTERM, 143), (signal.SIGINT, 130), (signal.SIGHUP, 129)],
    ids=["TERM", "INT", "HUP"],
)
def test_immediate_policy_raises_at_once_with_128_plus_signum(make_recorder, signum, code):
    make_recorder()
    with pytest.raises(Interrupted) as info:
        os.kill(os.getpid(), signum)
        for _ in range(1000):  # the handler runs between bytecodes: never reached
            pass
    assert info.value.signum == signum
    assert info.value.exit_code == code


def test_held_block_finishes_then_the_first_signal_is_raised(make_recorder):
    rec = make_recorder()
    finished = False
    with pytest.raises(Interrupted) as info, rec.held():
        os.kill(os.getpid(), signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGINT)  # a second, different signal within ms
        finished = True
    assert finished, "the held block was interrupted"
    assert info.value.signum == signal.SIGTERM
    assert rec.received == [signal.SIGTERM, signal.SIGINT]


def test_only_the_first_signal_is_ever_raised(make_recorder):
    rec = make_recorder()
    with pytest.raises(Interrupted):
        os.kill(os.getpid(), signal.SIGTERM)
    saved = False
    # the except handler of the first signal saves; a second signal must not interrupt it
    os.kill(os.getpid(), signal.SIGINT)
    os.kill(os.getpid(), signal.SIGHUP)
    saved = True
    rec.check()
    assert saved and rec.pending == signal.SIGTERM


def test_deferred_policy_records_until_the_next_safe_point(make_recorder):
    rec = make_recorder(DEFERRED)
    os.kill(os.getpid(), signal.SIGHUP)
    with rec.held():
        pass  # deferred: leaving a held block is not a safe point of its own
    assert rec.pending == signal.SIGHUP
    with pytest.raises(Interrupted) as info:
        rec.check()
    assert info.value.exit_code == 129


def test_close_stops_raising(make_recorder):
    rec = make_recorder()
    assert rec.close() is None
    os.kill(os.getpid(), signal.SIGTERM)
    rec.check()
    assert rec.pending == signal.SIGTERM
