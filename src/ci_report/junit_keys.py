"""The passed case keys rerun merging remembers for a file, in about 10 bytes each.

A failing execution whose (suite, classname, name) passed earlier in the same file is a rerun
(see ci_report.junit), so every passed key of a file is remembered: as a ``set`` of hashes that
took ~86 bytes a key (7 MB at 100k cases, 17 MB at the limit). :class:`PassedKeys` keeps the
same 64-bit hashes in typed arrays bucketed by their low bits: exact (no false positive), ~9
bytes a key, an add is one append, a lookup scans one small bucket (lookups are rare: only for
failing executions).
"""

from __future__ import annotations

from array import array
from collections import defaultdict

from .junit_limits import PASSED_KEYS_LIMIT

_BUCKET_BITS = 12
_MASK = (1 << _BUCKET_BITS) - 1


def _bucket() -> array[int]:
    return array("q")


class PassedKeys:
    """An exact set of ``hash(key)`` values, at most :data:`PASSED_KEYS_LIMIT` adds per file."""

    __slots__ = ("_buckets", "count")

    def __init__(self) -> None:
        self._buckets: defaultdict[int, array[int]] = defaultdict(_bucket)
        self.count = 0  #: adds so far (a key passed twice counts twice)

    def add(self, key_hash: int) -> None:
        if self.count < PASSED_KEYS_LIMIT:
            self._buckets[key_hash & _MASK].append(key_hash)
            self.count += 1

    def __contains__(self, key_hash: object) -> bool:
        if not isinstance(key_hash, int):
            return False
        bucket = self._buckets.get(key_hash & _MASK)
        return bucket is not None and key_hash in bucket

    def clear(self) -> None:
        self._buckets.clear()
        self.count = 0
