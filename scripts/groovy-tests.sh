#!/usr/bin/env bash
# Checks for the Jenkins side of ci-report (shared-library/ and Jenkinsfile.example):
#   1. parse every Groovy file and Jenkinsfile.example with Groovy 2.4 (the parser Jenkins uses),
#   2. compile shared-library/src,
#   3. run the pipeline-harness unit tests (shared-library/test/run.groovy),
#   4. npm-groovy-lint 16.1.1 (--noserver, Java 17): vars/ and src/ without warnings, the rest without errors.
#
# Needs: Debian's groovy (apt-get install -y groovy), a Java 17 JDK, node/npm. It installs nothing
# from apt; npm-groovy-lint is installed on first use into $NPM_GROOVY_LINT_PREFIX
# (default ~/.cache/ci-report/npm-groovy-lint, outside the repository).
# Env: JAVA_HOME (default: the first /usr/lib/jvm/java-17-*), NPM_GROOVY_LINT_PREFIX,
#      CI_REPORT_SKIP_GROOVY_LINT=1 to skip step 4.
# Exit status: 0 when every step passed, 1 otherwise, 2 when a required tool is missing.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LIB="$ROOT/shared-library"
LINT_VERSION=16.1.1
LINT_PREFIX="${NPM_GROOVY_LINT_PREFIX:-${XDG_CACHE_HOME:-$HOME/.cache}/ci-report/npm-groovy-lint}"

java17_home() {
  local candidate
  for candidate in "${JAVA_HOME:-}" /usr/lib/jvm/java-17-openjdk-amd64 /usr/lib/jvm/java-17-openjdk-arm64 /usr/lib/jvm/java-17-*; do
    if [ -n "$candidate" ] && [ -x "$candidate/bin/java" ] &&
       "$candidate/bin/java" -version 2>&1 | grep -q 'version "17\.'; then
      echo "$candidate"
      return 0
    fi
  done
  return 1
}

if ! command -v groovy >/dev/null 2>&1; then
  echo "groovy-tests: groovy is not on PATH; install Debian's groovy 2.4.21: apt-get install -y groovy" >&2
  exit 2
fi
if ! JAVA17="$(java17_home)"; then
  echo "groovy-tests: no Java 17 found (set JAVA_HOME to a Java 17 JDK, e.g. apt-get install -y openjdk-17-jdk-headless)" >&2
  exit 2
fi
export JAVA_HOME="$JAVA17"

failures=()
run_step() {
  local name="$1"
  shift
  echo "== ${name}"
  if "$@"; then
    echo "-- ok: ${name}"
  else
    echo "-- FAILED: ${name}"
    failures+=("$name")
  fi
}

parse_all() {
  local files=()
  mapfile -t files < <(cd "$LIB" && find vars src test -name '*.groovy' | sort)
  (cd "$LIB" && groovy test/tools/parse_only.groovy "${files[@]}" "$ROOT/Jenkinsfile.example")
}

compile_src() {
  local out rc
  out="$(mktemp -d)"
  (cd "$LIB" && groovyc -cp test/stubs -d "$out" $(find src test/stubs -name '*.groovy' | sort))
  rc=$?
  rm -rf "$out"
  return "$rc"
}

unit_tests() {
  (cd "$LIB" && groovy test/run.groovy)
}

lint_bin() {
  local bin="$LINT_PREFIX/node_modules/.bin/npm-groovy-lint"
  local pkg="$LINT_PREFIX/node_modules/npm-groovy-lint/package.json"
  if [ ! -x "$bin" ] || ! grep -q "\"version\": \"${LINT_VERSION}\"" "$pkg" 2>/dev/null; then
    echo "installing npm-groovy-lint@${LINT_VERSION} into ${LINT_PREFIX}" >&2
    mkdir -p "$LINT_PREFIX"
    npm install --prefix "$LINT_PREFIX" --no-audit --no-fund --no-save --loglevel=error \
      "npm-groovy-lint@${LINT_VERSION}" >&2 || return 1
  fi
  echo "$bin"
}

lint() {
  local bin tmp rc=0
  bin="$(lint_bin)" || return 1
  local common=(--noserver --javaexecutable "$JAVA17/bin/java" --output txt)
  # The library's own code: no warnings.
  (cd "$LIB" && NO_COLOR=1 "$bin" "${common[@]}" --failon warning vars src) || rc=1
  # Tests, tools and the example pipeline: no errors.
  tmp="$(mktemp -d)"
  cp "$LIB/.groovylintrc.json" "$tmp/"
  cp "$ROOT/Jenkinsfile.example" "$tmp/Jenkinsfile"
  cp -r "$LIB/test" "$tmp/test"
  (cd "$tmp" && NO_COLOR=1 "$bin" "${common[@]}" --failon error .) || rc=1
  rm -rf "$tmp"
  return "$rc"
}

run_step "parse (groovy 2.4)" parse_all
run_step "compile src" compile_src
run_step "harness unit tests" unit_tests
if [ "${CI_REPORT_SKIP_GROOVY_LINT:-}" = "1" ]; then
  echo "== npm-groovy-lint skipped (CI_REPORT_SKIP_GROOVY_LINT=1)"
else
  run_step "npm-groovy-lint ${LINT_VERSION}" lint
fi

if [ "${#failures[@]}" -gt 0 ]; then
  echo "groovy-tests: FAILED: ${failures[*]}"
  exit 1
fi
echo "groovy-tests: all checks passed"
