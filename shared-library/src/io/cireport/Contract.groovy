package io.cireport

import com.cloudbees.groovy.cps.NonCPS

/**
 * The library's copy of the CLI's contract (`ci-report config --json` publishes it under `contract`): the
 * build results, the timeout keywords, the number rules of the options it checks before it calls the CLI,
 * and the callback exit codes it words. tests/integration/test_library_cli_contract.py dumps this class and
 * compares it with the CLI's, and runs StepOptions' checks on the same values as the CLI's.
 */
class Contract implements Serializable {

  private static final long serialVersionUID = 1L

  /** contract.enums.buildResults (Jenkins' Result names). */
  static final List<String> BUILD_RESULTS = ['SUCCESS', 'UNSTABLE', 'FAILURE', 'ABORTED', 'NOT_BUILT']

  /** contract.enums.timeoutKeywords: words accepted by imagePush(timeout:) instead of seconds. */
  static final List<String> TIMEOUT_KEYWORDS = ['auto']

  /**
   * Step option -> the CLI setting it is passed as (contract.limits.<setting>) and the bound it must keep:
   * exclusiveMinimum (value > bound) or minimum (value >= bound); integer: whole numbers only.
   */
  static final Map<String, Map> LIMITS = [
    timeout: [setting: 'timeout', exclusiveMinimum: 0, keywords: TIMEOUT_KEYWORDS],
    bandwidth: [setting: 'bandwidth', exclusiveMinimum: 0],
    timeoutCap: [setting: 'timeout_cap', exclusiveMinimum: 0],
    deadlineSeconds: [setting: 'deadline', exclusiveMinimum: 0],
    maxAttempts: [setting: 'max_attempts', minimum: 1, integer: true],
    connectTimeoutSeconds: [setting: 'connect_timeout', exclusiveMinimum: 0],
    readTimeoutSeconds: [setting: 'read_timeout', exclusiveMinimum: 0],
  ]

  /** The `ci-report callback --strict` exit codes Reports.callbackMessage words (contract.exitCodes.callback). */
  static final List<Integer> CALLBACK_EXIT_CODES = [0, 65, 70, 75, 78]

  /** A plain number: digits with an optional fraction (what both the library and the CLI read as seconds). */
  static final String NUMBER_PATTERN = /[0-9]+(\.[0-9]+)?/

  /**
   * Problems with value for the step option key (empty: allowed; null is always allowed: ci-report's default).
   * A keyword is compared trimmed and in lower case, as the CLI does.
   */
  @NonCPS
  static List<String> check(String step, String key, Object value) {
    Map rule = LIMITS[key]
    if (value == null || rule == null) {
      return []
    }
    String text = value.toString().trim()
    List<String> keywords = (List<String>) (rule.keywords ?: [])
    if (text.toLowerCase() in keywords) {
      return []
    }
    boolean numeric = value instanceof Number || text ==~ NUMBER_PATTERN
    boolean whole = !(text.contains('.')) || !rule.integer
    if (numeric && whole && allows(rule, StepOptions.number(value))) {
      return []
    }
    return ["ciReport.${step}: ${key} must be ${ruleText(rule)}, not '${value}'".toString()]
  }

  @NonCPS
  @SuppressWarnings('NoDouble')
  private static boolean allows(Map rule, double v) {
    if (rule.exclusiveMinimum != null && !(v > StepOptions.number(rule.exclusiveMinimum))) {
      return false
    }
    return rule.minimum == null || v >= StepOptions.number(rule.minimum)
  }

  /** The rule in words, as the CLI's Limit.text() words it ("'auto' or a positive number"). */
  @NonCPS
  static String ruleText(Map rule) {
    String text
    if (rule.exclusiveMinimum != null) {
      text = rule.exclusiveMinimum == 0 ? 'a positive number' : "a number above ${rule.exclusiveMinimum}"
    } else {
      text = "${rule.minimum} or more"
    }
    if (rule.integer) {
      text = "a whole number, ${text}"
    }
    List<String> keywords = (List<String>) (rule.keywords ?: [])
    String words = keywords.collect { k -> "'${k}'".toString() }.join(' or ')
    return words ? "${words} or ${text}".toString() : text.toString()
  }

  /** This class as JSON-ready data, for the contract test. */
  @NonCPS
  static Map asMap() {
    return [buildResults: BUILD_RESULTS, timeoutKeywords: TIMEOUT_KEYWORDS, limits: LIMITS,
            callbackExitCodes: CALLBACK_EXIT_CODES]
  }

}
