"""The agent's backlog headers on a callback POST, read defensively by the receiver.

Each callback carries, outside the signed body (so dedupe stays byte-exact):

- ``CI-Report-Attempt: N``: the delivery attempt, 1-based, over the delivery id's whole life;
- ``CI-Report-First-Attempt: <unix seconds>``: when the agent first tried this delivery;
- ``CI-Report-Outbox-Backlog: N``: how many older deliveries that agent still holds.

They are not authenticated and only feed metrics: a value that is not a plain bounded number is
ignored (None), never an error, and never changes how the callback is handled.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Mapping, Optional

ATTEMPT_HEADER = "CI-Report-Attempt"
FIRST_ATTEMPT_HEADER = "CI-Report-First-Attempt"
BACKLOG_HEADER = "CI-Report-Outbox-Backlog"

MAX_ATTEMPT = 1_000_000
MAX_BACKLOG = 10_000_000
MAX_DIGITS = 20
# a first attempt older than this (or in the future by more than the clock slack) is garbage
MAX_AGE_S = 90 * 86400.0
CLOCK_SLACK_S = 300.0


@dataclass(frozen=True)
class AgentReport:
    attempt: Optional[int]
    first_attempt_age_s: Optional[float]
    backlog: Optional[int]

    @property
    def empty(self) -> bool:
        return self.attempt is None and self.first_attempt_age_s is None and self.backlog is None


def _header(headers: Mapping[str, str], name: str) -> Optional[str]:
    get = getattr(headers, "get", None)
    value = get(name) if get is not None else None
    if value is None:  # plain dicts are case-sensitive
        wanted = name.lower()
        for key, item in headers.items():
            if key.lower() == wanted:
                value = item
                break
    return value


def _bounded_int(text: Optional[str], low: int, high: int) -> Optional[int]:
    if text is None:
        return None
    text = text.strip()
    if not text or len(text) > MAX_DIGITS or not (text.isascii() and text.isdigit()):
        return None
    value = int(text)
    return value if low <= value <= high else None


def _first_attempt_age(text: Optional[str], now: float) -> Optional[float]:
    if text is None:
        return None
    text = text.strip()
    if not text or len(text) > MAX_DIGITS + 10 or not text.isascii():
        return None
    whole, dot, frac = text.partition(".")
    if not whole.isdigit() or (dot and frac and not frac.isdigit()):
        return None
    stamp = float(text)
    age = now - stamp
    if age < -CLOCK_SLACK_S or age > MAX_AGE_S:
        return None
    return max(0.0, age)


def parse_agent_headers(headers: Mapping[str, str], now: Optional[float] = None) -> AgentReport:
    """The three headers as bounded numbers (None where absent or unusable)."""
    now = time.time() if now is None else now
    return AgentReport(
        attempt=_bounded_int(_header(headers, ATTEMPT_HEADER), 1, MAX_ATTEMPT),
        first_attempt_age_s=_first_attempt_age(_header(headers, FIRST_ATTEMPT_HEADER), now),
        backlog=_bounded_int(_header(headers, BACKLOG_HEADER), 0, MAX_BACKLOG),
    )
