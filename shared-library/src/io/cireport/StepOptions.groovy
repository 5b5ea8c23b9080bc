package io.cireport

import com.cloudbees.groovy.cps.NonCPS

/**
 * Defaults and validation for the ciReport steps. Pure helpers (no pipeline steps): the vars
 * script calls them and turns a non-empty list of problems into error(...).
 */
class StepOptions implements Serializable {

  private static final long serialVersionUID = 1L

  /** The ci-report version that ciReport.install() pins by default. */
  static final String DEFAULT_VERSION = '0.1.0'

  /** Credential id used when no credential option is given at all. */
  static final String DEFAULT_API_KEY_CREDENTIALS_ID = 'ci-report-api-key'

  static final List<String> CREDENTIAL_OPTIONS = ['apiKeyCredentialsId', 'jwtCredentialsId', 'signatureCredentialsId']

  static final List<String> BUILD_RESULTS = Contract.BUILD_RESULTS

  static final List<String> IMAGE_PUSH_MODES = ['direct', 'kubernetes']

  @NonCPS
  static Map callbackDefaults() {
    return [
      status: null,                 // default: currentBuild.currentResult
      durationMs: null,             // default: currentBuild.duration
      since: null,                  // default: currentBuild.startTimeInMillis
      runId: null,                  // default: env.RUN_ID
      url: null,                    // default: CI_REPORT_URL / API_CALLBACK_URL from the environment
      junit: [],
      statusStyle: null,
      caseMap: null,
      resultFile: 'ci-report/callback.json',
      archive: true,
      failOnError: false,
      unstableOnError: false,
      dryRun: false,
      dryRunOutput: 'ci-report/callback-dry-run.json',
      apiKeyCredentialsId: DEFAULT_API_KEY_CREDENTIALS_ID,
      jwtCredentialsId: null,
      signatureCredentialsId: null,
      // Declarative post runs inside options { timeout() }: once it fires, post has the timeout step's 60 s
      // grace. These bound the callback well inside it (POST_GRACE_BUDGET_SECONDS); the outbox and the archived
      // result file carry the rest. null: ci-report's own default (300 s, 8 attempts, 10 s / 30 s).
      deadlineSeconds: 30,
      maxAttempts: 3,
      connectTimeoutSeconds: 5,
      readTimeoutSeconds: 10,
      description: false,           // true: one summary line in currentBuild.description
      extraArgs: [],
      cliPath: 'ci-report',
    ]
  }

  /**
   * What the callback may spend in the worst case must fit the 60 s that Jenkins' timeout step leaves a
   * Declarative post after options { timeout() } fired (workflow-basic-steps TimeoutStepExecution GRACE_PERIOD),
   * with room for archiveArtifacts and the JVM start of ci-report.
   */
  static final int POST_GRACE_SECONDS = 60
  static final int POST_GRACE_BUDGET_SECONDS = 50

  /**
   * Worst case of a callback with these options, in seconds: ci-report starts no attempt after the deadline,
   * and one attempt lasts at most connect + read timeout; plus the outbox flush budget it spends first (5 s).
   * null when a bound is left to ci-report's defaults (then nothing is promised).
   */
  @NonCPS
  @SuppressWarnings('NoDouble')  // whole seconds are compared; a double sum keeps to whitelisted calls
  static Long callbackWorstCaseSeconds(Map c) {
    if (c.deadlineSeconds == null || c.connectTimeoutSeconds == null || c.readTimeoutSeconds == null) {
      return null
    }
    double total = number(c.deadlineSeconds) + number(c.connectTimeoutSeconds) + number(c.readTimeoutSeconds) +
      FLUSH_BUDGET_SECONDS
    return Math.ceil(total).longValue()
  }

  /** ci-report's CI_REPORT_FLUSH_BUDGET default: what it spends resending older outbox entries first. */
  static final int FLUSH_BUDGET_SECONDS = 5

  @NonCPS
  static Map imagePushDefaults() {
    return [
      mode: 'kubernetes',
      context: '.',
      dockerfile: 'Dockerfile',
      destinations: [],
      timeout: 'auto',
      report: 'ci-report/image-push.json',
      bandwidth: null,
      timeoutCap: null,             // seconds 'auto' never exceeds (--timeout-cap): the stage's own timeout()
      skipIfNoDockerfile: false,
      executor: null,
      workdir: null,                // split mode: <WORKSPACE_TMP>/ci-report-image, else '.ci-report'
      watch: true,                  // split mode: ci-report image-watch beside the kaniko step (parallel)
      timeoutMarginSeconds: 120,
      archive: true,
      extraArgs: [],
      pythonContainer: 'python',
      kanikoContainer: 'kaniko',
      cliPath: 'ci-report',
    ]
  }

  @NonCPS
  static Map installDefaults() {
    return [
      version: DEFAULT_VERSION,
      // where ci-report comes from: exactly one of indexUrl, wheelUrl (indexUrl may add the index for the
      // dependencies) or wheelhouse. No default: no ci-report is published on the public PyPI, and whoever
      // registers the name there would run in every build.
      indexUrl: null,
      credentialsId: null,          // username/password credential: the login for indexUrl
      wheelUrl: null,
      sha256: null,                 // the wheel's sha256 (wheelUrl): pip checks it
      wheelhouse: null,             // a folder of wheels on the agent: nothing is downloaded
      requirementsFile: null,       // default: the hash-pinned requirements this library ships for version
      python: 'python3',
      venvDir: null,                // default: <WORKSPACE_TMP or WORKSPACE@tmp>/tools/ci-report-<version>
    ]
  }

  /** The library resource with the hash-pinned dependencies of one ci-report version. */
  @NonCPS
  static String requirementsResource(String version) {
    return "io/cireport/install/requirements-${version}.txt".toString()
  }

  /** Defaults merged with the caller's options (a new map; the caller's map is not modified). */
  @NonCPS
  static Map merge(Map defaults, Map given) {
    Map merged = [:]
    merged.putAll(defaults)
    Map user = given ?: [:]
    if (defaults.containsKey('apiKeyCredentialsId') && CREDENTIAL_OPTIONS.any { k -> user.containsKey(k) }) {
      // The default API key id applies only when no credential option is given at all.
      merged.apiKeyCredentialsId = null
    }
    user.each { k, v -> merged[k.toString()] = v }
    return merged
  }

  /** Keys of given that the step does not know, sorted. */
  @NonCPS
  static List<String> unknownKeys(Map defaults, Map given) {
    return (given ?: [:]).keySet().collect { k -> k.toString() }.findAll { k -> !defaults.containsKey(k) }.sort()
  }

  @NonCPS
  static List<String> validateCallback(Map given) {
    Map defaults = callbackDefaults()
    List<String> problems = unknown('callback', defaults, given)
    Map c = merge(defaults, given)
    if (c.status != null && !(c.status.toString().toUpperCase() in BUILD_RESULTS)) {
      problems << "ciReport.callback: status '${c.status}' is not one of ${BUILD_RESULTS.join(', ')}".toString()
    }
    if (c.statusStyle != null && !(c.statusStyle.toString() in ['default', 'extended'])) {
      problems << "ciReport.callback: statusStyle must be 'default' or 'extended', not '${c.statusStyle}'".toString()
    }
    problems.addAll(checkNumber('callback', 'durationMs', c.durationMs))
    problems.addAll(checkNumber('callback', 'since', c.since))
    ['deadlineSeconds', 'maxAttempts', 'connectTimeoutSeconds', 'readTimeoutSeconds'].each { k ->
      problems.addAll(Contract.check('callback', k, c[k]))
    }
    problems.addAll(checkStringList('callback', 'junit', c.junit, true))
    problems.addAll(checkStringList('callback', 'extraArgs', c.extraArgs, false))
    if (!c.dryRun && !CREDENTIAL_OPTIONS.any { k -> c[k] }) {
      problems << ('ciReport.callback: no credentials: set at least one of apiKeyCredentialsId, jwtCredentialsId, ' +
        'signatureCredentialsId (ids of Jenkins "Secret text" credentials), or dryRun: true')
    }
    return problems
  }

  @NonCPS
  static List<String> validateImagePush(Map given) {
    Map defaults = imagePushDefaults()
    List<String> problems = unknown('imagePush', defaults, given)
    Map c = merge(defaults, given)
    if (!(c.mode in IMAGE_PUSH_MODES)) {
      problems << "ciReport.imagePush: mode must be 'direct' or 'kubernetes', not '${c.mode}'".toString()
    }
    problems.addAll(checkStringList('imagePush', 'destinations', c.destinations, true))
    if (!destinationList(c.destinations)) {
      problems << ('ciReport.imagePush: destinations is required (a list of image references, ' +
        "e.g. ['registry.example/team/app:1.0'])")
    }
    if (c.timeout == null) {
      problems << "ciReport.imagePush: timeout must be 'auto' or a number of seconds, not null".toString()
    }
    ['timeout', 'bandwidth', 'timeoutCap'].each { k ->
      problems.addAll(Contract.check('imagePush', k, c[k]))
    }
    problems.addAll(checkNumber('imagePush', 'timeoutMarginSeconds', c.timeoutMarginSeconds))
    problems.addAll(checkStringList('imagePush', 'extraArgs', c.extraArgs, false))
    ['context', 'dockerfile', 'report', 'cliPath', 'pythonContainer', 'kanikoContainer'].each { k ->
      if (!c[k]) {
        problems << "ciReport.imagePush: ${k} must not be empty".toString()
      }
    }
    return problems
  }

  @NonCPS
  static List<String> validateInstall(Map given) {
    Map defaults = installDefaults()
    List<String> problems = unknown('install', defaults, given)
    Map c = merge(defaults, given)
    if (!(c.version?.toString() ==~ /[0-9A-Za-z.+!-]+/)) {
      problems << "ciReport.install: version must be a plain version such as '${DEFAULT_VERSION}', not '${c.version}'".toString()
    }
    if (!c.python) {
      problems << 'ciReport.install: python must not be empty'
    }
    if (!c.indexUrl && !c.wheelUrl && !c.wheelhouse) {
      problems << ('ciReport.install: say where ci-report comes from: indexUrl (your package index; credentialsId ' +
        'for its login), wheelUrl (a ci-report wheel; sha256 to check it) or wheelhouse (a folder of wheels on ' +
        'the agent). There is no default: no ci-report is published on the public PyPI, and whoever registered ' +
        'the name there would run in your builds')
    }
    if (c.wheelhouse && (c.indexUrl || c.wheelUrl)) {
      problems << 'ciReport.install: wheelhouse installs offline; give it alone, without indexUrl or wheelUrl'
    }
    ['indexUrl', 'wheelUrl'].each { k ->
      String url = c[k] ? c[k].toString() : ''
      if (url && !(url ==~ /(?i)https?:\/\/[^\s\/]+(\/\S*)?/)) {
        problems << "ciReport.install: ${k} must be an http(s) URL, not '${url}'".toString()
      } else if (url ==~ /(?i)[a-z]+:\/\/[^\/]*@.*/) {
        problems << ("ciReport.install: ${k} must not carry a login (it would be written in the Jenkinsfile and " +
          'the build\'s environment): store it as a username/password credential and pass credentialsId').toString()
      }
    }
    if (c.credentialsId && !c.indexUrl) {
      problems << 'ciReport.install: credentialsId is the login for indexUrl; give indexUrl too'
    }
    if (c.sha256 && !(c.sha256.toString() ==~ /[0-9a-fA-F]{64}/)) {
      problems << 'ciReport.install: sha256 must be the 64 hex digits of the wheel\'s SHA-256'
    }
    if (c.sha256 && !c.wheelUrl) {
      problems << 'ciReport.install: sha256 checks the wheel of wheelUrl; give wheelUrl too'
    }
    return problems
  }

  /**
   * A validated numeric option (a Number or a String of digits) as a double. Number.doubleValue and
   * String.toDouble are on script-security's whitelist; `as BigDecimal` coercions are not used.
   */
  @NonCPS
  @SuppressWarnings('NoDouble')  // BigDecimal from a String (new BigDecimal(String)) is off the whitelist
  static double number(Object value) {
    return value instanceof Number ? ((Number) value).doubleValue() : value.toString().trim().toDouble()
  }

  /** A String or a List of Strings as a List (the glob and destination options accept both). */
  @NonCPS
  static List<String> stringList(Object value) {
    if (value == null) {
      return []
    }
    if (value instanceof Collection) {
      return value.collect { v -> v.toString() }
    }
    return [value.toString()]
  }

  @NonCPS
  static List<String> destinationList(Object value) {
    return stringList(value).findAll { d -> d.trim() }
  }

  /** True when the output of `ci-report --version` names exactly this version. */
  @NonCPS
  static boolean versionMatches(String output, String version) {
    return (output ?: '').readLines().any { line -> line.trim() == "ci-report ${version}".toString() }
  }

  @NonCPS
  private static List<String> unknown(String step, Map defaults, Map given) {
    List<String> keys = unknownKeys(defaults, given)
    if (!keys) {
      return []
    }
    String known = defaults.keySet().sort().join(', ')
    return ["ciReport.${step}: unknown option(s) ${keys.join(', ')}; known options: ${known}".toString()]
  }

  @NonCPS
  private static List<String> checkNumber(String step, String key, Object value) {
    if (value == null || value instanceof Number || value.toString() ==~ /[0-9]+(\.[0-9]+)?/) {
      return []
    }
    return ["ciReport.${step}: ${key} must be a number, not '${value}'".toString()]
  }

  @NonCPS
  private static List<String> checkStringList(String step, String key, Object value, boolean stringAllowed) {
    if (value == null || value instanceof Collection) {
      return []
    }
    if (stringAllowed && value instanceof CharSequence) {
      return []
    }
    String hint = key == 'extraArgs' ? " (one list element per argument, e.g. ['--flag', 'value'])" : ''
    return ["ciReport.${step}: ${key} must be a list${stringAllowed ? ' or a string' : ''}${hint}".toString()]
  }

}
