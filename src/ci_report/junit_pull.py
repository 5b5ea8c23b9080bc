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
from collections.abc import Mapping
from typing import IO, Optional, Protocol
from xml.etree.ElementTree import Element, ParseError, TreeBuilder, XMLParser

from .junit_limits import (
    CASE_MAX_DEPTH,
    CASE_MAX_ELEMENTS,
    MAX_DEPTH,
    NO_TEXT_TAGS,
    PULL_CHUNK_BYTES,
    PULL_HELD_BYTES,
    ROOTS,
    SUITE_CASE_NAME,
    TEXTLEN,
)

#: encodings the byte checks are valid for (every ASCII byte is that ASCII character)
PLAIN_ENCODINGS = frozenset(
    {"utf-8", "utf8", "us-ascii", "ascii", "iso-8859-1", "iso8859-1", "latin-1", "latin1"}
)
_DEFAULT_NS = re.compile(rb"xmlns\s*(?:=|\Z)")  # at a chunk's end: the '=' may follow
_DECL_ENCODING = re.compile(rb"""\A<\?xml\b[^>]*?\bencoding\s*=\s*["']([^"']*)["']""")
_SEAM = 16  #: bytes of each side of a chunk boundary checked together


class PullSink(Protocol):
    """Where :func:`parse_pull` hands suites and cases (the file parser of ci_report.junit)."""

    max_text: int

    def pull_suite(self, attrs: Mapping[str, str], top: bool) -> None: ...

    def pull_case(self, elem: Element, suite: Optional[str]) -> None: ...


def _plain_chunk(chunk: bytes, prev: bytes) -> bool:
    seam = prev[-_SEAM:] + chunk[:_SEAM]
    for data in (chunk, seam):
        if b"<!DOCTYPE" in data or b"\x00" in data:
            return False
        if b"xmlns" in data and _DEFAULT_NS.search(data):
            return False
    return True


def _plain_start(first: bytes) -> bool:
    """The file starts with markup in a plain encoding (BOM-less UTF-16 etc. do not)."""
    head = first[3:] if first.startswith(b"\xef\xbb\xbf") else first
    head = head.lstrip(b" \t\r\n")
    if not head.startswith(b"<"):
        return False
    if head.startswith(b"<?xml"):
        match = _DECL_ENCODING.match(head[:1024])
        if match and match.group(1).decode("ascii", "replace").lower() not in PLAIN_ENCODINGS:
            return False
    return True


def cap_texts(case: Element, max_text: int) -> None:
    """Cap the texts of a case's children as the bounded path does while they stream in: at
    most ``max_text`` characters of an element's own text (its text and its children's tails),
    the full length in the private :data:`TEXTLEN` attribute when that was longer; texts of
    ``<property>`` elements likewise."""
    for child in case:
        if child.tag in NO_TEXT_TAGS:
            continue
        text = child.text
        total = len(text) if text else 0
        if len(child):
            for grandchild in child:
                tail = grandchild.tail
                if tail:
                    total += len(tail)
            if child.tag == "properties":
                for prop in child.iter("property"):
                    if prop.text and len(prop.text) > max_text:
                        prop.text = prop.text[:max_text]
        if total > max_text:
            child.set(TEXTLEN, str(total))
            if text and len(text) > max_text:
                child.text = text[:max_text]


def _event_parser() -> Optional[tuple[XMLParser, deque[tuple[str, Element]]]]:
    """The C parser with its start/end events queued (what XMLPullParser and iterparse do,
    without the per-event generator in between); None where this Python lacks that hook."""
    parser = XMLParser(target=TreeBuilder())
    setevents = getattr(parser, "_setevents", None)
    if setevents is None:
        return None
    events: deque[tuple[str, Element]] = deque()
    setevents(events, ("start", "end"))
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
    max_text = sink.max_text
    pull_case = sink.pull_case
    stack: list[Element] = []  # open elements outside cases (the case's parent is stack[-1])
    suites: list[tuple[Optional[str], int]] = []  # open suites: (name, depth)
    depth = case_depth = case_elements = 0
    synthetic = False
    prev = b""
    fed = released_at = 0
    while True:
        try:
            if chunk:
                if not _plain_chunk(chunk, prev):
                    return False
                feed(chunk)
            else:
                parser.close()
            released = False
            for event, elem in events:
                if event == "start":
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
                    if depth > MAX_DEPTH:
                        return False
                    if depth == 1:
                        if tag not in ROOTS:
                            return False
                        if tag == "testsuite":
                            suites.append((elem.get("name"), depth))
                            sink.pull_suite(elem.attrib, True)
                    elif tag == "testsuite":
                        sink.pull_suite(elem.attrib, not suites)
                        suites.append((elem.get("name"), depth))
                    elif tag in ("error", "failure") and suites and suites[-1][1] == depth - 1:
                        case_depth = depth  # a suite-level result: one case named (suite)
                        case_elements = 1
                        synthetic = True
                        continue
                    stack.append(elem)
                elif case_depth:
                    if depth == case_depth:
                        case_depth = 0
                        suite = suites[-1][0] if suites else None
                        case = elem
                        if synthetic:
                            case = Element(
                                "testcase", {"name": SUITE_CASE_NAME, "classname": suite or ""}
                            )
                            case.append(elem)
                        if len(case):
                            cap_texts(case, max_text)
                        pull_case(case, suite)
                        if stack:
                            del stack[-1][:]
                        released = True
                    depth -= 1
                else:
                    stack.pop()
                    if suites and suites[-1][1] == depth:
                        suites.pop()
                    if stack:
                        del stack[-1][:]
                    released = True
                    depth -= 1
        except ParseError:  # the bounded path says what is wrong, and where
            return False
        events.clear()
        if not chunk:
            return True
        if released:
            released_at = fed
        fed += len(chunk)
        if fed - released_at > PULL_HELD_BYTES:
            return False
        prev = chunk
        chunk = stream.read(PULL_CHUNK_BYTES)
