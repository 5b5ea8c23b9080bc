// Runs every *Test.groovy under test/ with the JUnit 4 bundled with Debian's groovy.
// Usage (from shared-library/): groovy test/run.groovy    Last line: "N passed, N failed".
import org.junit.runner.JUnitCore
import org.junit.runner.Result

GroovyClassLoader gcl = new GroovyClassLoader(this.class.classLoader)
['test', 'src', 'test/stubs'].each { d -> gcl.addClasspath(d) }
List<Class> classes = []
new File('test').eachFileRecurse { File f ->
  if (f.name.endsWith('Test.groovy')) {
    classes << gcl.parseClass(f)
  }
}
Result r = new JUnitCore().run(classes as Class[])
r.failures.each { f ->
  println "FAIL ${f.testHeader}: ${f.message}"
  println f.trace.readLines().take(12).join('\n')
}
println "${r.runCount - r.failureCount} passed, ${r.failureCount} failed"
System.exit(r.failureCount == 0 && r.runCount > 0 ? 0 : 1)
