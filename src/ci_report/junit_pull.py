"""The fast JUnit parsing path: the C pull parser, for plain files only.

:func:`parse_pull` feeds a file in :data:`PULL_CHUNK_BYTES` chunks to
``xml.etree.ElementTree.XMLPullParser`` (expat and the tree builder both in C) and hands each
completed ``<testcase>`` element to its sink on the ``end`` event; the element is then dropped
from its parent, and suite-level elements are dropped once closed, so memory stays flat.

It only ever parses what it knows to be plain, and returns False as soon as a file is anything
else, leaving the file to the bounded expat path of :mod:`ci_report.junit` (which then skips the
cases and suites already handed over, so every case is counted once, in document order):

- a ``<!DOCTYPE`` anywhere (checked on every chunk and across chunk seams *before* the chunk is
  fed, so no DTD, entity declaration or external reference ever reaches the C parser); a NUL
  byte (UTF-16/32 text, where that byte check would not see a DOCTYPE); an encoding other than
  UTF-8, ASCII or Latin-1 declared; a default namespace (``xmlns=``: the C parser would rename
  the tags the bounded path reads as plain names);
- anything the C parser reports as an error, a root that is not a JUnit root, nesting deeper
  than :data:`MAX_DEPTH`, a case deeper or larger than the bounded path keeps;
- :data:`PULL_HELD_BYTES` fed without any element being released: a huge text node, tag,
  comment or case, which the C tree builder would hold whole (the bounded path streams it and
  caps it).
Texts of a case's result elements are capped exactly as the bounded path caps them while they
stream in (:func:`cap_texts`), so both paths give the same case for the same element.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Container, Mapping
from typing import IO, Callable, NamedTuple, Optional, Protocol
from xml.etree.ElementTree import Element, ParseError, TreeBuilder, XMLParser

from .junit_keys import PassedKeys
from .junit_limits import (
    CASE_MAX_DEPTH,
    CASE_MAX_ELEMENTS,
    MAX_DEPTH,
    NO_TEXT_TAGS,
    PULL_CHUNK_BYTES,
    PULL_HELD_BYTES,
    RESULT_KINDS,
    ROOTS,
    SUITE_CASE_NAME,
    TEXTLEN,
)

#: encodings the byte checks are valid for (every ASCII byte is that ASCII character)
PLAIN_ENCODINGS = frozenset(
    {"utf-8", "utf8", "us-ascii", "ascii", "iso-8859-1", "iso8859-1", "latin-1", "latin1"}
)
_DECL_ENCODING = re.compile(rb"""\bencoding\s*=\s*["']([^"']*)["']""")
_SEAM = 16  #: bytes of each side of a chunk boundary checked together


CaseKey = tuple[Optional[str], Optional[str], str]  #: (suite, classname, name)


class Lean(NamedTuple):
    """What :func:`parse_pull` needs to count a passed case that nobody will see (no record):
    the keys waiting for a rerun, the passed keys seen, and how to read ``time``."""

    pending: Container[CaseKey]
    passed_keys: PassedKeys
    time_ms: Callable[[Optional[str]], int]


class PullSink(Protocol):
    """Where :func:`parse_pull` hands suites and cases (the file parser of ci_report.junit)."""

    max_text: int

    @property
    def lean_later(self) -> bool:
        """lean() may stop being None during this file."""

    def pull_suite(self, attrs: Mapping[str, str], top: bool) -> None: ...

    def pull_case(self, elem: Element, suite: Optional[str]) -> None: ...

    def lean(self) -> Optional[Lean]:
        """Not None once a passed case needs no record (then counted by pull_counted)."""

    def pull_counted(self, cases: int, time_ms: int) -> None: ...


def _plain_chunk(chunk: bytes, prev: bytes) -> bool:
    """No DOCTYPE and no NUL byte in ``chunk`` nor across its seam with ``prev``."""
    seam = prev[-_SEAM:] + chunk[:_SEAM]
    for data in (chunk, seam):
        if b"\x00" in data or (b"!" in data and b"<!DOCTYPE" in data):  # memchr first
            return False
    return True


def _plain_start(first: bytes) -> bool:
    """The file starts with markup in a plain encoding (BOM-less UTF-16 etc. do not)."""
    head = first[3:] if first.startswith(b"\xef\xbb\xbf") else first
    head = head.lstrip(b" \t\r\n")
    if not head.startswith(b"<"):
        return False
    if head.startswith(b"<?xml"):
        end = head.find(b"?>")
        if end < 0:  # a declaration longer than the first chunk (padded): not plain
            return False
        decl = head[:end]  # the whole of it: an encoding may follow any amount of blanks
        if b"encoding" in decl:
            match = _DECL_ENCODING.search(decl)
            if not match:
                return False
            if match.group(1).decode("ascii", "replace").lower() not in PLAIN_ENCODINGS:
                return False
    return True


def cap_texts(case: Element, max_text: int) -> bool:
    """Cap the texts of a case's children as the bounded path does while they stream in: at
    most ``max_text`` characters of an element's own text (its text and its children's tails),
    the full length in the private :data:`TEXTLEN` attribute when that was longer; texts of
    ``<property>`` elements likewise. False (nothing done) when a child or property is in a
    namespace: the C parser names it ``{uri}tag`` where the bounded path reads ``tag``."""
    for child in case:
        tag = child.tag
        if tag[0] == "{":
            return False
        if tag in NO_TEXT_TAGS:
            continue
        text = child.text
        total = len(text) if text else 0
        if len(child):
            for grandchild in child:
                tail = grandchild.tail
                if tail:
                    total += len(tail)
            if tag == "properties":
                for prop in child.iter():
                    if prop.tag[0] == "{":
                        return False
                    if prop.tag == "property" and prop.text and len(prop.text) > max_text:
                        prop.text = prop.text[:max_text]
        if total > max_text:
            child.set(TEXTLEN, str(total))
            if text and len(text) > max_text:
                child.text = text[:max_text]
    return True


_EVENTS = ("start", "end")
_INF = float("inf")


def _no_time(_value: Optional[str]) -> int:
    return 0


def _no_add(_key_hash: int) -> None:
    pass


def _event_parser() -> Optional[tuple[XMLParser, deque[tuple[str, Element]]]]:
    """The C parser with its start/end events queued (what XMLPullParser and iterparse do,
    without the per-event generator in between); None where this Python lacks that hook."""
    parser = XMLParser(target=TreeBuilder())
    setevents = getattr(parser, "_setevents", None)
    if setevents is None:
        return None
    events: deque[tuple[str, Element]] = deque()
    setevents(events, _EVENTS)  # the queued events are these very strings
    return parser, events


def parse_pull(stream: IO[bytes], sink: PullSink) -> bool:
    """Parse ``stream`` into ``sink``; True when the whole file was parsed, False when the
    bounded path must take over (see the module doc; the sink then holds what was handed)."""
    chunk = stream.read(PULL_CHUNK_BYTES)
    if not _plain_start(chunk):
        return False
    made = _event_parser()
    if made is None:
        return False
    parser, events = made
    feed = parser.feed
    start_event = _EVENTS[0]
    max_text = sink.max_text
    pull_case = sink.pull_case
    lean = sink.lean()
    lean_later = sink.lean_later
    pending: Container[CaseKey] = lean.pending if lean else ()
    passed_add = lean.passed_keys.add if lean else _no_add
    time_ms = lean.time_ms if lean else _no_time
    lean_cases = lean_ms = 0  # passed cases counted here without a record, and their time
    stack: list[Element] = []  # open elements outside cases (the case's parent is stack[-1])
    suites: list[tuple[Optional[str], int]] = []  # open suites: (name, depth)
    suite: Optional[str] = None  # name of the innermost open suite
    depth = case_depth = case_elements = 0
    synthetic = False
    prev = b""
    fed = released_at = 0
    try:
        while True:
            try:
                if chunk:
                    if not _plain_chunk(chunk, prev):
                        return False
                    feed(chunk)
                else:
                    parser.close()
            except ParseError:  # the bounded path says what is wrong, and where
                return False
            released = False
            for event, elem in events:
                if event == start_event:
                    depth += 1
                    if case_depth:
                        case_elements += 1
                        if (
                            depth - case_depth >= CASE_MAX_DEPTH
                            or case_elements >= CASE_MAX_ELEMENTS
                        ):
                            return False
                        continue
                    tag = elem.tag
                    if tag == "testcase" and depth > 1:
                        case_depth = depth
                        case_elements = 0
                        synthetic = False
                        continue
                    if depth > MAX_DEPTH or tag[0] == "{":  # '{': a namespace (see cap_texts)
                        return False
                    if depth == 1:
                        if tag not in ROOTS:
                            return False
                        if tag == "testsuite":
                            suite = elem.get("name")
                            suites.append((suite, depth))
                            sink.pull_suite(elem.attrib, True)
                    elif tag == "testsuite":
                        sink.pull_suite(elem.attrib, not suites)
                        suite = elem.get("name")
                        suites.append((suite, depth))
                    elif tag in ("error", "failure") and suites and suites[-1][1] == depth - 1:
                        case_depth = depth  # a suite-level result: one case named (suite)
                        case_elements = 1
                        synthetic = True
                        continue
                    stack.append(elem)
                elif case_depth:
                    if depth == case_depth:
                        case_depth = 0
                        case = elem
                        if synthetic:
                            case = Element(
                                "testcase", {"name": SUITE_CASE_NAME, "classname": suite or ""}
                            )
                            case.append(elem)
                        get = case.get
                        record = lean is None or get("status") is not None
                        if not record and len(case):
                            for child in case:
                                tag = child.tag
                                if tag in RESULT_KINDS:
                                    record = True
                                    break
                                if tag[0] == "{":  # see cap_texts
                                    return False
                        if not record:  # passed, and nobody will see its record: counted only
                            key = (suite, get("classname") or None, get("name") or "")
                            if key in pending:  # a rerun of a failure: merged by the sink
                                record = True
                            else:
                                lean_cases += 1
                                passed_add(hash(key))
                                value = get("time")
                                if value:  # time_ms(value), a plain positive decimal inlined
                                    try:
                                        seconds = float(value)
                                    except ValueError:
                                        seconds = -1.0
                                    if 0 < seconds < _INF and "_" not in value:
                                        lean_ms += round(seconds * 1000)
                                    else:
                                        lean_ms += time_ms(value)
                        if record:
                            if len(case) and not cap_texts(case, max_text):
                                return False
                            pull_case(case, suite)
                            if lean is None and lean_later:
                                lean = sink.lean()
                                if lean is not None:
                                    pending, time_ms = lean.pending, lean.time_ms
                                    passed_add = lean.passed_keys.add
                        released = True  # dropped from its parent once the chunk is done
                    depth -= 1
                else:
                    stack.pop()
                    if suites and suites[-1][1] == depth:
                        suites.pop()
                        suite = suites[-1][0] if suites else None
                    if stack:
                        del stack[-1][:]
                    released = True
                    depth -= 1
            events.clear()
            if stack:  # the cases closed in this chunk leave their parent (an open one stays)
                parent = stack[-1]
                del parent[: len(parent) - 1 if case_depth else len(parent)]
            if not chunk:
                return True
            if released:
                released_at = fed
            fed += len(chunk)
            if fed - released_at > PULL_HELD_BYTES:
                return False
            prev = chunk
            chunk = stream.read(PULL_CHUNK_BYTES)
    finally:
        if lean_cases:
            sink.pull_counted(lean_cases, lean_ms)
