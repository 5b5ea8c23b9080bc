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
from typing import IO, Any, Callable, NamedTuple, Optional, Protocol
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
#: distinct classnames shared among the records of a file (one str each); beyond, not shared
CLASSNAMES_SHARED = 4096


CaseKey = tuple[Optional[str], Optional[str], str]  #: (suite, classname, name)


class Shortcut(NamedTuple):
    """What :func:`parse_pull` needs to take a passed case without the sink's call: the keys
    waiting for a rerun (those go through the sink), the passed keys seen, how to read
    ``time``; and to record a childless one itself: the record type (None when records need the
    sink, e.g. a case map), the file, the passed/skipped records kept and how many, on_case;
    on_passed, when given, takes such a case instead of a record for on_case once the kept
    records are full: (name, classname, duration in ms, case id)."""

    pending: Container[CaseKey]
    passed_keys: PassedKeys
    time_ms: Callable[[Optional[str]], int]
    new_case: Optional[Callable[..., Any]]
    file: str
    other: list[Any]
    max_results: int
    on_case: Optional[Callable[[Any], None]]
    on_passed: Optional[Callable[[str, Optional[str], int, Any], None]] = None
    #: the failed/errored records kept: with them, the passed/skipped ones are kept while both
    #: together are fewer than max_results (failures come first in the results)
    bad: Optional[list[Any]] = None
    #: the case id of a passed case with children (properties) for on_passed, as the record
    #: would hold it: (element, classname, name) -> id
    case_id: Optional[Callable[[Element, Optional[str], str], Any]] = None
    #: the sink's shared classnames (one str each among the records), see CLASSNAMES_SHARED
    classnames: Optional[dict[Optional[str], Optional[str]]] = None


class PullSink(Protocol):
    """Where :func:`parse_pull` hands suites and cases (the file parser of ci_report.junit)."""

    max_text: int

    def pull_suite(self, attrs: Mapping[str, str], top: bool) -> None: ...

    def pull_case(self, elem: Element, suite: Optional[str]) -> None: ...

    def shortcut(self) -> Shortcut: ...

    def pull_counted(self, cases: int, time_ms: int) -> None:
        """Passed cases (not flaky) taken by the shortcut: counted, their time added."""


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
    shortcut = sink.shortcut()
    pending, passed_keys, time_ms, new_case, file, other, max_results, on_case = shortcut[:8]
    on_passed = shortcut.on_passed
    bad: list[Any] = shortcut.bad if shortcut.bad is not None else []
    read_id = shortcut.case_id if new_case is not None and on_passed is not None else None
    #: one str per classname among the records (each case's attribute is a str of its own)
    classnames = shortcut.classnames if shortcut.classnames is not None else {}
    passed_add = passed_keys.add
    # no on_case and no room left in the kept records: a passed case is only counted
    lean = on_case is None and len(other) + len(bad) >= max_results
    lean_cases = lean_ms = 0  # passed cases taken here (and recorded when not lean), their time
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
                        passed = get("status") is None
                        if passed and len(case):
                            for child in case:
                                tag = child.tag
                                if tag in RESULT_KINDS:
                                    passed = False
                                    break
                                if tag[0] == "{":  # see cap_texts
                                    return False
                        record = True  # through the sink
                        if passed and (
                            lean
                            or (new_case is not None and not len(case))
                            or (read_id is not None and len(other) + len(bad) >= max_results)
                        ):
                            name = get("name") or ""
                            classname = get("classname") or None
                            key = (suite, classname, name)
                            if key not in pending:  # else a rerun of a failure: the sink merges
                                case_id = None
                                if len(case) and not lean:  # for on_passed: read as the sink would
                                    if not cap_texts(case, max_text):
                                        return False
                                    assert read_id is not None
                                    case_id = read_id(case, classname, name)
                                record = False
                                value = get("time")
                                ms = 0
                                if value:  # time_ms(value), a plain positive decimal inlined
                                    try:
                                        seconds = float(value)
                                    except ValueError:
                                        seconds = -1.0
                                    if 0 < seconds < _INF and "_" not in value:
                                        ms = round(seconds * 1000)
                                    else:
                                        ms = time_ms(value)
                                lean_cases += 1
                                lean_ms += ms
                                passed_add(hash(key))
                                if on_passed is not None and len(other) + len(bad) >= max_results:
                                    on_passed(name, classname, ms, case_id)  # no record needed
                                elif not lean:  # what the sink would record for it
                                    assert new_case is not None
                                    result = new_case(
                                        name,
                                        classnames.setdefault(classname, classname)
                                        if len(classnames) < CLASSNAMES_SHARED
                                        else classname,
                                        "passed",
                                        ms,
                                        None,
                                        None,
                                        False,
                                        file,
                                        suite,
                                    )
                                    if len(other) + len(bad) < max_results:
                                        other.append(result)
                                        lean = (
                                            on_case is None and len(other) + len(bad) >= max_results
                                        )
                                    if on_case is not None:
                                        on_case(result)
                        if record:
                            if len(case) and not cap_texts(case, max_text):
                                return False
                            pull_case(case, suite)
                            if not lean:
                                lean = on_case is None and len(other) + len(bad) >= max_results
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
