package unit

import static org.junit.Assert.assertEquals
import static org.junit.Assert.assertNull
import static org.junit.Assert.assertSame
import static org.junit.Assert.assertTrue
import static org.junit.Assert.fail

import harness.FlowInterruptedException
import org.junit.Test

class ImagePushTest extends StepTestBase {

  static final List<String> DESTS = ['registry.example/team/app:1.0', 'registry.example/team/app:latest']

  static final String PLAN = '{"schema":"ci-report/image-plan/v1","script":".ci-report/kaniko-run.sh",' +
    '"timeoutSeconds":720,"logFile":".ci-report/kaniko.log","rcFile":".ci-report/kaniko.rc",' +
    '"timesFile":".ci-report/kaniko.times","report":"ci-report/image-push.json"}\n'

  static final String FAILED_REPORT = '{"schema":"ci-report/image-push/v1","outcome":"timed-out","exitCode":143,' +
    '"phase":"push","diagnosis":{"code":"push-timeout","summary":"Push to registry.example timed out after 600 s ' +
    '(1.2 GB at 0.8 MB/s)","evidence":["Pushing image to registry.example/team/app:1.0"],' +
    '"fixes":["raise timeout","push fewer bytes"]}}'

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
  void kubernetesModeRunsPlanKanikoAndDiagnoseInOrder() {
    h.onSh('ci-report image-plan', 0, PLAN)
    int rc = ciReport.imagePush(destinations: DESTS, extraArgs: ['--cache=true'])
    assertEquals(0, rc)
    List steps = h.calls.findAll { c -> c.name in ['container', 'timeout', 'sh', 'archiveArtifacts'] }
    assertEquals(['container', 'sh', 'timeout', 'container', 'sh', 'container', 'sh', 'archiveArtifacts'], steps*.name)
    List sh = h.shCalls()
    assertEquals('ci-report image-plan --context . --dockerfile Dockerfile --destination registry.example/team/app:1.0 ' +
      '--destination registry.example/team/app:latest --timeout auto --report ci-report/image-push.json ' +
      '--workdir .ci-report --json -- --cache=true', sh[0].script)
    assertEquals('python', sh[0].container)
    assertEquals(true, sh[0].options.returnStdout)
    assertEquals('/busybox/sh .ci-report/kaniko-run.sh', sh[1].script)
    assertEquals('kaniko', sh[1].container)
    assertEquals(true, sh[1].options.returnStatus)
    assertEquals('ci-report image-diagnose --plan .ci-report/image-plan.json --report ci-report/image-push.json', sh[2].script)
    assertEquals('python', sh[2].container)
    assertEquals(true, sh[2].options.returnStatus)
  }

  @Test
  void jenkinsTimeoutIsThePlannedTimeoutPlusTheMargin() {
    h.onSh('ci-report image-plan', 0, PLAN)
    ciReport.imagePush(destinations: DESTS)
    assertEquals([time: 840, unit: 'SECONDS'], h.callsTo('timeout')[0].args[0])
    setUpHarness()
    h.onSh('ci-report image-plan', 0, PLAN.replace('720', '60'))
    ciReport.imagePush(destinations: DESTS, timeoutMarginSeconds: 30)
    assertEquals([time: 90, unit: 'SECONDS'], h.callsTo('timeout')[0].args[0])
  }

  @Test
  void kubernetesModeUsesTheConfiguredContainersAndThePlannedPaths() {
    String plan = PLAN.replace('.ci-report/kaniko-run.sh', 'build/ci/kaniko run.sh').replace('ci-report/image-push.json', 'build/ci/push.json')
    h.onSh('ci-report image-plan', 0, plan)
    ciReport.imagePush(destinations: DESTS, pythonContainer: 'tools', kanikoContainer: 'builder', workdir: 'build/ci/',
                       report: 'build/ci/push.json')
    List sh = h.shCalls()
    assertEquals(['tools', 'builder', 'tools'], sh*.container)
    assertTrue(sh[0].script.contains('--workdir build/ci/ --json'))
    assertEquals("/busybox/sh 'build/ci/kaniko run.sh'", sh[1].script)
    assertEquals('ci-report image-diagnose --plan build/ci/image-plan.json --report build/ci/push.json', sh[2].script)
    assertEquals('build/ci/push.json', h.callsTo('archiveArtifacts')[0].args[0].artifacts)
  }

  @Test
  void kubernetesModeFailureFailsWithTheDiagnosisSummary() {
    h.onSh('ci-report image-plan', 0, PLAN)
    h.onSh('/busybox/sh', 143)
    h.onSh('ci-report image-diagnose', 143, '') { s -> h.files['ci-report/image-push.json'] = FAILED_REPORT }
    String message = expectError { ciReport.imagePush(destinations: DESTS) }
    assertEquals('Push to registry.example timed out after 600 s (1.2 GB at 0.8 MB/s)', message)
    assertEquals(1, h.callsTo('archiveArtifacts').size())
  }

  @Test
  void diagnoseDecidesNotTheKanikoScriptExitCode() {
    h.onSh('ci-report image-plan', 0, PLAN)
    h.onSh('/busybox/sh', 1)
    assertEquals(0, ciReport.imagePush(destinations: DESTS, skipIfNoDockerfile: true))
    assertNull(h.currentBuild.result)
  }

  @Test
  void interruptedKanikoStepIsStillDiagnosedThenRethrown() {
    h.onSh('ci-report image-plan', 0, PLAN)
    h.onSh('/busybox/sh', 0, '') { s -> throw new FlowInterruptedException('Timeout has been exceeded') }
    try {
      ciReport.imagePush(destinations: DESTS)
      fail('expected the interruption to propagate')
    } catch (FlowInterruptedException e) {
      assertEquals('Timeout has been exceeded', e.message)
    }
    assertEquals(3, h.shCalls().size())
    assertTrue(h.shCalls()[2].script.startsWith('ci-report image-diagnose'))
    assertEquals(1, h.callsTo('archiveArtifacts').size())
  }

  @Test
  void unusablePlanOutputIsAClearError() {
    h.onSh('ci-report image-plan', 0, 'not json')
    assertTrue(expectError { ciReport.imagePush(destinations: DESTS) }.startsWith('ci-report image-plan did not print a JSON plan'))
    setUpHarness()
    h.onSh('ci-report image-plan', 0, PLAN.replace('image-plan/v1', 'image-plan/v9'))
    assertTrue(expectError { ciReport.imagePush(destinations: DESTS) }.contains("expected 'ci-report/image-plan/v1'"))
    assertEquals(1, h.shCalls().size())
  }

  @Test
  void optionErrors() {
    assertTrue(expectError { ciReport.imagePush() }.contains('destinations is required'))
    assertTrue(expectError { ciReport.imagePush(destinations: DESTS, mode: 'docker') }.contains("mode must be 'direct' or 'kubernetes'"))
    assertTrue(expectError { ciReport.imagePush(destinations: DESTS, timeout: '10m') }.contains("timeout must be 'auto' or a number"))
    assertTrue(expectError { ciReport.imagePush(destinations: DESTS, extraArgs: '--cache') }.contains('extraArgs must be a list'))
    String message = expectError { ciReport.imagePush(destinations: DESTS, kanikoImage: 'x') }
    assertTrue(message.startsWith('ciReport.imagePush: unknown option(s) kanikoImage; known options: archive, bandwidth'))
    assertEquals([], h.shCalls())
  }

  @Test
  void imagePushNeedsNoCredentials() {
    h.onSh('ci-report image-plan', 0, PLAN)
    ciReport.imagePush(destinations: DESTS)
    assertEquals([], h.callsTo('withCredentials'))
    assertSame(null, h.currentBuild.result)
  }

}
