// ciReport: Jenkins steps around the ci-report CLI (see ciReport.txt for every option).
//   ciReport.callback(...)   report JUnit results to the platform (use in post { always { } })
//   ciReport.imagePush(...)  build and push an image with Kaniko, with a diagnosis on failure
//   ciReport.install(...)    install a pinned ci-report into a venv on the agent; returns its path
//
// Secrets reach ci-report only as environment variables bound by withCredentials; every sh script
// is a plain String with shell-quoted, non-secret values. Logic that is not a pipeline step lives in
// src/io/cireport (pure @NonCPS helpers).
import io.cireport.Commands
import io.cireport.Failures
import io.cireport.Reports
import io.cireport.StepOptions

/**
 * Sends the callback; returns ci-report's exit code (0 delivered), or NO_NODE_RC / AGENT_LOST_RC when it could
 * not run. Never fails the build unless asked (failOnError / unstableOnError), and always rethrows an abort.
 */
def callback(Map options = [:]) {
  failOnProblems(StepOptions.validateCallback(options))
  Map c = StepOptions.merge(StepOptions.callbackDefaults(), options)
  c.status = (c.status ?: currentBuild.currentResult).toString().toUpperCase()
  if (c.durationMs == null) {
    c.durationMs = currentBuild.duration
  }
  if (c.since == null) {
    c.since = currentBuild.startTimeInMillis
  }
  if (c.runId == null) {
    c.runId = env.RUN_ID
  }
  if (!env.WORKSPACE) {
    // `agent none` + post, or a scripted call outside node: sh and archiveArtifacts would throw
    // MissingContextVariableException and fail the build. Nothing was sent.
    return callbackOutcome(c, Reports.NO_NODE_RC, Reports.noNodeMessage(null), false)
  }
  String command = Commands.callback(c)
  List<String> envVars = Commands.callbackEnv(c)
  List bindings = []
  if (c.apiKeyCredentialsId) {
    bindings << string(credentialsId: c.apiKeyCredentialsId.toString(), variable: 'JENKINS_API_KEY')
  }
  if (c.jwtCredentialsId) {
    bindings << string(credentialsId: c.jwtCredentialsId.toString(), variable: 'JENKINS_JWT_SECRET')
  }
  if (c.signatureCredentialsId) {
    bindings << string(credentialsId: c.signatureCredentialsId.toString(), variable: 'JENKINS_SIGNATURE_SECRET')
  }

  int rc = 0
  String message = null
  InterruptedException interruption = null
  try {
    withEnv(envVars) {
      withCredentials(bindings) {
        rc = sh(label: 'ci-report: callback', script: command, returnStatus: true)
      }
    }
    message = Reports.callbackMessage(rc)
  } catch (InterruptedException e) {
    // An abort or a timeout: archive what ci-report wrote, then rethrow this very exception (below).
    interruption = e
  // groovylint-disable-next-line CatchException
  } catch (Exception e) {
    String kind = Failures.kind(e)
    if (kind == Failures.NO_NODE) {
      rc = Reports.NO_NODE_RC
      message = Reports.noNodeMessage(Failures.describe(e))
    } else if (kind == Failures.AGENT_LOST) {
      rc = Reports.AGENT_LOST_RC
      message = Reports.agentLostMessage(Failures.describe(e))
    } else {
      // Typically withCredentials with a credential id that does not exist: reported like a configuration
      // error (exit 78), so that it does not fail the build unless asked.
      rc = 78
      message = "ci-report callback: could not run the callback: ${Failures.describe(e)} (configuration error, " +
        'exit 78; check apiKeyCredentialsId, jwtCredentialsId and signatureCredentialsId)'
    }
  }
  boolean canArchive = rc != Reports.NO_NODE_RC && rc != Reports.AGENT_LOST_RC
  String written = c.dryRun ? c.dryRunOutput.toString() : c.resultFile.toString()
  if (c.archive && written != '-' && canArchive) {
    InterruptedException late = archiveGuarded(written)
    interruption = interruption ?: late
  }
  if (interruption != null) {
    throw interruption
  }
  return callbackOutcome(c, rc, message, c.archive && written != '-' && canArchive)
}

/** Internal: the console lines, build description and build result for a callback's outcome; returns rc. */
def callbackOutcome(Map c, int rc, String message, boolean archived) {
  String written = c.dryRun ? c.dryRunOutput.toString() : c.resultFile.toString()
  if (archived && env.BUILD_URL) {
    // Jenkins links a URL only when it stands alone (core's UrlAnnotator): its own line, no punctuation.
    echo("ci-report callback: result archived as ${written}:")
    echo(Reports.artifactUrl(env.BUILD_URL.toString(), written))
  }
  if (c.description) {
    String line = Reports.callbackSummary(rc)
    String before = currentBuild.description ? currentBuild.description.toString() : ''
    currentBuild.description = before ? "${before}\n${line}".toString() : line
  }
  if (message) {
    if (c.failOnError) {
      error(message)
    }
    if (c.unstableOnError) {
      unstable(message)
    } else {
      echo("[WARNING] ${message}")
    }
  }
  return rc
}

/**
 * Internal: archiveArtifacts that never fails the build. Returns an interruption that arrived meanwhile (the
 * caller rethrows the first one it saw), or null; any other error is only a warning.
 */
def archiveGuarded(String artifacts) {
  try {
    archiveArtifacts(artifacts: artifacts, allowEmptyArchive: true)
  } catch (InterruptedException e) {
    return e
  // groovylint-disable-next-line CatchException
  } catch (Exception e) {
    echo("[WARNING] ci-report: could not archive ${artifacts}: ${Failures.describe(e)}")
  }
  return null
}

/** Builds and pushes an image (mode 'kubernetes': split over the python and kaniko containers; 'direct'). */
def imagePush(Map options = [:]) {
  failOnProblems(StepOptions.validateImagePush(options))
  Map c = StepOptions.merge(StepOptions.imagePushDefaults(), options)
  if (c.mode == 'direct') {
    return imagePushDirect(c)
  }
  return imagePushSplit(c)
}

/** Internal: direct mode, ci-report and the executor in the current container. */
def imagePushDirect(Map c) {
  clearOutputs([c.report.toString()])
  int rc = sh(label: 'ci-report: image push', script: Commands.image('image-push', c), returnStatus: true)
  archiveReport(c, c.report.toString())
  if (rc != 0) {
    failWithDiagnosis(rc, c.report.toString())
  }
  return rc
}

/** Internal: split mode, image-plan (python) -> generated script (kaniko) -> image-diagnose (python). */
def imagePushSplit(Map c) {
  c.workdir = Commands.workdir(c.workdir, env.WORKSPACE_TMP)
  String planFile = Commands.planFile(c)
  clearOutputs([c.report.toString(), planFile])
  int planRc = 0
  container(c.pythonContainer.toString()) {
    // returnStatus, not returnStdout: when preflight stops the run, image-plan exits 1 with an empty stdout
    // and writes only the report, whose diagnosis is the error message. On success it writes planFile.
    planRc = sh(label: 'ci-report: image plan', script: Commands.image('image-plan', c), returnStatus: true)
  }
  if (planRc != 0) {
    archiveReport(c, c.report.toString())
    failWithDiagnosis(planRc, c.report.toString())
  }
  Map plan = Reports.parsePlan(fileExists(planFile) ? readFile(planFile) : null)
  if (plan.error) {
    error("${plan.error} (${planFile})".toString())
  }
  String report = (plan.report ?: c.report).toString()
  if (plan.skipped) {
    // image-plan already wrote the 'skipped' report; there is nothing to build.
    echo("ci-report: no Dockerfile, image push skipped (see ${report})")
    archiveReport(c, report)
    return 0
  }
  // The script runs the executor under `timeout -k killGrace timeoutSeconds`: the Jenkins timeout leaves
  // room for both, plus the margin. timeout(time:) is an int parameter of the step.
  int limit = ((long) plan.timeoutSeconds + (long) plan.killGraceSeconds + StepOptions.number(c.timeoutMarginSeconds)).intValue()
  // One GString: GString.plus(GString) is not on script-security's whitelist (only GString.plus(String)).
  String planned = "planned timeout ${plan.timeoutSeconds} s, Jenkins timeout ${limit} s"
  echo("ci-report: running ${plan.script} in container '${c.kanikoContainer}' (${planned})")
  String planPath = (plan.plan ?: planFile).toString()
  InterruptedException interruption = null
  Integer kanikoRc = null
  Throwable agentLost = null
  // image-watch stops by itself when this run's rc file appears. When the kaniko step returns without one (the
  // script never ran, e.g. durable-task's exit 127), the kaniko branch ends the parallel (failFast) so the stage
  // does not wait out the watch's deadline.
  boolean kanikoEnded = false
  String rcFile = plan.rcFile ? plan.rcFile.toString() : null
  Closure kaniko = {
    try {
      timeout(time: limit, unit: 'SECONDS') {
        // The Kaniko debug image has its shell only under /busybox (as in the kubernetes plugin's Kaniko examples).
        container(name: c.kanikoContainer.toString(), shell: Commands.KANIKO_SHELL) {
          kanikoRc = sh(label: 'ci-report: kaniko', script: Commands.kanikoRun(plan.script.toString()),
                        returnStatus: true)
        }
      }
    } catch (InterruptedException e) {
      // Jenkins timeout or abort: still diagnose what the log shows, then rethrow.
      interruption = interruption ?: e
      kanikoEnded = true
    // groovylint-disable-next-line CatchException
    } catch (Exception e) {
      if (Failures.kind(e) != Failures.AGENT_LOST) {
        throw e
      }
      agentLost = e
    }
    kanikoEnded = true
    if (c.watch && rcFile && !fileExists(rcFile)) {
      error("ci-report: the kaniko step ended (exit ${kanikoRc}) without writing ${rcFile}; ${Reports.WATCH_STOP}")
    }
  }
  Closure watch = {
    try {
      container(c.pythonContainer.toString()) {
        sh(label: 'ci-report: image watch', script: Commands.imageWatch(c, planPath), returnStatus: true)
      }
    } catch (InterruptedException e) {
      if (!kanikoEnded) {  // else: stopped by the kaniko branch (failFast), not an abort of the build
        interruption = interruption ?: e
      }
    // groovylint-disable-next-line CatchException
    } catch (Exception e) {
      echo("[WARNING] ci-report: image-watch stopped: ${Failures.describe(e)} (the push goes on)")
    }
  }
  try {
    if (c.watch) {
      parallel(kaniko: kaniko, 'image-watch': watch, failFast: true)
    } else {
      kaniko.call()
    }
  } catch (InterruptedException e) {
    interruption = interruption ?: e
  // groovylint-disable-next-line CatchException
  } catch (Exception e) {
    // the kaniko branch's own error() above (the step ended without an rc file; image-diagnose says why)
    if (!kanikoEnded || !(e.message ?: '').contains(Reports.WATCH_STOP)) {
      throw e
    }
  }
  if (agentLost != null) {
    echo(Reports.kanikoAgentLostMessage(Failures.describe(agentLost)))
    throw agentLost
  }
  int rc = 0
  container(c.pythonContainer.toString()) {
    rc = sh(label: 'ci-report: image diagnose', script: Commands.imageDiagnose(c, planPath, report, kanikoRc),
            returnStatus: true)
  }
  archiveReport(c, report)
  if (interruption != null) {
    echo("ci-report: the Kaniko step was interrupted (script exit ${kanikoRc ?: 'none'}); see the diagnosis above")
    throw interruption
  }
  if (rc != 0) {
    failWithDiagnosis(rc, report)
  }
  return rc
}

/**
 * Installs ci-report into a venv unless that version is already there; returns the executable. The source
 * is explicit (indexUrl + credentialsId, wheelUrl + sha256, or wheelhouse) and the dependencies are installed
 * in pip's hash-checking mode from the requirements this library ships for the version (requirementsFile
 * to bring your own).
 */
def install(Map options = [:]) {
  failOnProblems(StepOptions.validateInstall(options))
  Map c = StepOptions.merge(StepOptions.installDefaults(), options)
  String version = c.version.toString()
  String venv = c.venvDir ? c.venvDir.toString() : null
  if (!venv) {
    String base = env.WORKSPACE_TMP ?: (env.WORKSPACE ? "${env.WORKSPACE}@tmp" : null)
    if (!base) {
      error('ciReport.install: WORKSPACE is not set; call it inside a node/agent block or pass venvDir')
    }
    venv = "${base}/tools/ci-report-${version}".toString()
  }
  List<String> envVars = ["CI_REPORT_VENV=${venv}".toString(), "CI_REPORT_VERSION=${version}".toString(),
                          "CI_REPORT_PYTHON=${c.python}".toString()]
  withEnv(envVars) {
    String current = sh(label: 'ci-report: installed version', returnStdout: true,
                        script: Commands.INSTALLED_VERSION_SCRIPT)
    if (StepOptions.versionMatches(current, version)) {
      echo("ci-report ${version} is already installed in ${venv}")
      return
    }
    String requirements = c.requirementsFile ? c.requirementsFile.toString() : "${venv}.requirements.txt".toString()
    if (!c.requirementsFile) {
      writeFile(file: requirements, text: pinnedRequirements(version))
    }
    String installer = "${venv}.install.py".toString()
    writeFile(file: installer, text: libraryResource('io/cireport/install/install.py'))
    List<String> source = ["CI_REPORT_INSTALLER=${installer}".toString(),
                           "CI_REPORT_REQUIREMENTS=${requirements}".toString()]
    ['indexUrl': 'CI_REPORT_INDEX_URL', 'wheelUrl': 'CI_REPORT_WHEEL_URL', 'sha256': 'CI_REPORT_WHEEL_SHA256',
     'wheelhouse': 'CI_REPORT_WHEELHOUSE'].each { k, name ->
      if (c[k]) {
        source << "${name}=${c[k]}".toString()
      }
    }
    withEnv(source) {
      if (c.credentialsId) {
        withCredentials([usernamePassword(credentialsId: c.credentialsId.toString(),
                                          usernameVariable: 'CI_REPORT_INDEX_USER',
                                          passwordVariable: 'CI_REPORT_INDEX_PASSWORD')]) {
          sh(label: "ci-report: install ${version}".toString(), script: Commands.INSTALL_SCRIPT)
        }
      } else {
        sh(label: "ci-report: install ${version}".toString(), script: Commands.INSTALL_SCRIPT)
      }
    }
  }
  return "${venv}/bin/ci-report".toString()
}

/** Internal: the hash-pinned dependencies this library ships for one ci-report version. */
def pinnedRequirements(String version) {
  try {
    return libraryResource(StepOptions.requirementsResource(version))
  } catch (InterruptedException e) {
    throw e
  // groovylint-disable-next-line CatchException
  } catch (Exception e) {
    error("ciReport.install: this library has no pinned requirements for ci-report ${version} ".toString() +
          "(it ships them for ${StepOptions.DEFAULT_VERSION}); ".toString() +
          'pass requirementsFile: a hash-pinned requirements file for that version on the agent ' +
          '(scripts/lock-install-requirements in the ci-report repository makes one)')
  }
}

/**
 * Internal: empties files a step reads back afterwards, so that a run which writes nothing (a usage
 * error, exit 2) never shows an earlier build's plan or diagnosis from a reused workspace.
 */
def clearOutputs(List<String> paths) {
  for (String path : paths) {
    if (fileExists(path)) {
      writeFile(file: path, text: '')
    }
  }
}

/** Internal: archives the image-push report when asked. */
def archiveReport(Map c, String report) {
  if (c.archive) {
    archiveArtifacts(artifacts: report, allowEmptyArchive: true)
  }
}

/** Internal: fails the build with the report's diagnosis summary (after printing code and fixes). */
def failWithDiagnosis(int rc, String report) {
  String text = fileExists(report) ? readFile(report) : null
  Map d = Reports.diagnosis(text)
  if (!d.summary) {
    error("ci-report image push failed with exit code ${rc} and wrote no diagnosis to ${report}")
  }
  echo("ci-report image push failed (exit ${rc}, ${d.outcome ?: 'failed'}, ${d.code ?: 'unknown'}): ${d.summary}")
  for (String fix : d.fixes) {
    echo("  fix: ${fix}")
  }
  error(d.summary.toString())
}

/** Internal: error() with every problem found in the options. */
def failOnProblems(List<String> problems) {
  if (problems) {
    error(problems.join('\n'))
  }
}
