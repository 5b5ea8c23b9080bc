package io.cireport

import com.cloudbees.groovy.cps.NonCPS

/**
 * Builds the ci-report command lines the steps run. Every value is shell-quoted; none is a secret
 * (secrets are only ever environment variables bound by withCredentials).
 */
class Commands implements Serializable {

  private static final long serialVersionUID = 1L

  /** `ci-report callback --strict ...` from merged options whose dynamic defaults are resolved. */
  @NonCPS
  static String callback(Map c) {
    List<String> w = [c.cliPath.toString(), 'callback', '--strict']
    StepOptions.stringList(c.junit).each { g -> w.addAll(['--junit', g]) }
    if (c.runId != null && c.runId.toString()) {
      w.addAll(['--run-id', c.runId.toString()])
    }
    if (c.status != null) {
      w.addAll(['--build-result', c.status.toString().toUpperCase()])
    }
    if (c.durationMs != null) {
      w.addAll(['--duration-ms', wholeNumber(c.durationMs)])
    }
    if (c.since != null) {
      w.addAll(['--since', wholeNumber(c.since)])
    }
    if (c.statusStyle) {
      w.addAll(['--status-style', c.statusStyle.toString()])
    }
    if (c.caseMap) {
      w.addAll(['--case-map', c.caseMap.toString()])
    }
    if (c.dryRun) {
      w.addAll(['--dry-run', '--output', c.dryRunOutput.toString()])
    } else {
      w.addAll(['--result-file', c.resultFile.toString()])
    }
    if (c.deadlineSeconds != null) {
      w.addAll(['--deadline', c.deadlineSeconds.toString()])
    }
    if (c.maxAttempts != null) {
      w.addAll(['--max-attempts', c.maxAttempts.toString()])
    }
    w.addAll(StepOptions.stringList(c.extraArgs))
    return Shell.join(w)
  }

  /**
   * The callback's environment (withEnv): the URL when given, and the per-attempt connect and read timeouts
   * (ci-report has no flags for them; CI_REPORT_CONNECT_TIMEOUT / CI_REPORT_READ_TIMEOUT are its settings).
   */
  @NonCPS
  static List<String> callbackEnv(Map c) {
    List<String> e = []
    if (c.url) {
      e << "CI_REPORT_URL=${c.url}".toString()
    }
    if (c.connectTimeoutSeconds != null) {
      e << "CI_REPORT_CONNECT_TIMEOUT=${c.connectTimeoutSeconds}".toString()
    }
    if (c.readTimeoutSeconds != null) {
      e << "CI_REPORT_READ_TIMEOUT=${c.readTimeoutSeconds}".toString()
    }
    return e
  }

  /**
   * A Number or a numeric String (validated by StepOptions) as whole digits, truncated like the CLI's int():
   * 120000.9 -> 120000. Only whitelisted calls (Number.longValue, String.indexOf/substring) so that the
   * library also runs in the script-security sandbox.
   */
  @NonCPS
  static String wholeNumber(Object value) {
    if (value instanceof Number) {
      return "${((Number) value).longValue()}".toString()
    }
    String s = value.toString().trim()
    int dot = s.indexOf('.')
    return dot >= 0 ? s.substring(0, dot) : s
  }

  /** The Kaniko debug image's shell: the `container` step's shell and the one that runs the generated script. */
  static final String KANIKO_SHELL = '/busybox/sh'

  /**
   * `ci-report image-push ...` (direct mode) or `ci-report image-plan ... --workdir <dir>` (split mode; the
   * step reads the plan from <workdir>/image-plan.json, not from `--json` stdout, so that a preflight failure,
   * exit 1 with an empty stdout, still ends with the report's diagnosis).
   */
  @NonCPS
  static String image(String subcommand, Map c) {
    List<String> w = [c.cliPath.toString(), subcommand,
                      '--context', c.context.toString(), '--dockerfile', c.dockerfile.toString()]
    StepOptions.destinationList(c.destinations).each { d -> w.addAll(['--destination', d]) }
    w.addAll(['--timeout', c.timeout.toString(), '--report', c.report.toString()])
    if (c.bandwidth != null) {
      w.addAll(['--bandwidth', c.bandwidth.toString()])
    }
    if (c.timeoutCap != null) {
      w.addAll(['--timeout-cap', c.timeoutCap.toString()])
    }
    if (c.executor) {
      w.addAll(['--executor', c.executor.toString()])
    }
    if (c.skipIfNoDockerfile) {
      w << '--skip-if-no-dockerfile'
    }
    if (subcommand == 'image-plan') {
      w.addAll(['--workdir', c.workdir.toString()])
    }
    List<String> extra = StepOptions.stringList(c.extraArgs)
    if (extra) {
      w << '--'
      w.addAll(extra)
    }
    return Shell.join(w)
  }

  /** Path of the plan JSON that image-plan writes into its work directory. */
  @NonCPS
  static String planFile(Map c) {
    return "${c.workdir.toString().replaceAll('/+$', '')}/image-plan.json".toString()
  }

  /**
   * `ci-report image-diagnose --plan <plan> --report <report> [--step-exit N]` (plan: the `plan` path image-plan
   * wrote). stepExit: the exit status the kaniko step returned (sh returnStatus), null when it never returned
   * (interrupted); with it image-diagnose refuses an rc file that disagrees and says when the script never ran.
   */
  @NonCPS
  static String imageDiagnose(Map c, String plan, String report, Integer stepExit = null) {
    List<String> w = [c.cliPath.toString(), 'image-diagnose', '--plan', plan, '--report', report]
    if (stepExit != null) {
      w.addAll(['--step-exit', stepExit.toString()])
    }
    return Shell.join(w)
  }

  /** `ci-report image-watch --plan <plan>`: heartbeats beside the kaniko step; it stops by itself. */
  @NonCPS
  static String imageWatch(Map c, String plan) {
    return Shell.join([c.cliPath.toString(), 'image-watch', '--plan', plan])
  }

  /** The split-mode work folder: the workdir option, else <WORKSPACE_TMP>/ci-report-image (outside the build
   * context, as image-plan's own default), else '.ci-report'. */
  @NonCPS
  static String workdir(Object option, Object workspaceTmp) {
    if (option) {
      return option.toString()
    }
    return workspaceTmp ? "${workspaceTmp.toString().replaceAll('/+$', '')}/ci-report-image".toString() : '.ci-report'
  }

  /** The Kaniko-side command: the generated script run by busybox sh (the debug image has no other shell). */
  @NonCPS
  static String kanikoRun(String script) {
    return Shell.join([KANIKO_SHELL, script])
  }

  /** Prints the installed version, or nothing (install step; values come from withEnv). */
  static final String INSTALLED_VERSION_SCRIPT = '"$CI_REPORT_VENV/bin/ci-report" --version 2>/dev/null || true'

  /**
   * Creates the venv, then runs the library's install.py with the venv's Python: the hash-pinned
   * dependencies first (pip --require-hashes), then ci-report itself from the one source given, then
   * pip check. Single-quoted on purpose: every value comes from the environment (CI_REPORT_VENV,
   * CI_REPORT_PYTHON, CI_REPORT_INSTALLER and what install.py reads), so `sh -x` prints no value and no
   * credential.
   */
  static final String INSTALL_SCRIPT = '''\
if [ -d "$CI_REPORT_VENV" ] && [ -n "$(ls -A "$CI_REPORT_VENV")" ] && [ ! -f "$CI_REPORT_VENV/pyvenv.cfg" ]; then
  echo "ciReport.install: $CI_REPORT_VENV exists and is not a Python venv; refusing to replace it" >&2
  exit 1
fi
if ! command -v "$CI_REPORT_PYTHON" >/dev/null 2>&1; then
  echo "ciReport.install: '$CI_REPORT_PYTHON' is not on this agent's PATH, so ci-report cannot be installed." >&2
  echo "  fix: use an agent (or container) with Python 3.9+ (Debian/Ubuntu: apt-get install -y python3 python3-venv)," >&2
  echo "  or pass python: '/path/to/python3' to ciReport.install()" >&2
  exit 127
fi
mkdir -p "$(dirname "$CI_REPORT_VENV")"
if ! "$CI_REPORT_PYTHON" -m venv --clear "$CI_REPORT_VENV"; then
  echo "ciReport.install: '$CI_REPORT_PYTHON -m venv' could not create $CI_REPORT_VENV (see the lines above)." >&2
  echo "  fix: Debian and Ubuntu ship venv apart from Python: apt-get install -y python3-venv on the agent image," >&2
  echo "  or pass python: the path of a Python 3.9+ that has the venv and ensurepip modules" >&2
  exit 1
fi
"$CI_REPORT_VENV/bin/python" "$CI_REPORT_INSTALLER" || exit 1
"$CI_REPORT_VENV/bin/ci-report" --version
'''

}
