package unit

import static org.junit.Assert.assertEquals
import static org.junit.Assert.assertNull
import static org.junit.Assert.assertSame
import static org.junit.Assert.assertTrue
import static org.junit.Assert.fail

import harness.FlowInterruptedException
import hudson.remoting.ChannelClosedException
import org.junit.Test

class ImagePushTest extends StepTestBase {

  static final List<String> DESTS = ['registry.example/team/app:1.0', 'registry.example/team/app:latest']

  static final String RC_FILE = '/var/jenkins/workspace/team/app@tmp/ci-report-image/kaniko.rc'
  static final String PLAN_FILE = '/var/jenkins/workspace/team/app@tmp/ci-report-image/image-plan.json'

  // What `ci-report image-plan` 0.1.0 writes to <workdir>/image-plan.json (keys the library reads, plus a few).
  static final String PLAN = '{"schema":"ci-report/image-plan/v1","script":"/var/jenkins/workspace/team/app@tmp/ci-report-image/kaniko-run.sh",' +
    '"plan":"/var/jenkins/workspace/team/app@tmp/ci-report-image/image-plan.json","timeoutSeconds":720,"killGraceSeconds":30,' +
    '"logFile":"/var/jenkins/workspace/team/app@tmp/ci-report-image/kaniko.log","rcFile":"/var/jenkins/workspace/team/app@tmp/ci-report-image/kaniko.rc","timesFile":"/var/jenkins/workspace/team/app@tmp/ci-report-image/kaniko.times",' +
    '"versionFile":"/var/jenkins/workspace/team/app@tmp/ci-report-image/kaniko.version","report":"ci-report/image-push.json","skipped":false,' +
    '"executorArgs":["--context=/ws","--dockerfile=/ws/Dockerfile"]}\n'

  static final String SKIPPED_REPORT = '{"schema":"ci-report/image-push/v1","outcome":"skipped","exitCode":0,' +
    '"phase":"preflight","diagnosis":null}'

  static final String PREFLIGHT_REPORT = '{"schema":"ci-report/image-push/v1","outcome":"failed","exitCode":1,' +
    '"phase":"preflight","diagnosis":{"code":"registry-auth","summary":"no credentials for registry.example",' +
    '"evidence":[],"fixes":["mount the docker config"]}}'

  /** image-diagnose --step-exit 127 with no rc file of this run (the summary as src/ci_report/image/service.py words it). */
  static final String NEVER_RAN_REPORT = '{"schema":"ci-report/image-push/v1","outcome":"failed","exitCode":127,' +
    '"diagnosis":{"code":"script-never-ran","summary":"the kaniko step exited 127 and the script left no file of ' +
    'this run: it never ran","fixes":["check the kaniko image"]}}'

  static final String FAILED_REPORT = '{"schema":"ci-report/image-push/v1","outcome":"timed-out","exitCode":143,' +
    '"phase":"push","diagnosis":{"code":"push-timeout","summary":"Push to registry.example timed out after 600 s ' +
    '(1.2 GB at 0.8 MB/s)","evidence":["Pushing image to registry.example/team/app:1.0"],' +
    '"fixes":["raise timeout","push fewer bytes"]}}'

  /** image-plan succeeds and writes this plan where the CLI writes it (stdout stays empty: no --json). */
  private void planned(String planText = PLAN, String path = PLAN_FILE) {
    h.onSh('ci-report image-plan', 0, '') { s -> h.files[path] = planText }
    // the generated script writes the rc file when it ends (here: the kaniko step succeeds)
    h.onSh('/busybox/sh', 0, '') { s -> h.files[RC_FILE] = '0' }
  }

  @Test
  void directModeRunsImagePushWithTheExactCommand() {
    int rc = ciReport.imagePush(mode: 'direct', destinations: DESTS, extraArgs: ['--cache=true', '--snapshot-mode=redo'])
    assertEquals(0, rc)
    List sh = h.shCalls()
    assertEquals(1, sh.size())
    assertEquals('ci-report image-push --context . --dockerfile Dockerfile --destination registry.example/team/app:1.0 ' +
      '--destination registry.example/team/app:latest --timeout auto --report ci-report/image-push.json ' +
      '-- --cache=true --snapshot-mode=redo', sh[0].script)
    assertEquals(true, sh[0].options.returnStatus)
    assertNull(sh[0].container)
    assertEquals([], h.callsTo('container'))
    assertEquals([[artifacts: 'ci-report/image-push.json', allowEmptyArchive: true]], h.callsTo('archiveArtifacts')*.args*.get(0))
    assertNull(h.currentBuild.result)
  }

  @Test
  void directModeOptionalFlags() {
    ciReport.imagePush(mode: 'direct', destinations: 'r.example/a:b', context: 'app dir', dockerfile: 'app dir/Dockerfile.prod',
                       timeout: 900, bandwidth: 2.5, executor: '/kaniko/executor', skipIfNoDockerfile: true,
                       report: 'out/push.json', cliPath: '/tools/ci-report', archive: false)
    assertEquals("/tools/ci-report image-push --context 'app dir' --dockerfile 'app dir/Dockerfile.prod' " +
      '--destination r.example/a:b --timeout 900 --report out/push.json --bandwidth 2.5 --executor /kaniko/executor ' +
      '--skip-if-no-dockerfile', h.shCalls()[0].script)
    assertEquals([], h.callsTo('archiveArtifacts'))
  }

  @Test
  void fractionalTimeoutAndTimeoutCapReachTheCliAsTheCliAcceptsThem() {
    // The CLI accepts a fractional --timeout (cut to whole seconds) and needs --bandwidth > 0 (Contract.LIMITS).
    ciReport.imagePush(mode: 'direct', destinations: 'r.example/a:b', timeout: '1800.5', timeoutCap: 3000)
    assertTrue(h.shCalls()[0].script.contains('--timeout 1800.5 --report ci-report/image-push.json --timeout-cap 3000'))
    setUpHarness()
    ciReport.imagePush(mode: 'direct', destinations: 'r.example/a:b', timeout: ' AUTO ', bandwidth: '0.5')
    assertTrue(h.shCalls()[0].script.contains('--bandwidth 0.5'))
  }

  @Test
  void directModeFailureFailsWithTheDiagnosisSummary() {
    h.onSh('ci-report image-push', 143, '') { s -> h.files['ci-report/image-push.json'] = FAILED_REPORT }
    String message = expectError { ciReport.imagePush(mode: 'direct', destinations: DESTS) }
    assertEquals('Push to registry.example timed out after 600 s (1.2 GB at 0.8 MB/s)', message)
    assertTrue(h.log[0].contains('push-timeout'))
    assertEquals(['  fix: raise timeout', '  fix: push fewer bytes'], h.log[1..2])
    assertEquals('report archived before failing', 1, h.callsTo('archiveArtifacts').size())
    assertEquals('FAILURE', h.currentBuild.result)
  }

  @Test
  void directModeFailureWithoutReportStillFailsClearly() {
    h.onSh('ci-report image-push', 1)
    String message = expectError { ciReport.imagePush(mode: 'direct', destinations: DESTS) }
    assertEquals('ci-report image push failed with exit code 1 and wrote no diagnosis to ci-report/image-push.json', message)
  }

  @Test
  void aStaleReportFromAnEarlierBuildIsNeverShown() {
    // reused workspace: the last build's report is still there; this run fails before writing one
    h.files['ci-report/image-push.json'] = FAILED_REPORT
    h.onSh('ci-report image-push', 2)
    String message = expectError { ciReport.imagePush(mode: 'direct', destinations: DESTS) }
    assertEquals('ci-report image push failed with exit code 2 and wrote no diagnosis to ci-report/image-push.json', message)
  }

  @Test
  void aStalePlanFromAnEarlierBuildIsNeverRun() {
    h.files[PLAN_FILE] = PLAN
    h.files['ci-report/image-push.json'] = FAILED_REPORT
    h.onSh('ci-report image-plan', 2)
    String message = expectError { ciReport.imagePush(destinations: DESTS) }
    assertEquals('ci-report image push failed with exit code 2 and wrote no diagnosis to ci-report/image-push.json', message)
    assertEquals('no Kaniko step ran', 1, h.shCalls().size())
  }

  @Test
  void kubernetesModeRunsPlanKanikoAndDiagnoseInOrder() {
    planned()
    int rc = ciReport.imagePush(destinations: DESTS, extraArgs: ['--cache=true'])
    assertEquals(0, rc)
    List steps = h.calls.findAll { c -> c.name in ['container', 'parallel', 'timeout', 'sh', 'archiveArtifacts'] }
    assertEquals(['container', 'sh', 'parallel', 'timeout', 'container', 'sh', 'container', 'sh', 'container', 'sh',
                  'archiveArtifacts'], steps*.name)
    assertEquals(['kaniko', 'image-watch', 'failFast'], h.callsTo('parallel')[0].args[0].keySet() as List)
    List sh = h.shCalls()
    assertEquals('ci-report image-plan --context . --dockerfile Dockerfile --destination registry.example/team/app:1.0 ' +
      '--destination registry.example/team/app:latest --timeout auto --report ci-report/image-push.json ' +
      '--workdir /var/jenkins/workspace/team/app@tmp/ci-report-image -- --cache=true', sh[0].script)
    assertEquals('python', sh[0].container)
    assertEquals(true, sh[0].options.returnStatus)
    assertEquals('/busybox/sh /var/jenkins/workspace/team/app@tmp/ci-report-image/kaniko-run.sh', sh[1].script)
    assertEquals('kaniko', sh[1].container)
    assertEquals([name: 'kaniko', shell: '/busybox/sh'], h.callsTo('container')[1].args[0])
    assertEquals(true, sh[1].options.returnStatus)
    // image-watch beside the kaniko step, in the python container; it never fails the build (returnStatus)
    assertEquals('ci-report image-watch --plan /var/jenkins/workspace/team/app@tmp/ci-report-image/image-plan.json', sh[2].script)
    assertEquals('python', sh[2].container)
    assertEquals(true, sh[2].options.returnStatus)
    // the kaniko step's own exit status goes to image-diagnose (--step-exit)
    assertEquals('ci-report image-diagnose --plan /var/jenkins/workspace/team/app@tmp/ci-report-image/image-plan.json --report ci-report/image-push.json ' +
      '--step-exit 0', sh[3].script)
    assertEquals('python', sh[3].container)
    assertEquals(true, sh[3].options.returnStatus)
  }

  @Test
  void jenkinsTimeoutIsThePlannedTimeoutPlusTheMargin() {
    planned()
    ciReport.imagePush(destinations: DESTS)
    // planned 720 s + the script's kill grace 30 s + the default margin 120 s
    assertEquals([time: 870, unit: 'SECONDS'], h.callsTo('timeout')[0].args[0])
    setUpHarness()
    planned(PLAN.replace('720', '60'))
    ciReport.imagePush(destinations: DESTS, timeoutMarginSeconds: 30)
    assertEquals([time: 120, unit: 'SECONDS'], h.callsTo('timeout')[0].args[0])
    setUpHarness()
    planned(PLAN.replace('"killGraceSeconds":30,', ''))
    ciReport.imagePush(destinations: DESTS)
    assertEquals('a plan without killGraceSeconds adds none', [time: 840, unit: 'SECONDS'], h.callsTo('timeout')[0].args[0])
  }

  @Test
  void kubernetesModeUsesTheConfiguredContainersAndThePlannedPaths() {
    String plan = PLAN.replace('/var/jenkins/workspace/team/app@tmp/ci-report-image/kaniko-run.sh', 'build/ci/kaniko run.sh')
      .replace('ci-report/image-push.json', 'build/ci/push.json')
      .replace('/var/jenkins/workspace/team/app@tmp/ci-report-image/image-plan.json', 'build/ci/image-plan.json')
    planned(plan, 'build/ci/image-plan.json')
    ciReport.imagePush(destinations: DESTS, pythonContainer: 'tools', kanikoContainer: 'builder', workdir: 'build/ci/',
                       report: 'build/ci/push.json')
    List sh = h.shCalls()
    assertEquals(['tools', 'builder', 'tools', 'tools'], sh*.container)
    assertTrue(sh[0].script.endsWith('--workdir build/ci/'))
    assertEquals("/busybox/sh 'build/ci/kaniko run.sh'", sh[1].script)
    assertEquals('ci-report image-watch --plan build/ci/image-plan.json', sh[2].script)
    assertEquals('ci-report image-diagnose --plan build/ci/image-plan.json --report build/ci/push.json --step-exit 0', sh[3].script)
    assertEquals('build/ci/push.json', h.callsTo('archiveArtifacts')[0].args[0].artifacts)
  }

  @Test
  void kubernetesModeFailureFailsWithTheDiagnosisSummary() {
    planned()
    h.onSh('/busybox/sh', 143)
    h.onSh('ci-report image-diagnose', 143, '') { s -> h.files['ci-report/image-push.json'] = FAILED_REPORT }
    String message = expectError { ciReport.imagePush(destinations: DESTS) }
    assertEquals('Push to registry.example timed out after 600 s (1.2 GB at 0.8 MB/s)', message)
    assertEquals(1, h.callsTo('archiveArtifacts').size())
  }

  @Test
  void diagnoseDecidesNotTheKanikoScriptExitCode() {
    planned()
    h.onSh('/busybox/sh', 1, '') { s -> h.files[RC_FILE] = '1' }
    assertEquals(0, ciReport.imagePush(destinations: DESTS, skipIfNoDockerfile: true))
    assertNull(h.currentBuild.result)
  }

  @Test
  void interruptedKanikoStepIsStillDiagnosedThenRethrown() {
    planned()
    h.onSh('/busybox/sh', 0, '') { s -> throw new FlowInterruptedException('Timeout has been exceeded') }
    try {
      ciReport.imagePush(destinations: DESTS)
      fail('expected the interruption to propagate')
    } catch (FlowInterruptedException e) {
      assertEquals('Timeout has been exceeded', e.message)
    }
    assertEquals(4, h.shCalls().size())
    // the step never returned: no --step-exit (image-diagnose judges by the files and its own clock)
    assertEquals('ci-report image-diagnose --plan ' + PLAN_FILE + ' --report ci-report/image-push.json', h.shCalls()[3].script)
    assertEquals(1, h.callsTo('archiveArtifacts').size())
  }

  @Test
  void unusablePlanOutputIsAClearError() {
    planned('not json')
    String message = expectError { ciReport.imagePush(destinations: DESTS) }
    assertTrue(message.startsWith('ci-report image-plan did not write a JSON plan'))
    setUpHarness()
    h.onSh('ci-report image-plan', 0)
    assertTrue(expectError { ciReport.imagePush(destinations: DESTS) }.endsWith('(/var/jenkins/workspace/team/app@tmp/ci-report-image/image-plan.json)'))
    setUpHarness()
    planned(PLAN.replace('image-plan/v1', 'image-plan/v9'))
    assertTrue(expectError { ciReport.imagePush(destinations: DESTS) }.contains("expected 'ci-report/image-plan/v1'"))
    assertEquals(1, h.shCalls().size())
  }

  @Test
  void optionErrors() {
    assertTrue(expectError { ciReport.imagePush() }.contains('destinations is required'))
    assertTrue(expectError { ciReport.imagePush(destinations: DESTS, mode: 'docker') }.contains("mode must be 'direct' or 'kubernetes'"))
    assertTrue(expectError { ciReport.imagePush(destinations: DESTS, timeout: '10m') }.contains("timeout must be 'auto' or a positive number"))
    assertTrue(expectError { ciReport.imagePush(destinations: DESTS, bandwidth: 0) }.contains('bandwidth must be a positive number'))
    assertTrue(expectError { ciReport.imagePush(destinations: DESTS, timeoutCap: '-5') }.contains('timeoutCap must be'))
    assertTrue(expectError { ciReport.imagePush(destinations: DESTS, extraArgs: '--cache') }.contains('extraArgs must be a list'))
    String message = expectError { ciReport.imagePush(destinations: DESTS, kanikoImage: 'x') }
    assertTrue(message.startsWith('ciReport.imagePush: unknown option(s) kanikoImage; known options: archive, bandwidth'))
    assertEquals([], h.shCalls())
  }

  @Test
  void aReusedWorkspaceWhereTheKanikoStepNeverRanIsNotGreen() {
    // durable-task's "process apparently never started" (exit 127): the previous build's rc, log and digest are
    // still in the work folder. image-diagnose gets --step-exit 127 and refuses them (script-never-ran, exit 1).
    h.files[RC_FILE] = '0'
    // image-plan removes the earlier run's rc file before the kaniko step (src/ci_report/image/split.py)
    h.onSh('ci-report image-plan', 0, '') { s -> h.files[PLAN_FILE] = PLAN; h.files.remove(RC_FILE) }
    h.onSh('/busybox/sh', 127)
    h.onSh(~/image-diagnose .* --step-exit 127$/, 1, '') { s -> h.files['ci-report/image-push.json'] = NEVER_RAN_REPORT }
    String message = expectError { ciReport.imagePush(destinations: DESTS) }
    assertEquals('the kaniko step exited 127 and the script left no file of this run: it never ran', message)
    assertEquals('FAILURE', h.currentBuild.result)
    assertTrue(h.shCalls()[3].script.endsWith('--step-exit 127'))
    // no rc file: the kaniko branch stops image-watch (failFast) instead of waiting out its deadline
    assertEquals(true, h.callsTo('parallel')[0].args[0].failFast)
    assertTrue(h.log.toString(), !h.log.any { l -> l.contains('interrupted') })
  }

  @Test
  void watchFalseRunsTheKanikoStepAlone() {
    planned()
    ciReport.imagePush(destinations: DESTS, watch: false)
    assertEquals([], h.callsTo('parallel'))
    assertEquals(3, h.shCalls().size())
    assertTrue(h.shCalls()[2].script.startsWith('ci-report image-diagnose'))
  }

  @Test
  void agentLostDuringTheKanikoStepGetsTheKubernetesHintAndIsRethrown() {
    planned()
    h.onSh('/busybox/sh', 0, '') { s -> throw new ChannelClosedException('channel is already closed', null) }
    try {
      ciReport.imagePush(destinations: DESTS)
      fail('expected the lost channel to propagate')
    } catch (ChannelClosedException e) {
      assertEquals('channel is already closed', e.message)
    }
    String hint = h.log.find { l -> l.contains('the agent was lost during the Kaniko step') }
    assertTrue(h.log.toString(), hint != null && hint.contains('OOMKilled') && hint.contains('1.28'))
    assertEquals('no image-diagnose on a lost agent', [], h.shCalls().findAll { c -> c.script.contains('image-diagnose') })
  }

  @Test
  void imagePushNeedsNoCredentials() {
    planned()
    ciReport.imagePush(destinations: DESTS)
    assertEquals([], h.callsTo('withCredentials'))
    assertSame(null, h.currentBuild.result)
  }

  @Test
  void preflightFailureOfImagePlanFailsWithTheReportDiagnosis() {
    // image-plan exits 1 with an empty stdout and writes only the report (e.g. no registry credentials).
    h.onSh('ci-report image-plan', 1, '') { s -> h.files['ci-report/image-push.json'] = PREFLIGHT_REPORT }
    String message = expectError { ciReport.imagePush(destinations: DESTS) }
    assertEquals('no credentials for registry.example', message)
    assertEquals(1, h.shCalls().size())
    assertTrue(h.log[0].contains('registry-auth'))
    assertEquals(['  fix: mount the docker config'], h.log[1..1])
    assertEquals(1, h.callsTo('archiveArtifacts').size())
    assertEquals([], h.callsTo('timeout'))
  }

  @Test
  void skippedPlanRunsNeitherKanikoNorDiagnose() {
    planned(PLAN.replace('"skipped":false', '"skipped":true'))
    h.files['ci-report/image-push.json'] = SKIPPED_REPORT
    assertEquals(0, ciReport.imagePush(destinations: DESTS, skipIfNoDockerfile: true))
    assertEquals(1, h.shCalls().size())
    assertEquals([], h.callsTo('timeout'))
    assertEquals([[artifacts: 'ci-report/image-push.json', allowEmptyArchive: true]], h.callsTo('archiveArtifacts')*.args*.get(0))
    assertNull(h.currentBuild.result)
  }

  @Test
  void diagnoseUsesThePlanPathTheCliWrote() {
    planned(PLAN.replace('"plan":"/var/jenkins/workspace/team/app@tmp/ci-report-image/image-plan.json"', '"plan":"/var/jenkins/workspace/team/app@tmp/ci-report-image/./image-plan.json"'))
    ciReport.imagePush(destinations: DESTS)
    assertEquals('ci-report image-diagnose --plan /var/jenkins/workspace/team/app@tmp/ci-report-image/./image-plan.json --report ci-report/image-push.json ' +
                 '--step-exit 0', h.shCalls()[3].script)
  }

}
