package unit

import static org.junit.Assert.assertFalse
import static org.junit.Assert.assertTrue
import static org.junit.Assert.fail

import harness.AbortException
import harness.PipelineHarness
import org.junit.Before

/** Shared set-up: a harness over the library root (the current directory) with ciReport loaded. */
abstract class StepTestBase {

  static final Map SECRETS = [
    'ci-report-api-key': 's3cr3t-api-key-value',
    'ci-report-jwt': 's3cr3t-jwt-secret-value',
    'ci-report-signature': 'whsec_c2VjcmV0LXNpZ25pbmcta2V5',
  ]

  PipelineHarness h
  Script ciReport

  @Before
  void setUpHarness() {
    h = new PipelineHarness(new File('.'))
    h.credentials.putAll(SECRETS)
    h.env.WORKSPACE = '/var/jenkins/workspace/team/app'
    h.env.WORKSPACE_TMP = '/var/jenkins/workspace/team/app@tmp'
    ciReport = h.loadVar('ciReport')
  }

  /** Runs the closure, expects error(...) and returns its message. */
  String expectError(Closure body) {
    try {
      body.call()
    } catch (AbortException e) {
      return e.message
    }
    fail('expected error(...)')
    return null
  }

  /** No sh script, label or argument of any recorded call contains a secret value. */
  void assertNoSecretInScripts() {
    h.calls.each { c ->
      String text = c.args.findAll { a -> !(a instanceof Closure) }.toString()
      SECRETS.values().each { v ->
        assertFalse("secret in ${c.name} call: ${text}".toString(), text.contains(v))
      }
    }
    h.shCalls().each { c ->
      assertFalse('sh script refers to a secret variable by interpolation', (c.script =~ /JENKINS_(API_KEY|JWT_SECRET|SIGNATURE_SECRET)/).find())
    }
  }

  void assertContainsAll(String text, List<String> parts) {
    parts.each { p -> assertTrue("expected '${p}' in: ${text}".toString(), text.contains(p)) }
  }

}
