"""A linear-time matcher for ``.dockerignore`` and COPY/ADD patterns.

Docker's matcher (moby/patternmatcher) translates a pattern to a Go regular expression, and Go's
regexp is RE2: linear in the input. Python's ``re`` backtracks, so the same translation of a
pattern such as ``*a*a*a*a*a*a*a*a*a*a*a*a*b`` takes seconds on a 30-letter name and hours on a
longer one. This module keeps the patternmatcher syntax (Go ``filepath.Match`` plus ``**``) and
matches it by simulating the pattern as a set of positions (a Thompson NFA): at most
``len(pattern)`` states per character of the path, so O(len(path) x len(pattern)).

- ``*`` any run of characters except ``/``; ``?`` one character except ``/``;
- ``[...]``/``[^...]``/``[!...]`` a character class (as in Go, it may match ``/``);
- ``**`` any run of characters; ``**/`` in the middle: any run of whole directories (or none);
- ``\\x`` the character ``x``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional, Union

__all__ = ["GlobPattern", "compile_glob"]

MAX_PATTERN = 4096  # characters; a longer line is matched literally

# token kinds
_LIT, _ANY, _CLASS, _STAR, _ALL, _SPLIT = range(6)
_Token = tuple[int, Union[str, "re.Pattern[str]", int, None]]


@dataclass(frozen=True)
class GlobPattern:
    text: str
    tokens: tuple[_Token, ...]

    def match(self, path: str) -> bool:
        """True when the whole ``path`` matches."""
        tokens = self.tokens
        n = len(tokens)
        states = self._closure({0})
        for ch in path:
            nxt: set[int] = set()
            for i in states:
                if i >= n:
                    continue
                kind, arg = tokens[i]
                if kind == _LIT:
                    if ch == arg:
                        nxt.add(i + 1)
                elif kind == _ANY:
                    if ch != "/":
                        nxt.add(i + 1)
                elif kind == _CLASS:
                    assert not isinstance(arg, (str, int)) and arg is not None
                    if arg.fullmatch(ch):
                        nxt.add(i + 1)
                elif kind == _STAR:
                    if ch != "/":
                        nxt.add(i)
                elif kind == _ALL:
                    nxt.add(i)
            if not nxt:
                return False
            states = self._closure(nxt)
        return n in states

    def _closure(self, states: set[int]) -> set[int]:
        tokens = self.tokens
        n = len(tokens)
        out: set[int] = set()
        todo = list(states)
        while todo:
            i = todo.pop()
            if i in out:
                continue
            out.add(i)
            if i >= n:
                continue
            kind, arg = tokens[i]
            if kind in (_STAR, _ALL):
                todo.append(i + 1)
            elif kind == _SPLIT:
                assert isinstance(arg, int)
                todo.append(i + 1)
                todo.append(arg)
        return out


def _class(body: str) -> Optional[re.Pattern[str]]:
    if body.startswith(("^", "!")):
        body = "^" + body[1:]
    try:
        return re.compile("[" + body.replace("\\", "\\\\") + "]")
    except re.error:
        return None


def compile_glob(pattern: str, *, double_star: bool = True) -> GlobPattern:
    """Compile one pattern. An invalid class makes the whole pattern literal, as the regex
    translation did before."""
    if len(pattern) > MAX_PATTERN:
        return GlobPattern(pattern, tuple((_LIT, ch) for ch in pattern))
    tokens: list[_Token] = []
    i, n = 0, len(pattern)
    while i < n:
        ch = pattern[i]
        if ch == "*":
            if double_star and i + 1 < n and pattern[i + 1] == "*":
                i += 2
                if i < n and pattern[i] == "/":
                    i += 1
                if i >= n:
                    tokens.append((_ALL, None))
                else:  # (.*/)?
                    start = len(tokens)
                    tokens += [(_SPLIT, start + 3), (_ALL, None), (_LIT, "/")]
                continue
            if not tokens or tokens[-1][0] != _STAR:  # "**" without double_star: one star
                tokens.append((_STAR, None))
        elif ch == "?":
            tokens.append((_ANY, None))
        elif ch == "\\":
            if i + 1 < n:
                i += 1
                tokens.append((_LIT, pattern[i]))
            else:
                tokens.append((_LIT, "\\"))
        elif ch == "[":
            j = pattern.find("]", i + 1)
            if j == -1:
                tokens.append((_LIT, "["))
            else:
                cls = _class(pattern[i + 1 : j])
                if cls is None:
                    return GlobPattern(pattern, tuple((_LIT, c) for c in pattern))
                tokens.append((_CLASS, cls))
                i = j
        else:
            tokens.append((_LIT, ch))
        i += 1
    return GlobPattern(pattern, tuple(tokens))
