"""Dockerfile parsing, .dockerignore matching and COPY/ADD source resolution."""

from __future__ import annotations

from pathlib import Path

import pytest

from ci_report.image.dockerfile import (
    DockerfileError,
    DockerIgnore,
    copy_sources,
    final_chain,
    load_dockerignore,
    parse_dockerfile,
    substitute,
    used_stages,
)

# -- parsing -----------------------------------------------------------------------------


def test_single_stage_basic():
    stages = parse_dockerfile("FROM alpine:3.20\nRUN echo hi\nCOPY app.jar /app/\n")
    assert len(stages) == 1
    s = stages[0]
    assert s.base == "alpine:3.20" and s.name is None and s.line == 1
    assert [(i.cmd, i.args, i.line) for i in s.instructions] == [
        ("RUN", "echo hi", 2),
        ("COPY", "app.jar /app/", 3),
    ]


def test_commands_are_upper_cased_and_as_is_case_insensitive():
    stages = parse_dockerfile("from golang:1.22 As Builder\ncopy . .\n")
    assert stages[0].name == "builder"
    assert stages[0].instructions[0].cmd == "COPY"


def test_comments_and_blank_lines_skipped_line_numbers_kept():
    text = "# a comment\n\nFROM scratch\n  # indented comment\n\nCOPY a /a\n"
    stages = parse_dockerfile(text)
    assert stages[0].line == 3
    assert stages[0].is_scratch and not stages[0].is_external
    assert stages[0].instructions[0].line == 6


def test_line_continuations_with_comments_and_blank_lines_inside():
    text = (
        "FROM debian\n"
        "RUN apt-get update && \\\n"
        "    # a comment in the middle\n"
        "\n"
        "    apt-get install -y curl \\   \n"
        "    && rm -rf /var/lib/apt/lists/*\n"
        "COPY x /x\n"
    )
    ins = parse_dockerfile(text)[0].instructions
    assert ins[0].line == 2
    assert ins[0].args == "apt-get update && apt-get install -y curl && rm -rf /var/lib/apt/lists/*"
    assert ins[1].line == 7


def test_escape_directive_backtick():
    text = "# escape=`\nFROM mcr.microsoft.com/windows\nRUN dir c:\\ `\n    /s\n"
    stages = parse_dockerfile(text)
    assert stages[0].instructions[0].args == "dir c:\\ /s"


def test_syntax_directive_and_late_directive_is_a_comment():
    text = "# syntax=docker/dockerfile:1\n# escape=\\\nFROM alpine\n# escape=`\nRUN a \\\n b\n"
    stages = parse_dockerfile(text)
    assert stages[0].instructions[0].args == "a b"


def test_heredocs_do_not_become_instructions():
    text = (
        "FROM alpine\n"
        "RUN <<EOF\n"
        "FROM evil\n"
        "echo hi\n"
        "EOF\n"
        'COPY <<-"CONF" /etc/app.conf\n'
        "\tkey=value\n"
        "\tCONF\n"
        "RUN <<A cat /dev/stdin && <<B cat\n"
        "a\n"
        "A\n"
        "b\n"
        "B\n"
        "COPY app /app\n"
    )
    stages = parse_dockerfile(text)
    assert len(stages) == 1
    ins = stages[0].instructions
    assert [i.cmd for i in ins] == ["RUN", "COPY", "RUN", "COPY"]
    assert ins[0].heredocs == [("EOF", "FROM evil\necho hi\n")]
    assert ins[1].heredocs == [("CONF", "key=value\n")]
    assert [h[0] for h in ins[2].heredocs] == ["A", "B"]
    assert ins[3].line == 14


def test_arg_before_from_and_build_args():
    text = (
        "ARG REGISTRY=docker.io\nARG TAG\nARG JAVA=21\n"
        "FROM ${REGISTRY}/eclipse-temurin:${JAVA}-jre${TAG:+-}${TAG}\n"
    )
    assert parse_dockerfile(text)[0].base == "docker.io/eclipse-temurin:21-jre"
    stages = parse_dockerfile(text, {"REGISTRY": "reg.example.com", "TAG": "alpine"})
    assert stages[0].base == "reg.example.com/eclipse-temurin:21-jre-alpine"
    assert stages[0].raw_base.startswith("${REGISTRY}")


def test_unset_arg_in_from_is_reported():
    stages = parse_dockerfile("ARG BASE\nFROM $BASE\n")
    assert stages[0].base == "" and stages[0].unresolved == ["BASE"]
    stages = parse_dockerfile("FROM ${BASE:-alpine}:3\n")
    assert stages[0].base == "alpine:3" and stages[0].unresolved == []


def test_from_platform_flag_and_stage_parent():
    text = (
        "ARG TARGET=linux/amd64\n"
        "FROM --platform=$TARGET maven:3-eclipse-temurin-21 AS build\n"
        "RUN mvn package\n"
        "FROM build AS test\n"
        "FROM eclipse-temurin:21-jre\n"
        "COPY --from=build --chown=1000:1000 /src/target/app.jar /app.jar\n"
    )
    stages = parse_dockerfile(text)
    assert stages[0].platform == "linux/amd64"
    assert stages[0].base == "maven:3-eclipse-temurin-21"
    assert stages[1].parent == 0 and not stages[1].is_external
    assert stages[2].is_external
    copy = stages[2].instructions[0]
    assert copy.flags == {"from": "build", "chown": "1000:1000"}
    assert copy.args == "/src/target/app.jar /app.jar"


def test_flag_without_value():
    ins = parse_dockerfile("FROM a\nCOPY --link --chmod=755 x /y\n")[0].instructions[0]
    assert ins.flags == {"link": "true", "chmod": "755"} and ins.args == "x /y"


def test_no_from_and_instruction_before_from_fail():
    with pytest.raises(DockerfileError, match="no FROM"):
        parse_dockerfile("# only a comment\n")
    with pytest.raises(DockerfileError, match="line 1: RUN before the first FROM"):
        parse_dockerfile("RUN echo\nFROM a\n")


def test_crlf_and_bom():
    stages = parse_dockerfile("\ufeffFROM alpine\r\nRUN a \\\r\n  b\r\n")
    assert stages[0].base == "alpine" and stages[0].instructions[0].args == "a b"


def test_substitute_forms():
    values = {"A": "x", "E": ""}
    assert substitute("$A ${A} ${A:-d} ${B:-d} ${E:-d} ${E-d} ${A:+y} ${B:+y} \\$A", values) == (
        "x x x d d  y  $A"
    )


def test_final_chain_and_used_stages():
    text = (
        "FROM node AS assets\nFROM maven AS build\nCOPY --from=assets /a /a\n"
        "FROM build AS pkg\nFROM alpine AS unused\nFROM pkg\n"
    )
    stages = parse_dockerfile(text)
    assert [s.index for s in final_chain(stages)] == [1, 2, 4]
    assert [s.index for s in used_stages(stages)] == [0, 1, 2, 4]
    assert [s.index for s in final_chain(stages, "unused")] == [3]


# -- .dockerignore -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "patterns, path, excluded",
    [
        (["*.log"], "a.log", True),
        (["*.log"], "sub/a.log", False),  # '*' never crosses '/'
        (["**/*.log"], "sub/deep/a.log", True),
        (["**/*.log"], "a.log", True),  # '**/' matches zero directories
        (["node_modules"], "node_modules/x/y.js", True),  # parent directory match
        (["/build"], "build/out.o", True),  # leading '/' stripped
        (["docs/**"], "docs/a/b.md", True),
        (["docs/**"], "docs", False),
        (["a?c"], "abc", True),
        (["a?c"], "a/c", False),
        (["[a-c]x"], "bx", True),
        (["[!a-c]x"], "dx", True),
        (["[!a-c]x"], "ax", False),
        (["*", "!keep.txt"], "keep.txt", False),
        (["*", "!keep.txt"], "other.txt", True),
        (["target", "!target/app.jar"], "target/app.jar", False),
        (["target", "!target/app.jar"], "target/other.jar", True),
        (["!a", "a"], "a", True),  # last match wins
        (["a", "!a", "a"], "a", True),
        (["  spaced.txt  "], "spaced.txt", True),
        (["./x/../y"], "y", True),  # filepath.Clean
        (["# comment", ""], "# comment", False),
        (["file\\*"], "file*", True),
        (["file\\*"], "files", False),
        (["**"], "anything/at/all", True),
        (["dir/*/x"], "dir/a/x", True),
        (["dir/*/x"], "dir/a/b/x", False),
        (["dir/**/x"], "dir/a/b/x", True),
        (["dir/**/x"], "dir/x", True),
        (["*.md", "!README*.md", "README-secret.md"], "README.md", False),
        (["*.md", "!README*.md", "README-secret.md"], "README-secret.md", True),
    ],
)
def test_dockerignore_rules(patterns, path, excluded):
    assert DockerIgnore(patterns).matches(path) is excluded


def test_load_dockerignore_prefers_dockerfile_specific(tmp_path: Path):
    (tmp_path / ".dockerignore").write_text("*.log\n")
    assert load_dockerignore(tmp_path).matches("x.log")
    df = tmp_path / "build.Dockerfile"
    df.write_text("FROM a\n")
    (tmp_path / "build.Dockerfile.dockerignore").write_text("*.txt\n")
    ign = load_dockerignore(tmp_path, df)
    assert ign.matches("a.txt") and not ign.matches("x.log")
    assert ign.source == tmp_path / "build.Dockerfile.dockerignore"
    assert not load_dockerignore(tmp_path / "nothing-here")


# -- COPY / ADD sources ------------------------------------------------------------------


def _tree(root: Path, files: dict[str, int]) -> None:
    for rel, size in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"x" * size)


def test_copy_sources_final_chain(tmp_path: Path):
    _tree(
        tmp_path,
        {
            "target/app.jar": 1000,
            "target/app.jar.original": 500,
            "config/a.yml": 10,
            "config/b.yml": 20,
            "config/secret.key": 7,
            "src/Main.java": 300,
            "run.sh": 5,
            "notes.log": 3,
        },
    )
    (tmp_path / ".dockerignore").write_text("*.log\n**/*.key\n")
    text = (
        "FROM maven AS build\n"
        "COPY src /src\n"  # build stage: not in the final chain
        "FROM eclipse-temurin:21-jre\n"
        "ARG JAR=target/app.jar\n"
        "COPY --from=build /src/x /x\n"
        'COPY ["${JAR}", "/app/app.jar"]\n'
        "COPY config/ run.sh /app/\n"
        "ADD https://example.com/agent.jar /agent.jar\n"
        "ADD notes.log missing.txt target/*.jar /opt/\n"
        "COPY <<EOF /etc/motd\nhello\nEOF\n"
    )
    stages = parse_dockerfile(text)
    ignore = load_dockerignore(tmp_path)
    srcs = copy_sources(stages, tmp_path, ignore)
    assert [(s.pattern, s.line, s.missing, s.bytes) for s in srcs] == [
        ("target/app.jar", 6, False, 1000),
        ("config/", 7, False, 30),  # secret.key excluded
        ("run.sh", 7, False, 5),
        ("notes.log", 9, True, 0),  # exists but .dockerignore removes it
        ("missing.txt", 9, True, 0),
        ("target/*.jar", 9, False, 1000),
    ]
    assert srcs[1].excluded == 1 and srcs[3].excluded == 1
    assert srcs[3].cmd == "ADD"
    assert sorted(p.name for p in srcs[1].files) == ["a.yml", "b.yml"]
    # all used stages: the build stage's COPY src is included too
    srcs_all = copy_sources(stages, tmp_path, ignore, all_used_stages=True)
    assert srcs_all[0].pattern == "src" and srcs_all[0].bytes == 300 and srcs_all[0].stage == 0


def test_copy_dot_and_exceptions(tmp_path: Path):
    _tree(tmp_path, {"a.txt": 1, "target/app.jar": 100, "target/junk.bin": 50})
    (tmp_path / ".dockerignore").write_text("target\n!target/app.jar\n")
    stages = parse_dockerfile("FROM a\nCOPY . /app\n")
    srcs = copy_sources(stages, tmp_path, load_dockerignore(tmp_path))
    assert srcs[0].bytes == 1 + 100 + len("target\n!target/app.jar\n")  # .dockerignore is sent
    assert srcs[0].excluded == 1


def test_copy_empty_directory_is_not_missing(tmp_path: Path):
    (tmp_path / "empty").mkdir()
    srcs = copy_sources(parse_dockerfile("FROM a\nCOPY empty /e\n"), tmp_path)
    assert srcs[0].missing is False and srcs[0].bytes == 0


def test_copy_escaping_context_is_missing(tmp_path: Path):
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (tmp_path / "outside").write_text("x")
    srcs = copy_sources(parse_dockerfile("FROM a\nCOPY ../outside /o\n"), ctx)
    assert srcs[0].missing


def test_copy_build_arg_and_env_substitution(tmp_path: Path):
    _tree(tmp_path, {"dist/v2/app.bin": 42})
    text = "FROM a\nARG VERSION=v1\nENV DIR=dist\nCOPY $DIR/${VERSION}/app.bin /app\n"
    srcs = copy_sources(parse_dockerfile(text), tmp_path, build_args={"VERSION": "v2"})
    assert srcs[0].pattern == "dist/v2/app.bin" and srcs[0].bytes == 42
