package io.cireport

import com.cloudbees.groovy.cps.NonCPS
import groovy.json.JsonSlurper

/**
 * Reads what ci-report writes back (plan JSON, image-push report) and words its exit codes.
 * Everything returned is a plain String/Number/List/LinkedHashMap, safe to keep across CPS steps.
 */
class Reports implements Serializable {

  private static final long serialVersionUID = 1L

  static final String PLAN_SCHEMA = 'ci-report/image-plan/v1'

  /** The end of the error() by which the kaniko branch stops the image-watch branch (parallel failFast). */
  static final String WATCH_STOP = 'stopping image-watch'

  /** ciReport.callback's return value when there is no node context: nothing ran, nothing was sent. */
  static final int NO_NODE_RC = -1

  /** ciReport.callback's return value when the agent's channel was lost: whether it was delivered is unknown. */
  static final int AGENT_LOST_RC = -2

  @NonCPS
  static String noNodeMessage(String cause) {
    return 'ci-report callback: not sent: there is no node context here (env.WORKSPACE is not set' +
      (cause ? "; ${cause}" : '') + '). Call it inside a node/agent: with `agent none` at the top, wrap it in ' +
      "node { } in post, or give the pipeline an agent. Nothing failed the build because of it."
  }

  @NonCPS
  static String agentLostMessage(String cause) {
    return "ci-report callback: the connection to the agent was lost (${cause}); this is not a configuration " +
      'error. Whether the callback was delivered is unknown: an undelivered one waits in the outbox on that ' +
      'agent (it is resent only if the agent and its outbox survive, e.g. a persistent volume on Kubernetes).'
  }

  /**
   * The agent pod went away during the Kaniko step. On Kubernetes >= 1.28 a sidecar's OOM kill or an eviction
   * ends the whole pod (the jnlp agent with it), so Kaniko's own exit is never seen.
   */
  @NonCPS
  static String kanikoAgentLostMessage(String cause) {
    return "ci-report image push: the agent was lost during the Kaniko step (${cause}). On Kubernetes the usual " +
      'causes are the kaniko container OOMKilled (Kaniko holds layers in memory while it snapshots) or the pod ' +
      "evicted for ephemeral-storage (Kaniko unpacks the base image into the container's filesystem); since " +
      'Kubernetes 1.28 either ends the whole pod. Check `kubectl describe pod` (Last State: OOMKilled, ' +
      'Reason: Evicted) and raise the kaniko container\'s memory and ephemeral-storage limits in the pod template.'
  }

  /** The one-line summary ciReport.callback(description: true) puts in currentBuild.description. */
  @NonCPS
  static String callbackSummary(int rc) {
    switch (rc) {
      case 0:
        return 'ci-report: callback delivered'
      case 75:
        return 'ci-report: callback queued in the outbox (exit 75)'
      case 65:
        return 'ci-report: callback rejected by the platform (exit 65)'
      case 78:
        return 'ci-report: callback not sent, configuration error (exit 78)'
      case NO_NODE_RC:
        return 'ci-report: callback not sent, no node context'
      case AGENT_LOST_RC:
        return 'ci-report: callback unknown, agent connection lost'
      default:
        return "ci-report: callback failed (exit ${rc})".toString()
    }
  }

  /** <BUILD_URL>artifact/<path> for an archived file (BUILD_URL ends with a slash; each path segment is encoded). */
  @NonCPS
  static String artifactUrl(String buildUrl, String path) {
    String base = buildUrl.endsWith('/') ? buildUrl : "${buildUrl}/".toString()
    List<String> parts = path.split('/').findAll { p -> p && p != '.' }.collect { p -> encodeSegment(p) }
    return "${base}artifact/${parts.join('/')}".toString()
  }

  /**
   * Percent-encodes ASCII characters that are not RFC 3986 unreserved (a space, '#', '?', '%'...), so that the
   * console's link ends where the URL ends; other characters stay as they are (Jenkins links them too).
   */
  @NonCPS
  private static String encodeSegment(String segment) {
    StringBuilder out = new StringBuilder()
    for (int i = 0; i < segment.length(); i++) {
      String ch = segment.substring(i, i + 1)
      int code = (int) segment.charAt(i)
      if (ch ==~ /[A-Za-z0-9._~-]/ || code > 0x7f) {
        out.append(ch)
      } else {
        out.append('%').append(HEX[(code >> 4) & 0xf]).append(HEX[code & 0xf])
      }
    }
    return out.toString()
  }

  private static final List<String> HEX = ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9', 'A', 'B', 'C', 'D', 'E', 'F']

  /** What a `ci-report callback --strict` exit code means; null for 0 (delivered). */
  @NonCPS
  static String callbackMessage(int rc) {
    switch (rc) {
      case 0:
        return null
      case 75:
        return 'ci-report callback: delivery failed for now (exit 75): the callback is queued in the outbox ' +
          'and is resent by the next ci-report run or `ci-report flush`'
      case 65:
        return 'ci-report callback: the receiver rejected the callback (exit 65, HTTP 4xx); it is kept in the ' +
          'outbox, so `ci-report flush` can resend it once the configuration is fixed'
      case 78:
        return 'ci-report callback: configuration error (exit 78): check the callback URL, the credentials ' +
          'and the options; the [ci-report] lines above say what is missing'
      case 70:
        return 'ci-report callback: internal error in ci-report (exit 70); the [ci-report] lines above say what ' +
          'failed, and any payload built was saved to the outbox'
      case 127:
        return 'ci-report callback: the ci-report command was not found (exit 127): install it on the agent, ' +
          'or use ciReport.install() and pass its result as cliPath'
      default:
        return "ci-report callback: ci-report exited with code ${rc}".toString()
    }
  }

  /**
   * Parses the plan JSON that `ci-report image-plan` writes to <workdir>/image-plan.json (the same JSON that
   * `--json` prints). Returns the plan as a plain map, or a map with a single key `error` describing why the
   * text is not a usable plan.
   */
  @NonCPS
  static Map parsePlan(String text) {
    String body = (text ?: '').trim()
    if (!body) {
      return [error: 'ci-report image-plan did not write a JSON plan: the plan file is empty or missing']
    }
    Object parsed
    try {
      parsed = new JsonSlurper().parseText(body)
    } catch (IllegalArgumentException e) {
      return [error: "ci-report image-plan did not write a JSON plan: ${firstLine(e.message)}".toString()]
    } catch (groovy.json.JsonException e) {
      return [error: "ci-report image-plan did not write a JSON plan: ${firstLine(e.message)}".toString()]
    }
    if (!(parsed instanceof Map)) {
      return [error: 'ci-report image-plan did not write a JSON object']
    }
    Map p = (Map) parsed
    if (p.schema != PLAN_SCHEMA) {
      return [error: "ci-report image-plan wrote schema '${p.schema}', expected '${PLAN_SCHEMA}'".toString()]
    }
    if (!p.script) {
      return [error: 'ci-report image-plan wrote a plan without a script']
    }
    if (!(p.timeoutSeconds instanceof Number) || p.timeoutSeconds <= 0) {
      return [error: "ci-report image-plan wrote an invalid timeoutSeconds '${p.timeoutSeconds}'".toString()]
    }
    if (p.killGraceSeconds != null && (!(p.killGraceSeconds instanceof Number) || p.killGraceSeconds < 0)) {
      return [error: "ci-report image-plan wrote an invalid killGraceSeconds '${p.killGraceSeconds}'".toString()]
    }
    Map plan = [:]
    ['schema', 'script', 'plan', 'logFile', 'rcFile', 'timesFile', 'report'].each { k ->
      plan[k] = p[k] == null ? null : p[k].toString()
    }
    plan.timeoutSeconds = ((Number) p.timeoutSeconds).longValue()
    plan.killGraceSeconds = p.killGraceSeconds == null ? 0L : ((Number) p.killGraceSeconds).longValue()
    plan.skipped = p.skipped == true
    return plan
  }

  /**
   * The diagnosis of an image-push report as [outcome, code, summary, fixes]; summary is null when the
   * text is not a readable report or carries no diagnosis.
   */
  @NonCPS
  static Map diagnosis(String text) {
    String body = (text ?: '').trim()
    if (!body) {
      return noDiagnosis()
    }
    Object parsed
    try {
      parsed = new JsonSlurper().parseText(body)
    } catch (IllegalArgumentException e) {
      return noDiagnosis()
    } catch (groovy.json.JsonException e) {
      return noDiagnosis()
    }
    if (!(parsed instanceof Map)) {
      return noDiagnosis()
    }
    Map r = (Map) parsed
    Map d = r.diagnosis instanceof Map ? (Map) r.diagnosis : [:]
    List<String> fixes = d.fixes instanceof Collection ? d.fixes.collect { f -> f.toString() } : []
    return [
      outcome: r.outcome?.toString(),
      code: d.code?.toString(),
      summary: d.summary ? d.summary.toString() : null,
      fixes: fixes,
    ]
  }

  /** The first line of a parser message (JsonSlurper's run over several lines). */
  @NonCPS
  private static String firstLine(String message) {
    String m = message ?: ''
    int nl = m.indexOf('\n')
    return nl >= 0 ? m.substring(0, nl) : m
  }

  @NonCPS
  private static Map noDiagnosis() {
    return [outcome: null, code: null, summary: null, fixes: []]
  }

}
