// Groovy 2.4 parse check (no class resolution), the parser Jenkins itself uses, so it also accepts
// Jenkinsfiles with @Library and declarative pipeline blocks. Usage: groovy parse_only.groovy FILE...
import org.codehaus.groovy.control.CompilationFailedException
import org.codehaus.groovy.control.CompilationUnit
import org.codehaus.groovy.control.Phases

int bad = 0
if (!args) {
  println 'usage: groovy parse_only.groovy FILE...'
  System.exit(2)
}
args.each { String path ->
  CompilationUnit cu = new CompilationUnit()
  cu.addSource(new File(path))
  try {
    cu.compile(Phases.CONVERSION)
    println "ok   ${path}"
  } catch (CompilationFailedException e) {
    bad++
    println "FAIL ${path}\n${e.message}"
  }
}
System.exit(bad ? 1 : 0)
