package io.cireport

import com.cloudbees.groovy.cps.NonCPS

/**
 * Tells apart the exceptions a step can throw around the ci-report command, by class name along the
 * cause chain (the classes are Jenkins' own; the library does not import them, so it needs no plugin
 * classes at compile time and works in the sandbox: Object.getClass, Class.getName and
 * Throwable.getCause are on script-security's generic whitelist).
 */
class Failures implements Serializable {

  private static final long serialVersionUID = 1L

  /** Thrown by a step that needs a workspace (sh, archiveArtifacts...) outside node/agent (workflow-step-api). */
  static final String MISSING_CONTEXT = 'org.jenkinsci.plugins.workflow.steps.MissingContextVariableException'

  /** The agent's remoting channel is closed or broke (hudson.remoting, in Jenkins core's remoting library). */
  static final List<String> CHANNEL_LOST = [
    'hudson.remoting.ChannelClosedException',
    'hudson.remoting.RemotingSystemException',
    'hudson.remoting.RequestAbortedException',
  ]

  static final String NO_NODE = 'no-node'
  static final String AGENT_LOST = 'agent-lost'
  static final String OTHER = 'other'

  /** How deep the cause chain is followed (a chain can be cyclic only by mistake, but stay bounded). */
  static final int MAX_CAUSES = 10

  /** NO_NODE, AGENT_LOST or OTHER for an exception a step threw. */
  @NonCPS
  static String kind(Throwable error) {
    Throwable t = error
    int depth = 0
    while (t != null && depth < MAX_CAUSES) {
      String name = t.getClass().getName()
      if (name == MISSING_CONTEXT) {
        return NO_NODE
      }
      if (name in CHANNEL_LOST) {
        return AGENT_LOST
      }
      t = t.getCause()
      depth++
    }
    return OTHER
  }

  /** `ClassName: message` of the exception itself, for a console line (never holds a secret: step errors only). */
  @NonCPS
  static String describe(Throwable error) {
    if (error == null) {
      return 'unknown error'
    }
    String message = error.getMessage()
    String name = error.getClass().getName()
    return message ? "${name}: ${message}".toString() : name
  }

}
