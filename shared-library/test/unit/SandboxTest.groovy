package unit

import static org.junit.Assert.assertTrue
import static org.junit.Assert.fail

import harness.SandboxRecorder
import org.junit.Test
import org.junit.runner.JUnitCore
import org.junit.runner.Result

/**
 * The library calls only signatures that script-security's sandbox permits, so it also works as a folder-level
 * (untrusted, sandboxed) library: every call the library's own code makes while the step tests run is judged
 * against script-security's generic-whitelist and jenkins-whitelist (the subset the library needs, shipped in
 * test/sandbox/whitelist-subset.txt with its source). SANDBOX_WHITELIST=<file> judges against another file
 * (e.g. the full upstream generic-whitelist) and prints the subset to ship.
 */
class SandboxTest {

  static final List<Class> SCENARIOS = [CallbackTest, ImagePushTest, InstallTest, HelpersTest]

  static Set<String> whitelist(File f) {
    return f.readLines().collect { l -> l.trim() }.findAll { l -> l && !l.startsWith('#') } as Set
  }

  @Test
  void theLibraryCallsOnlyWhitelistedSignatures() {
    String other = System.getenv('SANDBOX_WHITELIST')
    Set<String> wl = other ? other.split(':').collectMany { p -> whitelist(new File(p)) as List } as Set :
      whitelist(new File('test/sandbox/whitelist-subset.txt'))
    SandboxRecorder recorder = new SandboxRecorder()
    Result r
    recorder.install()
    try {
      r = new JUnitCore().run(SCENARIOS as Class[])
    } finally {
      recorder.uninstall()
    }
    assertTrue("the step tests must pass under the recorder: ${r.failures*.message}".toString(), r.wasSuccessful())
    List<List> verdicts = recorder.judge(wl)
    assertTrue("recorded only ${verdicts.size()} calls".toString(), verdicts.size() > 50)
    if (other) {
      verdicts.collect { v -> v[1] }.findAll { s -> s && (s.startsWith('method ') || s.startsWith('staticMethod ') ||
        s.startsWith('new ')) }.unique().sort().each { s -> println "SUBSET ${s}" }
    }
    List<String> rejected = verdicts.findAll { v -> v[1] == null }.collect { v -> "${v[0]} -> ${v[2]}".toString() }
    if (rejected) {
      fail("calls script-security's sandbox would reject (RejectedAccessException):\n  " + rejected.join('\n  '))
    }
  }

}
