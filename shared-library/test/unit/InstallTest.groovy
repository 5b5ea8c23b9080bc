package unit

import static org.junit.Assert.assertEquals
import static org.junit.Assert.assertFalse
import static org.junit.Assert.assertTrue

import io.cireport.Commands
import io.cireport.StepOptions
import org.junit.Test

class InstallTest extends StepTestBase {

  static final String VENV = '/var/jenkins/workspace/team/app@tmp/tools/ci-report-0.1.0'
  static final String INDEX = 'https://nexus.example/repository/pypi-internal/simple'
  static final Map FROM_INDEX = [indexUrl: INDEX]

  @Test
  void freshInstallWritesThePinnedRequirementsAndTheInstallerThenRunsTheScript() {
    String exe = ciReport.install(FROM_INDEX)
    assertEquals("${VENV}/bin/ci-report".toString(), exe)
    List sh = h.shCalls()
    assertEquals(2, sh.size())
    assertEquals(Commands.INSTALLED_VERSION_SCRIPT, sh[0].script)
    assertEquals(true, sh[0].options.returnStdout)
    assertEquals(Commands.INSTALL_SCRIPT, sh[1].script)
    assertEquals('ci-report: install 0.1.0', sh[1].options.label)
    sh.each { c ->
      assertEquals(VENV, c.env.CI_REPORT_VENV)
      assertEquals('0.1.0', c.env.CI_REPORT_VERSION)
      assertEquals('python3', c.env.CI_REPORT_PYTHON)
      assertFalse(c.env.containsKey('PIP_INDEX_URL'))
    }
    Map env = sh[1].env
    assertEquals(INDEX, env.CI_REPORT_INDEX_URL)
    assertEquals("${VENV}.requirements.txt".toString(), env.CI_REPORT_REQUIREMENTS)
    assertEquals("${VENV}.install.py".toString(), env.CI_REPORT_INSTALLER)
    ['CI_REPORT_WHEEL_URL', 'CI_REPORT_WHEEL_SHA256', 'CI_REPORT_WHEELHOUSE', 'CI_REPORT_INDEX_USER'].each { k ->
      assertFalse(k, env.containsKey(k))
    }
    // the files written are the library's own resources, byte for byte
    String pinned = new File('resources/io/cireport/install/requirements-0.1.0.txt').getText('UTF-8')
    assertEquals(pinned, h.files["${VENV}.requirements.txt".toString()])
    assertEquals(new File('resources/io/cireport/install/install.py').getText('UTF-8'),
                 h.files["${VENV}.install.py".toString()])
    assertTrue(pinned.contains('--hash=sha256:'))
    assertTrue(Commands.INSTALL_SCRIPT.contains('"$CI_REPORT_VENV/bin/python" "$CI_REPORT_INSTALLER" || exit 1'))
  }

  @Test
  void theIndexLoginComesFromACredentialAndOnlyThroughTheEnvironment() {
    h.credentials['pypi-internal'] = [username: 'ci-bot', password: 'p@ss w0rd/x']
    ciReport.install(indexUrl: INDEX, credentialsId: 'pypi-internal')
    Map sh = h.shCalls()[1]
    assertEquals('ci-bot', sh.env.CI_REPORT_INDEX_USER)
    assertEquals('p@ss w0rd/x', sh.env.CI_REPORT_INDEX_PASSWORD)
    assertEquals(INDEX, sh.env.CI_REPORT_INDEX_URL)
    h.calls.each { c ->
      assertFalse(c.name, c.args.findAll { a -> !(a instanceof Closure) }.toString().contains('p@ss w0rd/x'))
    }
    // the binding ends with the step: the first sh (version check) ran without it
    assertFalse(h.shCalls()[0].env.containsKey('CI_REPORT_INDEX_PASSWORD'))
  }

  @Test
  void aWheelUrlWithItsHashAndAWheelhouseReachTheInstaller() {
    String sha = 'a' * 64
    ciReport.install(wheelUrl: 'https://artifacts.example/ci_report-0.1.0-py3-none-any.whl', sha256: sha)
    Map sh = h.shCalls()[1]
    assertEquals('https://artifacts.example/ci_report-0.1.0-py3-none-any.whl', sh.env.CI_REPORT_WHEEL_URL)
    assertEquals(sha, sh.env.CI_REPORT_WHEEL_SHA256)
    assertFalse(sh.env.containsKey('CI_REPORT_INDEX_URL'))
    h.calls.clear()
    ciReport.install(wheelhouse: '/opt/wheels/ci-report')
    assertEquals('/opt/wheels/ci-report', h.shCalls()[1].env.CI_REPORT_WHEELHOUSE)
  }

  @Test
  void aRequirementsFileOfTheUsersOwnIsUsedAsIsAndNothingIsWrittenForIt() {
    ciReport.install(indexUrl: INDEX, version: '0.2.0', requirementsFile: '/opt/locks/ci-report-0.2.0.txt')
    Map sh = h.shCalls()[1]
    assertEquals('/opt/locks/ci-report-0.2.0.txt', sh.env.CI_REPORT_REQUIREMENTS)
    assertFalse(h.files.keySet().any { f -> f.endsWith('.requirements.txt') })
  }

  @Test
  void aVersionWithoutShippedRequirementsSaysWhatToPass() {
    String message = expectError { ciReport.install(indexUrl: INDEX, version: '0.2.0') }
    assertTrue(message, message.startsWith('ciReport.install: this library has no pinned requirements for ci-report 0.2.0'))
    assertTrue(message, message.contains('pass requirementsFile'))
    assertEquals(1, h.shCalls().size())
  }

  @Test
  void alreadyInstalledVersionSkipsTheInstall() {
    h.onSh(Commands.INSTALLED_VERSION_SCRIPT, 0, 'ci-report 0.1.0\n')
    assertEquals("${VENV}/bin/ci-report".toString(), ciReport.install(FROM_INDEX))
    assertEquals(1, h.shCalls().size())
    assertEquals(["ci-report 0.1.0 is already installed in ${VENV}".toString()], h.log)
    assertEquals([], h.resourcesRead)
  }

  @Test
  void anotherInstalledVersionIsReplaced() {
    h.onSh(Commands.INSTALLED_VERSION_SCRIPT, 0, 'ci-report 0.1.01\n')
    ciReport.install(FROM_INDEX)
    assertEquals(2, h.shCalls().size())
  }

  @Test
  void optionsReachTheScriptOnlyThroughTheEnvironment() {
    String exe = ciReport.install(indexUrl: INDEX, python: '/usr/bin/python3.12', venvDir: '/opt/my tools/cr')
    assertEquals('/opt/my tools/cr/bin/ci-report', exe)
    Map sh = h.shCalls()[1]
    assertEquals(Commands.INSTALL_SCRIPT, sh.script)
    assertEquals('/usr/bin/python3.12', sh.env.CI_REPORT_PYTHON)
    assertEquals('/opt/my tools/cr', sh.env.CI_REPORT_VENV)
    assertFalse(h.shCalls()*.script.join().contains('nexus.example'))
  }

  @Test
  void workspaceTmpFallsBackToWorkspaceAtTmp() {
    h.env.remove('WORKSPACE_TMP')
    h.env.WORKSPACE = '/ws/job'
    assertEquals('/ws/job@tmp/tools/ci-report-0.1.0/bin/ci-report', ciReport.install(FROM_INDEX))
  }

  @Test
  void outsideANodeItAsksForVenvDir() {
    h.env.clear()
    assertTrue(expectError { ciReport.install(FROM_INDEX) }.contains('call it inside a node/agent block or pass venvDir'))
  }

  @Test
  void thereIsNoDefaultSourceAndThePublicIndexIsNeverAssumed() {
    String message = expectError { ciReport.install() }
    assertTrue(message, message.startsWith('ciReport.install: say where ci-report comes from: indexUrl'))
    assertTrue(message, message.contains('no ci-report is published on the public PyPI'))
    assertEquals([], h.shCalls())
  }

  @Test
  void optionErrors() {
    assertTrue(expectError { ciReport.install(versoin: '1', indexUrl: INDEX) }.startsWith(
      'ciReport.install: unknown option(s) versoin; known options: credentialsId, indexUrl, python, requirementsFile, ' +
      'sha256, venvDir, version, wheelUrl, wheelhouse'))
    assertTrue(expectError { ciReport.install(indexUrl: INDEX, version: '1.0; rm -rf /') }.contains('version must be a plain version'))
    assertTrue(expectError { ciReport.install(indexUrl: 'https://bot:tok@nexus.example/simple') }.contains(
      'indexUrl must not carry a login'))
    assertTrue(expectError { ciReport.install(indexUrl: 'nexus.example/simple') }.contains('indexUrl must be an http(s) URL'))
    assertTrue(expectError { ciReport.install(wheelhouse: '/w', indexUrl: INDEX) }.contains('give it alone'))
    assertTrue(expectError { ciReport.install(wheelhouse: '/w', credentialsId: 'x') }.contains(
      'credentialsId is the login for indexUrl'))
    assertTrue(expectError { ciReport.install(wheelUrl: 'https://a.example/x.whl', sha256: 'abc') }.contains(
      'sha256 must be the 64 hex digits'))
    assertTrue(expectError { ciReport.install(indexUrl: INDEX, sha256: 'a' * 64) }.contains('give wheelUrl too'))
    assertEquals([], h.shCalls())
  }

  @Test
  void defaultVersionIsThePinnedConstantAndItsRequirementsAreShipped() {
    assertEquals('0.1.0', StepOptions.DEFAULT_VERSION)
    assertTrue(new File("resources/${StepOptions.requirementsResource(StepOptions.DEFAULT_VERSION)}").isFile())
  }

}
