"""Just enough of a Dockerfile parser to check and size a build before Kaniko runs.

What it understands (the same rules as BuildKit/Kaniko where they matter for us):

- parser directives at the top (``# syntax=``, ``# escape=`` with ``\\`` or a backtick);
- comments, blank lines, line continuations (comments inside a continuation are dropped);
- heredocs (``RUN <<EOF``, ``COPY <<-"EOF" /dst``, several per line);
- ``ARG`` before the first ``FROM`` (global), ``--build-arg`` overrides, ``$VAR``/``${VAR}``/
  ``${VAR:-default}``/``${VAR:+alt}`` substitution in ``FROM`` and in ``COPY``/``ADD`` sources;
- ``FROM [--platform=...] image [AS name]``, ``FROM scratch``, ``FROM <earlier stage>``;
- instruction flags such as ``COPY --from=builder --chown=1000:1000``.

``.dockerignore`` follows moby/patternmatcher: Go ``filepath.Match`` syntax plus ``**``,
``!`` exceptions, the last matching line wins, a pattern that matches a parent directory
excludes everything below it, a leading ``/`` is ignored.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Mapping, Optional, Sequence

from ..errors import CiReportError
from .globmatch import GlobPattern, compile_glob

__all__ = [
    "CopySource",
    "DockerIgnore",
    "DockerfileError",
    "Instruction",
    "Stage",
    "copy_sources",
    "final_chain",
    "load_dockerignore",
    "parse_dockerfile",
    "substitute",
]


class DockerfileError(CiReportError):
    """The Dockerfile cannot be understood (no FROM, an instruction before FROM, ...)."""


@dataclass
class Instruction:
    cmd: str  # upper case: FROM, RUN, COPY, ...
    args: str  # the text after the command and its flags, continuations joined with a space
    line: int  # 1-based line of the instruction's first line
    flags: dict[str, str] = field(default_factory=dict)  # {"from": "builder", "link": "true"}
    heredocs: list[tuple[str, str]] = field(default_factory=list)  # (name, body)


@dataclass
class Stage:
    base: str  # the FROM image reference after ARG substitution ("scratch" kept as is)
    name: Optional[str]  # the AS name (lower case), or None
    instructions: list[Instruction]
    line: int = 0  # line of the FROM
    index: int = 0  # position among the stages (COPY --from=0 uses it)
    platform: Optional[str] = None  # FROM --platform=... (after substitution)
    raw_base: str = ""  # the FROM argument before substitution
    unresolved: list[str] = field(default_factory=list)  # variables in FROM with no value
    parent: Optional[int] = None  # index of the earlier stage this one is built FROM
    global_args: dict[str, str] = field(default_factory=dict, repr=False)  # ARGs before FROM

    @property
    def is_scratch(self) -> bool:
        return self.base.lower() == "scratch"

    @property
    def is_external(self) -> bool:
        """True when ``base`` is a registry image (not scratch, not an earlier stage)."""
        return self.parent is None and not self.is_scratch


@dataclass
class CopySource:
    pattern: str  # the source as written (after variable substitution)
    line: int
    files: list[Path]  # matching files in the context after .dockerignore (absolute paths)
    missing: bool  # nothing in the context matches (Kaniko would fail)
    bytes: int  # total size of ``files``
    cmd: str = "COPY"
    stage: int = 0  # index of the stage holding the instruction
    excluded: int = 0  # files that exist but .dockerignore removes


# -- variable substitution ---------------------------------------------------------------

_VAR = re.compile(
    r"\$(?:\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-+])(?P<word>[^}]*))?\}"
    r"|(?P<plain>[A-Za-z_][A-Za-z0-9_]*))"
)


def substitute(
    text: str, values: Mapping[str, str], escape: str = "\\", unresolved: Optional[list] = None
) -> str:
    """Expand ``$VAR``, ``${VAR}``, ``${VAR:-x}``, ``${VAR-x}``, ``${VAR:+x}``, ``${VAR+x}``.

    Unknown variables become empty, as in Docker; their names go to ``unresolved``. An escaped
    ``$`` (``\\$``) stays a literal ``$``.
    """
    out: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == escape and i + 1 < len(text) and text[i + 1] == "$":
            out.append("$")
            i += 2
            continue
        if ch == "$":
            m = _VAR.match(text, i)
            if m:
                name = m.group("braced") or m.group("plain")
                op, word = m.group("op"), m.group("word") or ""
                is_set = name in values
                value = values.get(name, "")
                if op == ":-":
                    result = value if value else substitute(word, values, escape, unresolved)
                elif op == "-":
                    result = value if is_set else substitute(word, values, escape, unresolved)
                elif op == ":+":
                    result = substitute(word, values, escape, unresolved) if value else ""
                elif op == "+":
                    result = substitute(word, values, escape, unresolved) if is_set else ""
                else:
                    result = value
                    if not is_set and unresolved is not None:
                        unresolved.append(name)
                out.append(result)
                i = m.end()
                continue
        out.append(ch)
        i += 1
    return "".join(out)


# -- logical lines -----------------------------------------------------------------------

_DIRECTIVE = re.compile(r"^#\s*([a-zA-Z][a-zA-Z0-9_-]*)\s*=\s*(.*?)\s*$")
_HEREDOC = re.compile(r"<<(-?)\s*(['\"]?)([A-Za-z_][A-Za-z0-9_.-]*)\2")
_HEREDOC_CMDS = {"RUN", "COPY", "ADD"}


def _logical_lines(text: str) -> Iterator[tuple[int, str, list[tuple[str, str]], str]]:
    """Yield (first line number, joined instruction text, heredocs, escape character)."""
    lines = text.splitlines()
    if lines and lines[0].startswith("\ufeff"):
        lines[0] = lines[0][1:]
    escape = "\\"
    i = 0
    # Parser directives: only at the very top, before any blank line, comment or instruction.
    seen: set[str] = set()
    while i < len(lines):
        m = _DIRECTIVE.match(lines[i].strip())
        if not m or m.group(1).lower() in seen:
            break
        key = m.group(1).lower()
        seen.add(key)
        if key == "escape" and m.group(2) in ("\\", "`"):
            escape = m.group(2)
        i += 1

    n = len(lines)
    while i < n:
        raw = lines[i]
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            i += 1
            continue
        start = i + 1
        parts: list[str] = []
        while i < n:
            raw = lines[i]
            stripped = raw.strip()
            i += 1
            if parts and (not stripped or stripped.startswith("#")):
                continue  # blank lines and comments inside a continuation are dropped
            body = raw.rstrip()
            if body.endswith(escape):
                parts.append(body[:-1].strip())
                continue
            parts.append(body.strip())
            break
        joined = " ".join(p for p in parts if p)
        heredocs: list[tuple[str, str]] = []
        cmd = joined.split(None, 1)[0].upper() if joined else ""
        if cmd in _HEREDOC_CMDS:
            for m in _HEREDOC.finditer(joined):
                strip_tabs, name = m.group(1) == "-", m.group(3)
                body_lines: list[str] = []
                while i < n:
                    line = lines[i]
                    i += 1
                    check = line.lstrip("\t") if strip_tabs else line
                    if check.rstrip("\r") == name:
                        break
                    body_lines.append(check)
                heredocs.append((name, "\n".join(body_lines) + ("\n" if body_lines else "")))
        yield start, joined, heredocs, escape


# -- instructions ------------------------------------------------------------------------

_FLAG = re.compile(r"--([A-Za-z][A-Za-z0-9-]*)(?:=(\S*))?")


def _split_flags(rest: str) -> tuple[dict[str, str], str]:
    flags: dict[str, str] = {}
    while True:
        rest = rest.lstrip()
        m = _FLAG.match(rest)
        if not m or (m.end() < len(rest) and not rest[m.end()].isspace()):
            return flags, rest
        value = m.group(2)
        if value is not None and len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        flags[m.group(1).lower()] = "true" if value is None else value
        rest = rest[m.end() :]


def parse_dockerfile(text: str, build_args: Mapping[str, str] = {}) -> list[Stage]:
    """Stages of a Dockerfile. Raises :class:`DockerfileError` if there is no usable ``FROM``."""
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    names: dict[str, int] = {}
    for line, joined, heredocs, escape in _logical_lines(text):
        if not joined:
            continue
        pieces = joined.split(None, 1)
        cmd = pieces[0].upper()
        rest = pieces[1] if len(pieces) > 1 else ""
        flags, args = _split_flags(rest) if cmd in _FLAGGED else ({}, rest.strip())
        if cmd == "FROM":
            words = args.split()
            if not words:
                raise DockerfileError(f"line {line}: FROM without an image")
            raw = words[0]
            name = None
            if len(words) >= 3 and words[1].lower() == "as":
                name = words[2].lower()
            unresolved: list[str] = []
            base = substitute(raw, global_args, escape, unresolved)
            platform = flags.get("platform")
            if platform is not None:
                platform = substitute(platform, global_args, escape)
            parent = names.get(base.lower())
            stage = Stage(
                base=base,
                name=name,
                instructions=[],
                line=line,
                index=len(stages),
                platform=platform,
                raw_base=raw,
                unresolved=unresolved,
                parent=parent,
            )
            if name:
                names[name] = stage.index
            stages.append(stage)
            continue
        if not stages:
            if cmd == "ARG":
                for name, default in _arg_pairs(args):
                    if name in build_args:
                        global_args[name] = build_args[name]
                    elif default is not None:
                        global_args[name] = substitute(default, global_args, escape)
                continue
            raise DockerfileError(
                f"line {line}: {cmd} before the first FROM",
                fix="only ARG may come before FROM",
            )
        stages[-1].instructions.append(
            Instruction(cmd=cmd, args=args, line=line, flags=flags, heredocs=heredocs)
        )
    if not stages:
        raise DockerfileError("the Dockerfile has no FROM instruction", fix="add FROM <image>")
    for stage in stages:
        stage.global_args = dict(global_args)
    return stages


_FLAGGED = {"FROM", "COPY", "ADD", "RUN"}


def _arg_pairs(args: str) -> Iterator[tuple[str, Optional[str]]]:
    for word in _shell_words(args):
        if "=" in word:
            name, default = word.split("=", 1)
            yield name, default
        elif word:
            yield word, None


def _shell_words(text: str) -> list[str]:
    """Whitespace split that keeps quoted parts together and drops the quotes."""
    words: list[str] = []
    cur: list[str] = []
    quote = ""
    has = False
    for ch in text:
        if quote:
            if ch == quote:
                quote = ""
            else:
                cur.append(ch)
        elif ch in "\"'":
            quote = ch
            has = True
        elif ch.isspace():
            if cur or has:
                words.append("".join(cur))
            cur, has = [], False
        else:
            cur.append(ch)
    if cur or has:
        words.append("".join(cur))
    return words


def _stage_env_chain(
    stage: Stage, upto: int, build_args: Mapping[str, str], stages: Sequence[Stage]
) -> dict[str, str]:
    """ARG/ENV values in force before instruction ``upto`` of ``stage`` (and its parents)."""
    values: dict[str, str] = {}
    if stage.parent is not None and stages:
        parent = stages[stage.parent]
        values.update(_stage_env_chain(parent, len(parent.instructions), build_args, stages))
    global_args = stage.global_args
    for ins in stage.instructions[:upto]:
        if ins.cmd == "ARG":
            for name, default in _arg_pairs(ins.args):
                if name in build_args:
                    values[name] = build_args[name]
                elif default is not None:
                    values[name] = substitute(default, values)
                elif name in global_args:
                    values[name] = global_args[name]
        elif ins.cmd == "ENV":
            words = _shell_words(ins.args)
            if words and "=" not in words[0]:
                values[words[0]] = substitute(" ".join(words[1:]), values)
            else:
                for word in words:
                    if "=" in word:
                        k, v = word.split("=", 1)
                        values[k] = substitute(v, values)
    return values


def final_chain(stages: Sequence[Stage], target: Optional[str] = None) -> list[Stage]:
    """The final stage (or ``target``) and the earlier stages it is built FROM, base first."""
    if not stages:
        return []
    idx = len(stages) - 1
    if target is not None:
        found = [s.index for s in stages if s.name == target.lower() or str(s.index) == target]
        if not found:
            raise DockerfileError(f"target stage {target!r} is not in the Dockerfile")
        idx = found[0]
    chain: list[Stage] = []
    at: Optional[int] = idx
    while at is not None:
        chain.append(stages[at])
        at = stages[at].parent
    return list(reversed(chain))


def used_stages(stages: Sequence[Stage], target: Optional[str] = None) -> list[Stage]:
    """Every stage the final one needs: its FROM chain plus stages named in ``COPY --from``."""
    chain = final_chain(stages, target)
    names = {s.name: s.index for s in stages if s.name}
    todo = [s.index for s in chain]
    seen: set[int] = set()
    while todo:
        i = todo.pop()
        if i in seen:
            continue
        seen.add(i)
        stage = stages[i]
        if stage.parent is not None:
            todo.append(stage.parent)
        for ins in stage.instructions:
            ref = ins.flags.get("from")
            if ins.cmd in ("COPY", "ADD") and ref is not None:
                if ref.lower() in names and names[ref.lower()] < i:
                    todo.append(names[ref.lower()])
                elif ref.isdigit() and int(ref) < i:
                    todo.append(int(ref))
    return [stages[i] for i in sorted(seen)]


# -- .dockerignore -----------------------------------------------------------------------


def _clean(path: str) -> str:
    """Go's filepath.Clean for forward-slash paths."""
    if not path:
        return "."
    rooted = path.startswith("/")
    parts: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if parts and parts[-1] != "..":
                parts.pop()
            elif not rooted:
                parts.append("..")
            continue
        parts.append(part)
    cleaned = "/".join(parts)
    if rooted:
        return "/" + cleaned
    return cleaned or "."


@dataclass
class _Pattern:
    text: str
    exclusion: bool
    glob: GlobPattern


class DockerIgnore:
    """Compiled ``.dockerignore`` patterns. ``matches(relpath)`` is True for excluded paths."""

    def __init__(self, lines: Sequence[str] = (), source: Optional[Path] = None) -> None:
        self.source = source
        self.patterns: list[_Pattern] = []
        for raw in lines:
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            exclusion = line.startswith("!")
            if exclusion:
                line = line[1:].strip()
            line = _clean(line.replace(os.sep, "/"))
            if len(line) > 1 and line.startswith("/"):
                line = line[1:]
            if not line:
                continue
            self.patterns.append(_Pattern(line, exclusion, compile_glob(line)))

    def __bool__(self) -> bool:
        return bool(self.patterns)

    @property
    def has_exceptions(self) -> bool:
        return any(p.exclusion for p in self.patterns)

    def matches(self, relpath: str) -> bool:
        """True when ``relpath`` (relative to the context, ``/`` separators) is excluded."""
        path = _clean(str(relpath).replace(os.sep, "/")).lstrip("/")
        if path in (".", ""):
            return False
        parents = path.split("/")[:-1]
        parent_paths = ["/".join(parents[: k + 1]) for k in range(len(parents))]
        matched = False
        for pattern in self.patterns:
            if pattern.exclusion and not matched:
                continue
            hit = pattern.glob.match(path) or any(pattern.glob.match(p) for p in parent_paths)
            if hit:
                matched = not pattern.exclusion
        return matched


def load_dockerignore(context: Path, dockerfile: Optional[Path] = None) -> DockerIgnore:
    """``<context>/.dockerignore``; a ``<Dockerfile>.dockerignore`` next to ``dockerfile`` wins
    (BuildKit and Kaniko both look there first). No file means nothing is excluded."""
    candidates = []
    if dockerfile is not None:
        candidates.append(Path(str(dockerfile) + ".dockerignore"))
    candidates.append(Path(context) / ".dockerignore")
    for path in candidates:
        if path.is_file():
            try:
                text = path.read_text(encoding="utf-8", errors="replace")
            except OSError:
                continue
            return DockerIgnore(text.splitlines(), source=path)
    return DockerIgnore()


# -- COPY / ADD sources ------------------------------------------------------------------

_GLOB_CHARS = set("*?[")
_REMOTE = re.compile(r"^(?:https?://|git@|git://|ssh://)|\.git(?:#.*)?$", re.IGNORECASE)


def _sources_of(ins: Instruction) -> list[str]:
    args = ins.args.strip()
    if args.startswith("["):
        try:
            words = json.loads(args)
            if isinstance(words, list) and all(isinstance(w, str) for w in words):
                return [w for w in words[:-1]]
        except ValueError:
            pass
    words = _shell_words(args)
    return words[:-1]


def _walk(root: Path) -> Iterator[tuple[str, Path, bool]]:
    """(relative path, absolute path, is_dir) for everything under ``root``; no symlink follow."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        rel_dir = os.path.relpath(dirpath, root)
        for name in dirnames:
            rel = name if rel_dir == "." else f"{rel_dir}/{name}"
            yield rel.replace(os.sep, "/"), Path(dirpath) / name, True
        for name in sorted(filenames):
            rel = name if rel_dir == "." else f"{rel_dir}/{name}"
            yield rel.replace(os.sep, "/"), Path(dirpath) / name, False


def _files_under(
    path: Path, rel: str, ignore: DockerIgnore, counts: list[int]
) -> Iterator[tuple[Path, int]]:
    """Files at or under ``path`` that .dockerignore keeps. ``counts`` = [excluded, kept
    paths that exist (an empty directory counts: COPY of it succeeds)]."""
    if not (path.is_symlink() or path.exists()):
        return
    if ignore.matches(rel) and not ignore.has_exceptions:
        counts[0] += 1
        return
    if path.is_symlink() or path.is_file():
        if ignore.matches(rel):
            counts[0] += 1
            return
        try:
            size = path.lstat().st_size if path.is_symlink() else path.stat().st_size
        except OSError:
            return
        counts[1] += 1
        yield path, size
        return
    if not path.is_dir():
        return
    if not ignore.matches(rel):
        counts[1] += 1
    for sub_rel, sub_path, is_dir in _walk(path):
        if is_dir:
            continue
        full_rel = sub_rel if rel in ("", ".") else f"{rel}/{sub_rel}"
        if ignore.matches(full_rel):
            counts[0] += 1
            continue
        try:
            yield sub_path, sub_path.lstat().st_size
        except OSError:
            continue


def copy_sources(
    stages: Sequence[Stage],
    context: Path,
    ignore: Optional[DockerIgnore] = None,
    *,
    build_args: Mapping[str, str] = {},
    target: Optional[str] = None,
    all_used_stages: bool = False,
) -> list[CopySource]:
    """``COPY``/``ADD`` sources read from the build context, with the files they match.

    By default only the final stage and the stages it is built FROM (those layers are pushed).
    ``all_used_stages=True`` also covers stages reached through ``COPY --from`` (they are built,
    so their sources must exist too: what preflight wants). ``--from=``, heredocs, URLs and git
    sources are skipped. A file excluded by ``.dockerignore`` does not count as present.
    """
    context = Path(context)
    ignore = ignore if ignore is not None else DockerIgnore()
    chosen = used_stages(stages, target) if all_used_stages else final_chain(stages, target)
    tree: Optional[list[tuple[str, Path, bool]]] = None
    result: list[CopySource] = []
    for stage in chosen:
        for pos, ins in enumerate(stage.instructions):
            if ins.cmd not in ("COPY", "ADD") or "from" in ins.flags:
                continue
            heredoc_names = {name for name, _ in ins.heredocs}
            values = _stage_env_chain(stage, pos, build_args, stages)
            for raw in _sources_of(ins):
                if raw.startswith("<<") and raw.lstrip("<-").strip("'\"") in heredoc_names:
                    continue
                if ins.cmd == "ADD" and _REMOTE.search(raw):
                    continue
                pattern = substitute(raw, values)
                rel = _clean(pattern.replace("\\", "/")).lstrip("/") or "."
                counts = [0, 0]
                files: list[tuple[Path, int]] = []
                if _GLOB_CHARS & set(rel):
                    if tree is None:
                        tree = list(_walk(context)) if context.is_dir() else []
                    glob = compile_glob(rel, double_star=False)
                    for item_rel, item_path, _is_dir in tree:
                        if glob.match(item_rel):
                            files.extend(_files_under(item_path, item_rel, ignore, counts))
                else:
                    target_path = context if rel == "." else context / rel
                    if rel.startswith(".."):
                        target_path = Path("/nonexistent-outside-context")
                    files.extend(_files_under(target_path, rel, ignore, counts))
                unique = dict(files)
                result.append(
                    CopySource(
                        pattern=pattern,
                        line=ins.line,
                        files=list(unique),
                        missing=not unique and counts[1] == 0,
                        bytes=sum(unique.values()),
                        cmd=ins.cmd,
                        stage=stage.index,
                        excluded=counts[0],
                    )
                )
    return result
