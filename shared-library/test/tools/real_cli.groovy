// Runs ciReport steps in the pipeline harness against the REAL ci-report CLI: `sh` runs each script with
// `sh -xe` (as Jenkins does) in a real workspace, with this process's environment plus the step's (withEnv,
// withCredentials); fileExists/readFile/archiveArtifacts look at the real workspace. In the Kaniko container
// the library's `/busybox/sh <script>` runs with the busybox given per scenario (its applets first on PATH),
// as in the Kaniko debug image. Used by tests/integration/test_library_cli_contract.py.
//
// Usage (from shared-library/):
//   groovy -cp test:src:test/stubs test/tools/real_cli.groovy SCENARIOS.json RESULTS.json
// SCENARIOS.json: a list of {name, step, options, workspace, env, busybox, currentBuild, credentials}.
// RESULTS.json: per scenario {name, returned, error, sh: [{script, rc, container, stderr}], log, archived, result}.
import groovy.json.JsonOutput
import groovy.json.JsonSlurperClassic
import harness.AbortException
import harness.PipelineHarness

Map runScenario(Map s) {
  File ws = new File(s.workspace.toString())
  PipelineHarness h = new PipelineHarness(new File('.'))
  h.env.WORKSPACE = ws.path
  h.env.putAll(s.pipelineEnv ?: [:])
  h.credentials.putAll(s.credentials ?: [:])
  h.currentBuild.putAll(s.currentBuild ?: [:])
  List shRuns = []
  List archived = []
  Closure inWs = { Object p -> p.toString().startsWith('/') ? new File(p.toString()) : new File(ws, p.toString()) }
  h.step('fileExists') { p -> inWs(p).exists() }
  // writeFile creates missing parent folders, as Jenkins' FilePath.write does
  h.step('writeFile') { Map a -> File f = inWs(a.file); f.parentFile.mkdirs(); f.setText(a.text.toString(), 'UTF-8'); null }
  h.step('readFile') { p ->
    File f = inWs(p instanceof Map ? p.file : p)
    if (!f.exists()) {
      throw new AbortException("java.nio.file.NoSuchFileException: ${f}")
    }
    f.getText('UTF-8')
  }
  h.step('archiveArtifacts') { Map a -> archived << [artifacts: a.artifacts, exists: inWs(a.artifacts).exists()]; null }
  h.step('sh') { a ->
    Map o = a instanceof Map ? a : [script: a]
    String script = o.script.toString()
    String container = h.containers ? h.containers[-1] : null
    Map<String, String> env = new LinkedHashMap<String, String>(System.getenv())
    (s.env ?: [:]).each { k, v -> env[k.toString()] = v.toString() }
    h.env.each { k, v -> env[k.toString()] = v.toString() }
    if (container == (s.kanikoContainer ?: 'kaniko') && s.busybox) {
      script = script.replaceFirst('^/busybox/sh ', "${s.busybox}/sh ")
      env.PATH = "${s.busybox}:${env.PATH}".toString()
    }
    ProcessBuilder pb = new ProcessBuilder(['sh', '-xe', '-c', script]).directory(ws)
    pb.environment().clear()
    pb.environment().putAll(env)
    Process p = pb.start()
    ByteArrayOutputStream out = new ByteArrayOutputStream()
    ByteArrayOutputStream err = new ByteArrayOutputStream()
    p.waitForProcessOutput(out, err)
    int rc = p.exitValue()
    shRuns << [script: o.script.toString(), rc: rc, container: container, stderr: err.toString('UTF-8')]
    if (o.returnStatus) {
      return rc
    }
    if (rc != 0) {
      throw new AbortException("script returned exit code ${rc}")
    }
    return o.returnStdout ? out.toString('UTF-8') : null
  }
  Script lib = h.loadVar('ciReport')
  Map result = [name: s.name, returned: null, error: null]
  try {
    result.returned = lib."${s.step}"(s.options ?: [:])
  } catch (AbortException e) {
    result.error = e.message
  }
  result.sh = shRuns
  result.log = h.log
  result.archived = archived
  result.result = h.currentBuild.result
  return result
}

List scenarios = new JsonSlurperClassic().parse(new File(args[0]))
List results = scenarios.collect { Map s -> runScenario(s) }
new File(args[1]).text = JsonOutput.prettyPrint(JsonOutput.toJson(results))
