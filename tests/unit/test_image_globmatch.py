"""The linear .dockerignore / COPY matcher: same answers as patternmatcher's regex translation,
and no pattern can make it backtrack (issue 9 finding 11)."""

from __future__ import annotations

import random
import re
import subprocess
import sys
import textwrap

from ci_report.image.dockerfile import DockerIgnore
from ci_report.image.globmatch import compile_glob


def _reference_regex(pattern: str, double_star: bool = True) -> str:
    """moby/patternmatcher's translation to a regular expression (what Docker runs on RE2)."""
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        ch = pattern[i]
        if ch == "*":
            if double_star and i + 1 < n and pattern[i + 1] == "*":
                i += 2
                if i < n and pattern[i] == "/":
                    i += 1
                out.append(".*" if i >= n else "(.*/)?")
                continue
            out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "\\":
            if i + 1 < n:
                i += 1
                out.append(re.escape(pattern[i]))
            else:
                out.append(r"\\")
        elif ch == "[":
            j = pattern.find("]", i + 1)
            if j == -1:
                out.append(r"\[")
            else:
                body = pattern[i + 1 : j]
                if body.startswith(("^", "!")):
                    body = "^" + body[1:]
                out.append("[" + body.replace("\\", "\\\\") + "]")
                i = j
        elif ch in ".+()|{}$^":
            out.append("\\" + ch)
        else:
            out.append(ch)
        i += 1
    return "^" + "".join(out) + r"\Z"


def test_same_answers_as_the_regex_translation() -> None:
    rng = random.Random(20261207)
    pieces = ["a", "b", "/", ".", "*", "?", "**", "**/", "[ab]", "[^a]", "[!b]", "\\*", "x"]
    paths = ["".join(rng.choice("ab/.x*") for _ in range(rng.randint(0, 10))) for _ in range(300)]
    paths += ["a", "a/b", "a/b/c", "b/a", ".", "a.b", "*", "x/a/b/a"]
    checked = 0
    for _ in range(400):
        pattern = "".join(rng.choice(pieces) for _ in range(rng.randint(1, 5)))
        if pattern.count("*") > 4:
            continue
        for double in (True, False):
            ref = re.compile(_reference_regex(pattern, double))
            glob = compile_glob(pattern, double_star=double)
            for path in paths:
                assert glob.match(path) == bool(ref.match(path)), (pattern, double, path)
                checked += 1
    assert checked > 100_000


def test_dockerignore_semantics() -> None:
    ignore = DockerIgnore(["**/*.log", "target", "!target/app.jar", "docs/**/draft-?.md"])
    assert ignore.matches("a/b/c.log") and ignore.matches("c.log")
    assert ignore.matches("target/classes/A.class") and not ignore.matches("target/app.jar")
    assert ignore.matches("docs/x/y/draft-1.md") and ignore.matches("docs/draft-2.md")
    assert not ignore.matches("docs/draft-10.md") and not ignore.matches("src/app.py")
    assert DockerIgnore(["[z-a]"]).matches("[z-a]")  # an invalid class is literal, as before


PATHOLOGICAL = textwrap.dedent(
    """
    from pathlib import Path
    import sys
    from ci_report.image.dockerfile import DockerIgnore, copy_sources, parse_dockerfile
    ctx = Path(sys.argv[1])
    name = "a" * 200
    (ctx / name).write_text("x")
    deep = ctx.joinpath(*(["d"] * 40))
    deep.mkdir(parents=True)
    (deep / "f").write_text("x")
    star = "*a" * 24 + "*b"
    lines = [star, "**/" * 30 + "x", "d/" + "**/d/" * 20 + "nope"]
    ignore = DockerIgnore(lines)
    print(ignore.matches(name), ignore.matches("/".join(["d"] * 40) + "/f"))
    stages = parse_dockerfile("FROM scratch\\nCOPY " + star + " /x/\\n", {})
    print(sum(len(s.files) for s in copy_sources(stages, ctx, ignore)))
    """
)


def test_a_backtracking_pattern_cannot_hang_it(tmp_path) -> None:
    # before: Python's re on "*a*a...*b" against a 200-letter name ran for hours
    proc = subprocess.run(
        [sys.executable, "-c", PATHOLOGICAL, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["False", "False", "0"]
