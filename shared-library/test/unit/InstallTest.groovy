package unit

import static org.junit.Assert.assertEquals
import static org.junit.Assert.assertFalse
import static org.junit.Assert.assertTrue

import io.cireport.Commands
import io.cireport.StepOptions
import org.junit.Test

class InstallTest extends StepTestBase {

  static final String VENV = '/var/jenkins/workspace/team/app@tmp/tools/ci-report-0.1.0'

  @Test
  void freshInstallCreatesTheVenvAndReturnsTheExecutable() {
    String exe = ciReport.install()
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
    assertTrue(Commands.INSTALL_SCRIPT.contains('"ci-report==$CI_REPORT_VERSION"'))
  }

  @Test
  void alreadyInstalledVersionSkipsTheInstall() {
    h.onSh(Commands.INSTALLED_VERSION_SCRIPT, 0, 'ci-report 0.1.0\n')
    assertEquals("${VENV}/bin/ci-report".toString(), ciReport.install())
    assertEquals(1, h.shCalls().size())
    assertEquals(["ci-report 0.1.0 is already installed in ${VENV}".toString()], h.log)
  }

  @Test
  void anotherInstalledVersionIsReplaced() {
    h.onSh(Commands.INSTALLED_VERSION_SCRIPT, 0, 'ci-report 0.1.01\n')
    ciReport.install()
    assertEquals(2, h.shCalls().size())
  }

  @Test
  void optionsReachTheScriptOnlyThroughTheEnvironment() {
    String index = 'https://user:token@pypi.example/simple'
    String exe = ciReport.install(version: '0.2.0', indexUrl: index, python: '/usr/bin/python3.12', venvDir: '/opt/my tools/cr')
    assertEquals('/opt/my tools/cr/bin/ci-report', exe)
    Map sh = h.shCalls()[1]
    assertEquals(Commands.INSTALL_SCRIPT, sh.script)
    assertEquals(index, sh.env.PIP_INDEX_URL)
    assertEquals('0.2.0', sh.env.CI_REPORT_VERSION)
    assertEquals('/usr/bin/python3.12', sh.env.CI_REPORT_PYTHON)
    assertEquals('/opt/my tools/cr', sh.env.CI_REPORT_VENV)
    assertFalse(h.shCalls()*.script.join().contains('token@'))
  }

  @Test
  void workspaceTmpFallsBackToWorkspaceAtTmp() {
    h.env.remove('WORKSPACE_TMP')
    h.env.WORKSPACE = '/ws/job'
    assertEquals('/ws/job@tmp/tools/ci-report-0.1.0/bin/ci-report', ciReport.install())
  }

  @Test
  void outsideANodeItAsksForVenvDir() {
    h.env.clear()
    assertTrue(expectError { ciReport.install() }.contains('call it inside a node/agent block or pass venvDir'))
  }

  @Test
  void optionErrors() {
    assertTrue(expectError { ciReport.install(versoin: '1') }.startsWith('ciReport.install: unknown option(s) versoin; known options: indexUrl, python, venvDir, version'))
    assertTrue(expectError { ciReport.install(version: '1.0; rm -rf /') }.contains('version must be a plain version'))
    assertEquals([], h.shCalls())
  }

  @Test
  void defaultVersionIsThePinnedConstant() {
    assertEquals('0.1.0', StepOptions.DEFAULT_VERSION)
  }

}
