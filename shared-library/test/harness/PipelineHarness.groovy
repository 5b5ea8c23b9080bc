package harness

import java.util.regex.Pattern
import org.jenkinsci.plugins.workflow.steps.MissingContextVariableException

/**
 * A small pipeline harness (no CPS): the steps the library uses are closures in the script binding that
 * record each call (name, arguments, environment, container) and then act like Jenkins would.
 */
class PipelineHarness {

  final Binding binding = new Binding()
  final List<Map> calls = []
  final Map env = [:]
  final Map currentBuild = [result: null, currentResult: 'SUCCESS', number: 1, duration: 0L, startTimeInMillis: 0L]
  final List shMocks = []
  final Map files = [:]
  final Map credentials = [:]
  final List<String> resourcesRead = []
  final List<String> log = []
  final List<String> containers = []

  /** Set while parallel(failFast: true) stops a branch after another failed: its next sh step is interrupted. */
  String stopping = null
  final File root
  /** false: outside node/agent (`agent none`): no WORKSPACE, and workspace steps throw as Jenkins' do. */
  boolean node = true
  private final GroovyShell shell

  PipelineHarness(File root) {
    this.root = root
    GroovyClassLoader gcl = new GroovyClassLoader(PipelineHarness.classLoader)
    gcl.addClasspath(new File(root, 'src').path)
    gcl.addClasspath(new File(root, 'test/stubs').path)
    shell = new GroovyShell(gcl, binding)
    binding.setVariable('env', env)
    binding.setVariable('currentBuild', currentBuild)
    registerDefaults()
  }

  /** Registers a step: record the call, then run impl. */
  void step(String name, Closure impl) {
    binding.setVariable(name, { Object... a ->
      calls << [name: name, args: a.toList(), env: new LinkedHashMap(env),
                container: containers ? containers[-1] : null]
      impl.call(*a)
    })
  }

  /**
   * Canned sh result: matcher is a String (contained), a Pattern (found) or a Closure (predicate on the
   * script); rc is the exit code, out the stdout; effect (optional) runs before returning, e.g. to write a file.
   */
  void onSh(Object matcher, int rc, String out = '', Closure effect = null) {
    shMocks.add(0, [matcher, rc, out, effect])
  }

  /** Leaves the node: WORKSPACE goes away and sh, fileExists, readFile, writeFile, archiveArtifacts throw. */
  void noNode() {
    node = false
    env.remove('WORKSPACE')
    env.remove('WORKSPACE_TMP')
  }

  /** What a step that needs a workspace does outside node (the FilePath context is missing). */
  void requireNode() {
    if (!node) {
      throw new MissingContextVariableException(File)
    }
  }

  List<Map> callsTo(String n) {
    return calls.findAll { c -> c.name == n }
  }

  List<String> names() {
    return calls.collect { c -> c.name }
  }

  /** Every sh call as [script, env, container, options]. */
  List<Map> shCalls() {
    return callsTo('sh').collect { c ->
      Map o = c.args[0] instanceof Map ? c.args[0] : [script: c.args[0]]
      [script: o.script.toString(), env: c.env, container: c.container, options: o]
    }
  }

  Script loadVar(String n) {
    Script s = shell.parse(new File(root, "vars/${n}.groovy"))
    s.binding = binding
    binding.setVariable(n, s)
    return s
  }

  private void registerDefaults() {
    step('echo') { m -> log << m.toString(); null }
    step('error') { m ->
      currentBuild.result = 'FAILURE'
      currentBuild.currentResult = 'FAILURE'
      throw new AbortException(m.toString())
    }
    step('unstable') { m ->
      log << "WARNING: ${m}".toString()
      if (currentBuild.currentResult == 'SUCCESS') {
        currentBuild.result = 'UNSTABLE'
        currentBuild.currentResult = 'UNSTABLE'
      }
      null
    }
    step('isUnix') { -> true }
    step('fileExists') { p -> requireNode(); files.containsKey(p.toString()) }
    step('readFile') { p ->
      requireNode()
      String f = (p instanceof Map ? p.file : p).toString()
      if (!files.containsKey(f)) {
        throw new AbortException("java.nio.file.NoSuchFileException: ${f}")
      }
      files[f]
    }
    step('writeFile') { Map a -> requireNode(); files[a.file.toString()] = a.text.toString(); null }
    step('archiveArtifacts') { Map a -> requireNode(); null }
    step('string') { Map a -> [type: 'string', credentialsId: a.credentialsId, variable: a.variable] }
    step('usernamePassword') { Map a ->
      [type: 'usernamePassword', credentialsId: a.credentialsId, usernameVariable: a.usernameVariable,
       passwordVariable: a.passwordVariable]
    }
    // libraryResource: a file under the library's resources/, as text; a missing one throws (hudson.AbortException)
    step('libraryResource') { String path ->
      File f = new File(new File(root, 'resources'), path)
      if (!f.isFile()) {
        throw new AbortException("No such library resource ${path} could be found.")
      }
      resourcesRead << path
      f.getText('UTF-8')
    }
    step('withCredentials') { List bs, Closure body ->
      Map saved = new LinkedHashMap(env)
      try {
        bs.each { b ->
          if (!credentials.containsKey(b.credentialsId)) {
            throw new AbortException("Could not find credentials entry with ID '${b.credentialsId}'")
          }
          Object value = credentials[b.credentialsId]
          if (b.type == 'usernamePassword') {
            env[b.usernameVariable] = value.username
            env[b.passwordVariable] = value.password
          } else {
            env[b.variable] = value
          }
        }
        body.call()
      } finally {
        env.clear()
        env.putAll(saved)
      }
    }
    step('withEnv') { List kv, Closure body ->
      Map saved = new LinkedHashMap(env)
      try {
        kv.each { e -> List p = e.toString().split('=', 2) as List; env[p[0]] = p[1] }
        body.call()
      } finally {
        env.clear()
        env.putAll(saved)
      }
    }
    step('timeout') { Map a, Closure body -> body.call() }
    // parallel(name: closure, ..., failFast: b): the branches run one after the other, in order; the first
    // failure is rethrown once all have ended (workflow-cps' ParallelStep). With failFast, a failure stops the
    // branches still running: here the later ones are entered and interrupted at once (FlowInterruptedException).
    step('parallel') { Map branches ->
      Throwable first = null
      branches.findAll { k, v -> v instanceof Closure }.each { k, v ->
        stopping = first != null && branches.failFast ? k.toString() : null
        try {
          v.call()
        } catch (Throwable t) {
          first = first ?: t
        } finally {
          stopping = null
        }
      }
      if (first != null) {
        throw first
      }
      null
    }
    // container('name') or container(name: 'name', shell: '/busybox/sh') (kubernetes plugin)
    step('container') { Object a, Closure body ->
      String n = a instanceof Map ? a.name.toString() : a.toString()
      containers << n
      try {
        body.call()
      } finally {
        containers.remove(containers.size() - 1)
      }
    }
    step('sh') { a ->
      requireNode()
      if (stopping != null) {
        throw new FlowInterruptedException("Failed in branch ${stopping}".toString())
      }
      Map o = a instanceof Map ? a : [script: a]
      String s = o.script.toString()
      List hit = shMocks.find { m ->
        m[0] instanceof Pattern ? ((Pattern) m[0]).matcher(s).find() :
          m[0] instanceof Closure ? m[0](s) : s.contains(m[0].toString())
      }
      if (hit && hit[3]) {
        hit[3].call(s)
      }
      int rc = hit ? hit[1] : 0
      if (o.returnStatus) {
        return rc
      }
      if (rc != 0) {
        throw new AbortException("script returned exit code ${rc}")
      }
      return o.returnStdout ? (hit ? hit[2] : '') : null
    }
  }

}
