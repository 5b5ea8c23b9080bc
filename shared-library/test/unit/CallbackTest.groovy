package unit

import static org.junit.Assert.assertEquals
import static org.junit.Assert.assertFalse
import static org.junit.Assert.assertNull
import static org.junit.Assert.assertSame
import static org.junit.Assert.assertTrue
import static org.junit.Assert.fail

import harness.AbortException
import harness.FlowInterruptedException
import hudson.remoting.ChannelClosedException
import io.cireport.Reports
import io.cireport.StepOptions
import org.jenkinsci.plugins.workflow.steps.MissingContextVariableException
import org.junit.Before
import org.junit.Test

class CallbackTest extends StepTestBase {

  static final String URL = 'https://platform.example/api/jenkins/callback'

  @Before
  void setUpBuild() {
    h.env.RUN_ID = '64'
    h.currentBuild.currentResult = 'UNSTABLE'
    h.currentBuild.duration = 120000L
    h.currentBuild.startTimeInMillis = 1700000000000L
  }

  @Test
  void defaultsGiveTheExactCommandAndEnvironment() {
    int rc = ciReport.callback(junit: ['build/test-results/**/*.xml', 'reports/*.xml'], url: URL)
    assertEquals(0, rc)
    List sh = h.shCalls()
    assertEquals(1, sh.size())
    assertEquals("ci-report callback --strict --junit 'build/test-results/**/*.xml' --junit 'reports/*.xml' " +
      '--run-id 64 --build-result UNSTABLE --duration-ms 120000 --since 1700000000000 ' +
      '--result-file ci-report/callback.json --deadline 30 --max-attempts 3', sh[0].script)
    assertEquals(true, sh[0].options.returnStatus)
    assertEquals('ci-report: callback', sh[0].options.label)
    assertEquals('s3cr3t-api-key-value', sh[0].env.JENKINS_API_KEY)
    assertFalse(sh[0].env.containsKey('JENKINS_JWT_SECRET'))
    assertFalse(sh[0].env.containsKey('JENKINS_SIGNATURE_SECRET'))
    assertEquals(URL, sh[0].env.CI_REPORT_URL)
    assertEquals([[artifacts: 'ci-report/callback.json', allowEmptyArchive: true]], h.callsTo('archiveArtifacts')*.args*.get(0))
    assertNull(h.currentBuild.result)
    assertEquals([], h.log)
    assertNoSecretInScripts()
  }

  @Test
  void secretsAreBoundOnlyInsideWithCredentialsAndNeverInScripts() {
    ciReport.callback(apiKeyCredentialsId: 'ci-report-api-key', jwtCredentialsId: 'ci-report-jwt',
                      signatureCredentialsId: 'ci-report-signature')
    Map sh = h.shCalls()[0]
    assertEquals('s3cr3t-api-key-value', sh.env.JENKINS_API_KEY)
    assertEquals('s3cr3t-jwt-secret-value', sh.env.JENKINS_JWT_SECRET)
    assertEquals('whsec_c2VjcmV0LXNpZ25pbmcta2V5', sh.env.JENKINS_SIGNATURE_SECRET)
    List bindings = h.callsTo('withCredentials')[0].args[0]
    assertEquals(['ci-report-api-key', 'ci-report-jwt', 'ci-report-signature'], bindings*.credentialsId)
    assertEquals(['JENKINS_API_KEY', 'JENKINS_JWT_SECRET', 'JENKINS_SIGNATURE_SECRET'], bindings*.variable)
    assertFalse('secrets leak out of the block', h.env.containsKey('JENKINS_API_KEY'))
    assertNoSecretInScripts()
  }

  @Test
  void defaultApiKeyIdIsNotBoundWhenAnotherCredentialIsChosen() {
    ciReport.callback(signatureCredentialsId: 'ci-report-signature')
    Map sh = h.shCalls()[0]
    assertEquals(['ci-report-signature'], h.callsTo('withCredentials')[0].args[0]*.credentialsId)
    assertFalse(sh.env.containsKey('JENKINS_API_KEY'))
    assertEquals('whsec_c2VjcmV0LXNpZ25pbmcta2V5', sh.env.JENKINS_SIGNATURE_SECRET)
  }

  @Test
  void explicitOptionsOverrideTheBuildDefaults() {
    ciReport.callback(status: 'failure', durationMs: 5000, since: 1699999999000L, runId: 'run-7', junit: 'out/TEST-*.xml',
                      statusStyle: 'extended', caseMap: 'case map.json', resultFile: 'out/cb.json',
                      extraArgs: ['--max-results', '500'], cliPath: '/opt/tools dir/bin/ci-report', archive: false)
    assertEquals("'/opt/tools dir/bin/ci-report' callback --strict --junit 'out/TEST-*.xml' --run-id run-7 " +
      "--build-result FAILURE --duration-ms 5000 --since 1699999999000 --status-style extended --case-map 'case map.json' " +
      '--result-file out/cb.json --deadline 30 --max-attempts 3 --max-results 500', h.shCalls()[0].script)
    assertEquals([], h.callsTo('archiveArtifacts'))
  }

  @Test
  void withoutUrlOptionTheEnvironmentDecides() {
    ciReport.callback()
    assertFalse(h.shCalls()[0].env.containsKey('CI_REPORT_URL'))
    assertEquals(['CI_REPORT_CONNECT_TIMEOUT=5', 'CI_REPORT_READ_TIMEOUT=10'], h.callsTo('withEnv')[0].args[0])
  }

  @Test
  void shellMetacharactersInValuesAreQuoted() {
    ciReport.callback(runId: '64; rm -rf /', junit: ['$(touch pwned)/*.xml'])
    assertContainsAll(h.shCalls()[0].script, ["--run-id '64; rm -rf /'", "--junit '\$(touch pwned)/*.xml'"])
  }

  @Test
  void eachFailureExitCodeOnlyLogsByDefault() {
    [75: 'queued in the outbox', 65: 'rejected', 78: 'configuration error', 70: 'internal error'].each { rc, words ->
      setUpHarness()
      h.onSh('ci-report callback', rc)
      assertEquals(rc, ciReport.callback())
      assertNull("build result changed for ${rc}".toString(), h.currentBuild.result)
      assertEquals(1, h.log.size())
      assertContainsAll(h.log[0], ['[WARNING]', words, "exit ${rc}".toString()])
      assertEquals(1, h.callsTo('archiveArtifacts').size())
    }
  }

  @Test
  void unstableOnErrorMarksTheBuildUnstableForEachFailureCode() {
    [75, 65, 78, 70].each { rc ->
      setUpHarness()
      h.currentBuild.currentResult = 'SUCCESS'
      h.onSh('ci-report callback', rc)
      assertEquals(rc, ciReport.callback(unstableOnError: true))
      assertEquals('UNSTABLE', h.currentBuild.result)
      assertEquals(1, h.callsTo('unstable').size())
      assertContainsAll(h.callsTo('unstable')[0].args[0].toString(), ["exit ${rc}".toString()])
    }
  }

  @Test
  void failOnErrorFailsTheBuildForEachFailureCode() {
    [75, 65, 78, 70].each { rc ->
      setUpHarness()
      h.onSh('ci-report callback', rc)
      String message = expectError { ciReport.callback(failOnError: true, unstableOnError: true) }
      assertContainsAll(message, ['ci-report callback', "exit ${rc}".toString()])
      assertEquals('FAILURE', h.currentBuild.result)
      assertEquals('the result file is archived before failing', 1, h.callsTo('archiveArtifacts').size())
    }
  }

  @Test
  void successIgnoresTheErrorOptions() {
    assertEquals(0, ciReport.callback(failOnError: true, unstableOnError: true))
    assertNull(h.currentBuild.result)
    assertEquals([], h.callsTo('error') + h.callsTo('unstable'))
  }

  @Test
  void unknownExitCodeIsReported() {
    h.onSh('ci-report callback', 127)
    ciReport.callback()
    assertContainsAll(h.log[0], ['not found', 'ciReport.install'])
  }

  @Test
  void missingCredentialEntryIsAConfigurationErrorThatDoesNotFailByDefault() {
    h.credentials.remove('ci-report-api-key')
    assertEquals(78, ciReport.callback())
    assertEquals([], h.shCalls())
    assertNull(h.currentBuild.result)
    assertContainsAll(h.log[0], ["Could not find credentials entry with ID 'ci-report-api-key'", 'apiKeyCredentialsId'])
  }

  @Test
  void missingCredentialEntryWithFailOnErrorFails() {
    String message = expectError { ciReport.callback(jwtCredentialsId: 'nope', failOnError: true) }
    assertContainsAll(message, ["Could not find credentials entry with ID 'nope'", 'jwtCredentialsId'])
  }

  @Test
  void noCredentialOptionIsAClearError() {
    String message = expectError { ciReport.callback(apiKeyCredentialsId: null) }
    assertContainsAll(message, ['no credentials', 'apiKeyCredentialsId', 'jwtCredentialsId', 'signatureCredentialsId'])
    assertEquals([], h.shCalls())
  }

  @Test
  void dryRunNeedsNoCredentials() {
    ciReport.callback(apiKeyCredentialsId: null, dryRun: true, dryRunOutput: '-')
    Map sh = h.shCalls()[0]
    assertTrue(sh.script.endsWith('--since 1700000000000 --dry-run --output - --deadline 30 --max-attempts 3'))
    assertEquals([], h.callsTo('withCredentials')[0].args[0])
    assertEquals('nothing to archive for --output -', [], h.callsTo('archiveArtifacts'))
  }

  @Test
  void unknownOptionsAreRejectedBeforeAnythingRuns() {
    String message = expectError { ciReport.callback(failOnErorr: true, junitt: 'x') }
    assertContainsAll(message, ['ciReport.callback: unknown option(s) failOnErorr, junitt', 'known options:', 'failOnError'])
    assertEquals(['error'], h.names())
  }

  @Test
  void invalidValuesAreRejected() {
    assertContainsAll(expectError { ciReport.callback(status: 'GREEN') }, ["status 'GREEN'", 'SUCCESS, UNSTABLE'])
    assertContainsAll(expectError { ciReport.callback(statusStyle: 'fancy') }, ['statusStyle'])
    assertContainsAll(expectError { ciReport.callback(extraArgs: '--max-results 5') }, ['extraArgs must be a list'])
    assertContainsAll(expectError { ciReport.callback(durationMs: 'soon') }, ['durationMs must be a number'])
  }

  @Test
  void anAbortDuringTheCallbackIsNotSwallowed() {
    h.onSh('ci-report callback', 0, '') { s -> throw new FlowInterruptedException('Aborted by user') }
    try {
      ciReport.callback(failOnError: false)
      fail('expected the interruption to propagate')
    } catch (FlowInterruptedException e) {
      assertEquals('Aborted by user', e.message)
    }
    assertEquals([], h.log)
  }

  @Test
  void currentResultIsReadAtCallTime() {
    h.currentBuild.currentResult = 'ABORTED'
    ciReport.callback()
    assertContainsAll(h.shCalls()[0].script, ['--build-result ABORTED'])
  }

  @Test
  void agentNoneThenPostOnlyWarnsAndRunsNoWorkspaceStep() {
    // Declarative `agent none` + post { always { ciReport.callback() } }: no node, no WORKSPACE.
    h.noNode()
    assertEquals(Reports.NO_NODE_RC, ciReport.callback(junit: ['a.xml']))
    assertEquals([], h.shCalls())
    assertEquals([], h.callsTo('archiveArtifacts'))
    assertNull(h.currentBuild.result)
    assertEquals(1, h.log.size())
    assertContainsAll(h.log[0], ['[WARNING]', 'not sent', 'inside a node/agent'])
  }

  @Test
  void aMissingNodeContextFromShIsToldAsSuchAndNothingIsArchived() {
    // WORKSPACE inherited from somewhere, but no node: sh throws MissingContextVariableException.
    h.currentBuild.currentResult = 'SUCCESS'
    h.onSh('ci-report callback', 0, '') { s -> throw new MissingContextVariableException(File) }
    assertEquals(Reports.NO_NODE_RC, ciReport.callback(unstableOnError: true))
    assertEquals([], h.callsTo('archiveArtifacts'))
    assertEquals('UNSTABLE', h.currentBuild.result)
    assertContainsAll(h.callsTo('unstable')[0].args[0].toString(), ['inside a node/agent', 'Required context'])
    assertFalse(h.callsTo('unstable')[0].args[0].toString().contains('configuration error'))
  }

  @Test
  void aLostChannelIsNotAConfigurationError() {
    h.onSh('ci-report callback', 0, '') { s ->
      throw new ChannelClosedException('Channel "hudson.remoting.Channel@1:agent-7": Remote call failed', new EOFException())
    }
    assertEquals(Reports.AGENT_LOST_RC, ciReport.callback())
    assertNull(h.currentBuild.result)
    assertContainsAll(h.log[0], ['[WARNING]', 'connection to the agent was lost', 'ChannelClosedException',
                                 'not a configuration error'])
    assertFalse(h.log[0].contains('exit 78'))
    assertEquals('no archive over a dead channel', [], h.callsTo('archiveArtifacts'))
  }

  @Test
  void theOriginalInterruptionIsRethrownWhenTheFollowUpStepThrows() {
    FlowInterruptedException abort = new FlowInterruptedException('Timeout has been exceeded')
    h.onSh('ci-report callback', 0, '') { s -> throw abort }
    h.step('archiveArtifacts') { Map a -> throw new ChannelClosedException('channel is already closed', null) }
    try {
      ciReport.callback()
      fail('expected the interruption to propagate')
    } catch (FlowInterruptedException e) {
      assertSame(abort, e)
    }
    assertEquals('the result file is still archived after an abort', 1, h.callsTo('archiveArtifacts').size())
    setUpHarness()
    h.onSh('ci-report callback', 0, '') { s -> throw abort }
    h.step('archiveArtifacts') { Map a -> throw new FlowInterruptedException('second abort') }
    try {
      ciReport.callback()
      fail('expected the interruption to propagate')
    } catch (FlowInterruptedException e) {
      assertSame(abort, e)
    }
  }

  @Test
  void anArchiveFailureOnlyWarns() {
    h.step('archiveArtifacts') { Map a -> throw new AbortException('No artifacts found that match the file pattern') }
    assertEquals(0, ciReport.callback(failOnError: true))
    assertNull(h.currentBuild.result)
    assertContainsAll(h.log[0], ['[WARNING]', 'could not archive ci-report/callback.json', 'No artifacts found'])
  }

  @Test
  void theDefaultsFitThePostGraceOfATimedOutPipeline() {
    Map c = StepOptions.merge(StepOptions.callbackDefaults(), [:])
    Long worst = StepOptions.callbackWorstCaseSeconds(c)
    assertTrue("worst case ${worst} s".toString(), worst != null && worst <= StepOptions.POST_GRACE_BUDGET_SECONDS)
    assertTrue(StepOptions.POST_GRACE_BUDGET_SECONDS < StepOptions.POST_GRACE_SECONDS)
    ciReport.callback()
    Map sh = h.shCalls()[0]
    assertContainsAll(sh.script, ['--deadline 30', '--max-attempts 3'])
    assertEquals(['5', '10'], [sh.env.CI_REPORT_CONNECT_TIMEOUT, sh.env.CI_REPORT_READ_TIMEOUT])
    assertNull('null: ci-report decides, nothing promised',
               StepOptions.callbackWorstCaseSeconds(StepOptions.merge(c, [deadlineSeconds: null])))
    setUpHarness()
    ciReport.callback(deadlineSeconds: null, maxAttempts: null, connectTimeoutSeconds: null, readTimeoutSeconds: null)
    assertFalse(h.shCalls()[0].script.contains('--deadline'))
    assertFalse(h.shCalls()[0].env.containsKey('CI_REPORT_READ_TIMEOUT'))
    assertContainsAll(expectError { ciReport.callback(deadlineSeconds: 0) }, ['deadlineSeconds must be a positive number'])
  }

  @Test
  void theArchivedResultUrlIsOnItsOwnLine() {
    h.env.BUILD_URL = 'https://jenkins.example/job/team/job/app/42/'
    ciReport.callback(resultFile: 'out dir/cb.json')
    assertTrue(h.log.contains('https://jenkins.example/job/team/job/app/42/artifact/out%20dir/cb.json'))
  }

  @Test
  void descriptionGetsAOneLineSummaryWhenAsked() {
    h.onSh('ci-report callback', 75)
    ciReport.callback(description: true)
    assertEquals('ci-report: callback queued in the outbox (exit 75)', h.currentBuild.description)
    setUpHarness()
    h.currentBuild.description = 'deployed to staging'
    ciReport.callback(description: true)
    assertEquals('deployed to staging\nci-report: callback delivered', h.currentBuild.description)
    setUpHarness()
    ciReport.callback()
    assertNull(h.currentBuild.description)
  }

  @Test
  void ciReportCallbackIsTheSameStepWithoutScript() {
    Script step = h.loadVar('ciReportCallback')
    h.currentBuild.currentResult = 'SUCCESS'
    assertEquals(75, { ->
      h.onSh('ci-report callback', 75)
      step.call(junit: ['a.xml'], unstableOnError: true)
    }.call())
    assertEquals('UNSTABLE', h.currentBuild.result)
    assertContainsAll(h.shCalls()[0].script, ['--junit a.xml', '--deadline 30'])
    assertEquals('ci-report: callback', h.shCalls()[0].options.label)
  }

}
