package unit

import static org.junit.Assert.assertEquals
import static org.junit.Assert.assertFalse
import static org.junit.Assert.assertNotEquals
import static org.junit.Assert.assertNull
import static org.junit.Assert.assertTrue

import io.cireport.Commands
import io.cireport.Reports
import io.cireport.Shell
import io.cireport.StepOptions
import org.junit.Test

/** The src/ helpers on their own, plus checks that run the generated shell for real. */
class HelpersTest {

  /** Runs a script with `sh -xe` (as Jenkins does) and returns [rc, stdout, stderr]. */
  static List run(String script, Map<String, String> env = [:]) {
    ProcessBuilder pb = new ProcessBuilder(['sh', '-xe', '-c', script])
    pb.environment().putAll(env)
    Process p = pb.start()
    ByteArrayOutputStream out = new ByteArrayOutputStream()
    ByteArrayOutputStream err = new ByteArrayOutputStream()
    p.waitForProcessOutput(out, err)
    return [p.exitValue(), out.toString('UTF-8'), err.toString('UTF-8')]
  }

  @Test
  void quotedWordsSurviveARealShellUnchanged() {
    ['simple', 'with space', "it's", '$HOME', 'a*b', '', '`id`', 'new\nline', '--flag=x;y', "'", '\\', '!x'].each { v ->
      List r = run("printf '%s' ${Shell.quote(v)}")
      assertEquals("round trip of ${v}".toString(), v, r[1])
    }
    assertEquals('registry.example/a:b', Shell.quote('registry.example/a:b'))
    assertEquals("'a b'", Shell.quote('a b'))
    assertEquals("''", Shell.quote(null))
  }

  @Test
  void installScriptCreatesAVenvWithAFakePython() {
    File dir = File.createTempDir()
    try {
      File python = new File(dir, 'fake-python')
      // A stand-in for "python -m venv --clear DIR": it writes a venv whose python, given the installer
      // (install.py, tested for real by tests/integration/test_install_script.py), installs a ci-report stub.
      python.text = '''#!/bin/sh
venv="$4"
mkdir -p "$venv/bin"
touch "$venv/pyvenv.cfg"
cat > "$venv/bin/python" <<'PY'
#!/bin/sh
bin="$(dirname "$0")"
printf '#!/bin/sh\\necho "ci-report %s"\\n' "$CI_REPORT_VERSION" > "$bin/ci-report"
chmod +x "$bin/ci-report"
echo "installer=$1 index=${CI_REPORT_INDEX_URL:-none}" >&2
PY
chmod +x "$venv/bin/python"
'''
      python.setExecutable(true)
      String venv = new File(dir, 'tools dir/ci-report-0.1.0').path
      Map env = [CI_REPORT_VENV: venv, CI_REPORT_VERSION: '0.1.0', CI_REPORT_PYTHON: python.path,
                 CI_REPORT_INSTALLER: '/tmp/x/install.py', CI_REPORT_INDEX_URL: 'https://idx.example/simple']
      List before = run(Commands.INSTALLED_VERSION_SCRIPT, env)
      assertEquals(0, before[0])
      assertFalse(StepOptions.versionMatches(before[1], '0.1.0'))
      List r = run(Commands.INSTALL_SCRIPT, env)
      assertEquals("install failed: ${r[2]}".toString(), 0, r[0])
      assertEquals('ci-report 0.1.0\n', r[1])
      assertTrue(r[2], r[2].contains('installer=/tmp/x/install.py index=https://idx.example/simple'))
      List after = run(Commands.INSTALLED_VERSION_SCRIPT, env)
      assertTrue(StepOptions.versionMatches(after[1], '0.1.0'))
    } finally {
      dir.deleteDir()
    }
  }

  @Test
  void aFailedInstallerStopsTheScriptWithItsOwnMessage() {
    File dir = File.createTempDir()
    try {
      File python = new File(dir, 'fake-python')
      python.text = '''#!/bin/sh
mkdir -p "$4/bin" && touch "$4/pyvenv.cfg"
printf '#!/bin/sh\\necho "ciReport.install: the pinned dependencies: refused" >&2\\nexit 1\\n' > "$4/bin/python"
printf '#!/bin/sh\\necho "ci-report ran"\\n' > "$4/bin/ci-report"
chmod +x "$4/bin/python" "$4/bin/ci-report"
'''
      python.setExecutable(true)
      List r = run(Commands.INSTALL_SCRIPT, [CI_REPORT_VENV: new File(dir, 'v').path, CI_REPORT_VERSION: '0.1.0',
                                             CI_REPORT_PYTHON: python.path, CI_REPORT_INSTALLER: 'install.py'])
      assertEquals(1, r[0])
      assertTrue(r[2], r[2].contains('ciReport.install: the pinned dependencies: refused'))
      assertFalse(r[1], r[1].contains('ci-report ran'))
    } finally {
      dir.deleteDir()
    }
  }

  @Test
  void installScriptSaysWhatToDoWhenPythonOrVenvIsMissing() {
    File dir = File.createTempDir()
    try {
      String venv = new File(dir, 'tools/ci-report-0.1.0').path
      List missing = run(Commands.INSTALL_SCRIPT, [CI_REPORT_VENV: venv, CI_REPORT_VERSION: '0.1.0',
                                                   CI_REPORT_PYTHON: 'no-such-python3'])
      assertEquals(127, missing[0])
      assertTrue(missing[2], missing[2].contains("ciReport.install: 'no-such-python3' is not on this agent's PATH"))
      assertTrue(missing[2], missing[2].contains('apt-get install -y python3 python3-venv'))
      // Debian's python3 without python3-venv: "ensurepip is not available", exit 1
      File python = new File(dir, 'python-without-venv')
      python.text = '#!/bin/sh\necho "The virtual environment was not created successfully because ensurepip is not available." >&2\nexit 1\n'
      python.setExecutable(true)
      List noVenv = run(Commands.INSTALL_SCRIPT, [CI_REPORT_VENV: venv, CI_REPORT_VERSION: '0.1.0', CI_REPORT_PYTHON: python.path])
      assertEquals(1, noVenv[0])
      assertTrue(noVenv[2], noVenv[2].contains('apt-get install -y python3-venv'))
    } finally {
      dir.deleteDir()
    }
  }

  @Test
  void installScriptRefusesToReplaceADirectoryThatIsNotAVenv() {
    File dir = File.createTempDir()
    try {
      new File(dir, 'precious.txt').text = 'keep me'
      List r = run(Commands.INSTALL_SCRIPT, [CI_REPORT_VENV: dir.path, CI_REPORT_VERSION: '0.1.0', CI_REPORT_PYTHON: 'false'])
      assertNotEquals(0, r[0])
      assertTrue(r[2].contains('is not a Python venv; refusing to replace it'))
      assertTrue(new File(dir, 'precious.txt').exists())
    } finally {
      dir.deleteDir()
    }
  }

  @Test
  void callbackExitCodeMessages() {
    assertNull(Reports.callbackMessage(0))
    [75, 65, 78, 70].each { rc -> assertTrue(Reports.callbackMessage(rc).contains("exit ${rc}".toString())) }
    assertEquals('ci-report callback: ci-report exited with code 3', Reports.callbackMessage(3))
  }

  @Test
  void planParsingKeepsOnlyPlainValues() {
    Map plan = Reports.parsePlan('{"schema":"ci-report/image-plan/v1","script":"s.sh","timeoutSeconds":300,"report":"r.json","x":{"y":1}}')
    assertEquals([schema: 'ci-report/image-plan/v1', script: 's.sh', plan: null, logFile: null, rcFile: null, timesFile: null,
                  report: 'r.json', timeoutSeconds: 300L, killGraceSeconds: 0L, skipped: false], plan)
    Map full = Reports.parsePlan('{"schema":"ci-report/image-plan/v1","script":"s.sh","plan":"w/image-plan.json",' +
      '"timeoutSeconds":600,"killGraceSeconds":30,"skipped":true}')
    assertEquals(['w/image-plan.json', 600L, 30L, true], [full.plan, full.timeoutSeconds, full.killGraceSeconds, full.skipped])
    assertTrue(Reports.parsePlan('').error.contains('did not write a JSON plan'))
    assertTrue(Reports.parsePlan('[1]').error.contains('not write a JSON object'))
    assertTrue(Reports.parsePlan('{"schema":"ci-report/image-plan/v1","script":"s","timeoutSeconds":9,"killGraceSeconds":"x"}')
      .error.contains('killGraceSeconds'))
    assertTrue(Reports.parsePlan('{"schema":"ci-report/image-plan/v1","script":"s","timeoutSeconds":"9"}').error.contains('timeoutSeconds'))
    assertTrue(Reports.parsePlan('{"schema":"ci-report/image-plan/v1","timeoutSeconds":9}').error.contains('without a script'))
  }

  @Test
  void diagnosisReading() {
    assertEquals([outcome: 'pushed', code: null, summary: null, fixes: []],
                 Reports.diagnosis('{"outcome":"pushed","diagnosis":null}'))
    assertEquals([outcome: null, code: null, summary: null, fixes: []], Reports.diagnosis('{oops'))
    assertEquals([outcome: null, code: null, summary: null, fixes: []], Reports.diagnosis(null))
    assertEquals('registry-auth', Reports.diagnosis('{"outcome":"failed","diagnosis":{"code":"registry-auth","summary":"s"}}').code)
  }

  @Test
  void returnedValuesAndHelpersAreSerializable() {
    List objects = [new Shell(), new Commands(), new Reports(), new StepOptions(),
                    Reports.parsePlan('{"schema":"ci-report/image-plan/v1","script":"s","timeoutSeconds":1}'),
                    Reports.diagnosis('{"outcome":"failed","diagnosis":{"code":"c","summary":"s","fixes":["f"]}}'),
                    StepOptions.merge(StepOptions.callbackDefaults(), [junit: ['a']])]
    objects.each { o -> new ObjectOutputStream(new ByteArrayOutputStream()).writeObject(o) }
  }

  @Test
  void mergeDoesNotModifyTheCallersMap() {
    Map given = [junit: 'a']
    Map merged = StepOptions.merge(StepOptions.callbackDefaults(), given)
    merged.status = 'SUCCESS'
    assertEquals([junit: 'a'], given)
  }

  @Test
  void everyOptionIsDocumentedInTheHelpText() {
    String html = new File('vars/ciReport.txt').text
    // Jenkins shows vars/*.txt as HTML (Safe HTML formatter): only <p> and <pre>, and no raw '<' inside them
    String body = html.replaceAll(/<\/?(p|pre)>/, '')
    assertTrue('ciReport.txt: a tag other than <p>/<pre>, or an unescaped <', !body.contains('<') && !body.contains('>'))
    String help = body.replace('&lt;', '<').replace('&gt;', '>').replace('&amp;', '&')
    Map sections = [callback: StepOptions.callbackDefaults(), imagePush: StepOptions.imagePushDefaults(),
                    install: StepOptions.installDefaults()]
    sections.each { step, defaults ->
      List<Integer> heads = []
      def m = help =~ /(?m)^ciReport\.(\w+)\(options\)/
      while (m.find()) {
        heads << m.start()
      }
      int start = help.indexOf("\nciReport.${step}(options)".toString()) + 1
      assertTrue("no section for ${step}".toString(), start > 0)
      int end = heads.findAll { i -> i > start }.min() ?: help.length()
      String section = help.substring(start, end)
      defaults.keySet().each { k ->
        assertTrue("ciReport.txt does not document ${step} option ${k}".toString(), (section =~ /(?m)^\s+${k}\b/).find())
      }
    }
  }

  @Test
  void varsNeverInterpolateIntoShOrNameSecretVariablesInScripts() {
    String vars = new File('vars/ciReport.groovy').text
    assertFalse('sh with a double-quoted script', (vars =~ /sh\s*\(?\s*"/).find())
    assertFalse('script: with a GString', (vars =~ /script:\s*"/).find())
    assertFalse((vars =~ /\$\{?env\.JENKINS_/).find())
  }

}
