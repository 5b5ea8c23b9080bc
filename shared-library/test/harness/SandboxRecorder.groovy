package harness

import groovy.transform.CompileStatic
import java.lang.reflect.Constructor
import org.codehaus.groovy.reflection.ClassInfo
import java.lang.reflect.Method
import java.lang.reflect.Modifier
import org.codehaus.groovy.runtime.DateGroovyMethods
import org.codehaus.groovy.runtime.DefaultGroovyMethods
import org.codehaus.groovy.runtime.EncodingGroovyMethods
import org.codehaus.groovy.runtime.ProcessGroovyMethods
import org.codehaus.groovy.runtime.StringGroovyMethods

/**
 * Records every method call, static call, constructor call and (non-Map) property read that the library's
 * own code makes while it runs in the harness, and judges each one the way script-security's
 * SandboxInterceptor does (onMethodCall / onNewInstance / onGetProperty, script-security-plugin
 * src/main/java/org/jenkinsci/plugins/scriptsecurity/sandbox/groovy/SandboxInterceptor.java):
 *   - the Java method Groovy would pick must be listed as `method <type> <name> <params>` for its class or a
 *     supertype declaring it (static: `staticMethod`; constructor: `new`);
 *   - otherwise a GDK method of one of the DGM classes, listed as `staticMethod <DGM class> <name> <self> <params>`;
 *   - number arithmetic on a Number is allowed (NUMBER_MATH_NAMES);
 *   - calls on the library's own classes (io.cireport.*, the vars scripts and their closures) are allowed: the
 *     sandbox's ClassLoaderWhitelist permits classes defined by the script's own class loader.
 * Pipeline steps (sh, echo...) are binding closures here and are not Java signatures; they are not judged.
 *
 * Installed by wrapping every metaclass (existing ones and those created later) in a recording
 * DelegatingMetaClass; uninstall() restores the registry. A call counts as the library's when the nearest
 * stack frame outside Groovy's runtime and the JDK belongs to library code.
 */
class SandboxRecorder {

  static final List<Class> DGM_CLASSES = [DefaultGroovyMethods, StringGroovyMethods, EncodingGroovyMethods,
                                          DateGroovyMethods, ProcessGroovyMethods]

  static final Set<String> NUMBER_MATH_NAMES = ['plus', 'minus', 'multiply', 'div', 'compareTo', 'or', 'and', 'xor',
                                                'intdiv', 'mod', 'leftShift', 'rightShift', 'rightShiftUnsigned'] as Set

  /** Records as [kind, receiverClass, name, argClasses]; deduplicated by their text. */
  final Map<String, List> calls = new LinkedHashMap<String, List>()

  /** Set while the recorder itself runs: its own calls create metaclasses and must not recurse. */
  static final ThreadLocal<Boolean> BUSY = new ThreadLocal<Boolean>()

  private final MetaClassRegistry registry = GroovySystem.metaClassRegistry
  private final Map<Class, MetaClass> replaced = [:]
  private MetaClassRegistry.MetaClassCreationHandle originalHandle

  void install() {
    originalHandle = registry.metaClassCreationHandler
    SandboxRecorder recorder = this
    registry.metaClassCreationHandle = new RecordingHandle(recorder)
    // Every class Groovy has seen so far (the registry's iterator lists only modified metaclasses).
    List<Class> seen = ClassInfo.allClassInfo.collect { ClassInfo ci -> ci.cachedClass.theClass }
    seen.each { Class c ->
      if (c != null && wraps(c)) {
        MetaClass mc = registry.getMetaClass(c)
        if (!(mc instanceof Recording)) {
          replaced[c] = mc
          registry.setMetaClass(c, new Recording(mc, this))
        }
      }
    }
  }

  void uninstall() {
    registry.metaClassCreationHandle = originalHandle
    List<Class> seen = ClassInfo.allClassInfo.collect { ClassInfo ci -> ci.cachedClass.theClass }
    seen.each { Class c ->
      if (c != null && registry.getMetaClass(c) instanceof Recording) {
        if (replaced.containsKey(c)) {
          registry.setMetaClass(c, replaced[c])
        } else {
          registry.removeMetaClass(c)
        }
      }
    }
  }

  /** Groovy's own machinery and the test code are left alone; everything a library call can reach is wrapped. */
  @CompileStatic
  static boolean wraps(Class c) {
    String n = c.name
    boolean reachable = n.startsWith('java.') || n.startsWith('groovy.json.') || n.startsWith('hudson.') ||
      n.startsWith('org.jenkinsci.') || n.startsWith('org.codehaus.groovy.runtime.GString')
    return reachable && !(Closure.isAssignableFrom(c) || Script.isAssignableFrom(c) || c.isArray() ||
      n.startsWith('java.lang.reflect.') || n.startsWith('java.lang.invoke.') || n.startsWith('java.lang.Stack'))
  }

  /**
   * Who makes the call: null (not the library), '' (library code itself), or the name of the
   * ScriptBytecodeAdapter operator the library used (`switch`/`in` -> isCase, `as` -> asType): the sandbox
   * intercepts those as static calls of ScriptBytecodeAdapter, not the method Groovy calls inside them.
   */
  @CompileStatic
  static String caller() {
    // StackWalker walks lazily: only the frames up to the first one outside Groovy's runtime and the JDK.
    List<StackWalker.StackFrame> frames = (List<StackWalker.StackFrame>) WALKER.walk(FIRST_FRAMES)
    String operator = ''
    for (StackWalker.StackFrame f : frames) {
      String c = f.className
      if (c == 'org.codehaus.groovy.runtime.ScriptBytecodeAdapter' && f.methodName in OPERATORS) {
        operator = f.methodName
        continue
      }
      if (c == 'org.codehaus.groovy.runtime.typehandling.DefaultTypeTransformation' && f.methodName == 'castToBoolean') {
        return null  // Groovy truth (if (s), s ?: x) is not a call the sandbox intercepts
      }
      if (internal(c)) {
        continue
      }
      return isLibraryClassName(c) ? operator : null
    }
    return null
  }

  @CompileStatic
  static boolean internal(String c) {
    return c.startsWith('harness.SandboxRecorder') || c.startsWith('org.codehaus.groovy.') || c.startsWith('groovy.') ||
      c.startsWith('java.') || c.startsWith('jdk.') || c.startsWith('sun.')
  }

  static final StackWalker WALKER = StackWalker.getInstance()

  /** The frames up to and including the first one that is not Groovy's runtime or the JDK (at most 64). */
  static final java.util.function.Function FIRST_FRAMES = { java.util.stream.Stream s ->
    List out = []
    Iterator it = s.iterator()
    while (it.hasNext() && out.size() < 64) {
      StackWalker.StackFrame f = (StackWalker.StackFrame) it.next()
      out << f
      if (!internal(f.className)) {
        break
      }
    }
    return out
  } as java.util.function.Function

  static final Set<String> OPERATORS = ['isCase', 'asType', 'castToType'] as Set

  /** Records a call unless it is not the library's; an operator's inner call is recorded as the operator. */
  @CompileStatic
  void observe(String kind, Class receiver, String name, Object[] args) {
    if (BUSY.get()) {
      return
    }
    BUSY.set(Boolean.TRUE)
    try {
      String who = caller()
      if (who == null) {
        return
      }
      if (who) {
        record('operator', ScriptBytecodeAdapterName.CLASS, who, [] as Object[])
      } else {
        record(kind, receiver, name, args)
      }
    } finally {
      BUSY.remove()
    }
  }

  @CompileStatic
  static boolean isLibraryClassName(String c) {
    return c.startsWith('io.cireport.') || c.startsWith('ciReport')
  }

  @CompileStatic
  void record(String kind, Class receiver, String name, Object[] args) {
    StringBuilder key = new StringBuilder(kind).append(' ').append(receiver.name).append(' ').append(name)
    List<Object> values = []
    if (args != null) {
      for (Object a : args) {
        key.append(' ').append(a == null ? 'null' : a.getClass().name)
        values.add(a)
      }
    }
    String k = key.toString()
    if (!calls.containsKey(k)) {
      calls.put(k, [kind, receiver, name, values] as List)
    }
  }

  /** Each recorded call as [call, signature that permits it or null, reason]. */
  List<List> judge(Set<String> whitelist) {
    return calls.collect { key, c -> [key] + judgeOne(whitelist, c[0], c[1], c[2], c[3]) }
  }

  private List judgeOne(Set<String> wl, String kind, Class receiver, String name, List args) {
    if (isLibraryClassName(receiver.name)) {
      return ['library class', 'ClassLoaderWhitelist']
    }
    if (kind == 'operator') {
      String prefix = "staticMethod org.codehaus.groovy.runtime.ScriptBytecodeAdapter ${name} ".toString()
      String sig = wl.find { l -> l.startsWith(prefix) }
      return sig ? [sig, 'whitelisted operator'] : [null, "not whitelisted: ${prefix}...".toString()]
    }
    if (kind == 'static') {
      List r = judgeMethod(wl, receiver, name, args, true)
      // Groovy makes every call on a Class object a static call site: getName() on a Class is an instance call.
      return r[0] != null || pickMethod(receiver, name, args, true) != null ? r : judgeMethod(wl, Class, name, args, false)
    }
    if (kind == 'new') {
      Constructor k = pickConstructor(receiver, args)
      if (k == null) {
        return [null, 'no such constructor']
      }
      String sig = "new ${receiver.name}${params(k.parameterTypes)}".toString()
      return wl.contains(sig) ? [sig, 'whitelisted'] : [null, "not whitelisted: ${sig}".toString()]
    }
    if (kind == 'property') {
      if (Map.isAssignableFrom(receiver)) {
        return ['map key', 'Map property']
      }
      String getter = 'get' + name.capitalize()
      List r = judgeMethod(wl, receiver, getter, [], false)
      if (r[0] != null) {
        return r
      }
      return judgeMethod(wl, receiver, 'is' + name.capitalize(), [], false)
    }
    return judgeMethod(wl, receiver, name, args, false)
  }

  private List judgeMethod(Set<String> wl, Class receiver, String name, List args, boolean isStatic) {
    Method m = pickMethod(receiver, name, args, isStatic)
    if (m != null) {
      String prefix = Modifier.isStatic(m.modifiers) ? 'staticMethod' : 'method'
      for (Class t : hierarchy(m.declaringClass)) {
        String sig = "${prefix} ${t.name} ${name}${params(m.parameterTypes)}".toString()
        if (wl.contains(sig) && declares(t, name, m.parameterTypes)) {
          return [sig, 'whitelisted']
        }
      }
      return [null, "not whitelisted: ${prefix} ${m.declaringClass.name} ${name}${params(m.parameterTypes)}".toString()]
    }
    if (!isStatic && Number.isAssignableFrom(receiver) && name in NUMBER_MATH_NAMES) {
      return ['number math', 'NUMBER_MATH_NAMES']
    }
    List self = [null] + args
    List<Class> selfTypes = [receiver] + args.collect { a -> a?.getClass() }
    String rejected = null
    for (Class dgm : DGM_CLASSES) {
      Method g = pickStatic(dgm, name, selfTypes)
      if (g != null) {
        String sig = "staticMethod ${dgm.name} ${name}${params(g.parameterTypes)}".toString()
        if (wl.contains(sig)) {
          return [sig, 'whitelisted GDK method']
        }
        rejected = rejected ?: sig
      }
    }
    assert self != null
    return [null, rejected ? "not whitelisted: ${rejected}".toString() : "no such method ${receiver.name}.${name}".toString()]
  }

  private static boolean declares(Class t, String name, Class[] types) {
    try {
      t.getDeclaredMethod(name, types)
      return true
    } catch (NoSuchMethodException e) {
      return false
    }
  }

  /** The class, its superclasses and all their interfaces, nearest first. */
  static List<Class> hierarchy(Class c) {
    List<Class> out = []
    List<Class> todo = [c]
    while (todo) {
      Class t = todo.remove(0)
      if (t != null && !out.contains(t)) {
        out << t
        todo << t.superclass
        todo.addAll(t.interfaces as List)
      }
    }
    return out.findAll { t -> t != null }
  }

  static String params(Class[] types) {
    return types.collect { t -> ' ' + typeName(t) }.join('')
  }

  static String typeName(Class t) {
    return t.isArray() ? typeName(t.componentType) + '[]' : t.name
  }

  private static Method pickMethod(Class receiver, String name, List args, boolean isStatic) {
    List<Class> types = args.collect { a -> a?.getClass() }
    List<Method> found = receiver.methods.findAll { m ->
      m.name == name && Modifier.isStatic(m.modifiers) == isStatic && applicable(m.parameterTypes, types)
    }
    return mostSpecific(found, types)
  }

  private static Method pickStatic(Class owner, String name, List<Class> types) {
    List<Method> found = owner.methods.findAll { m ->
      m.name == name && Modifier.isStatic(m.modifiers) && applicable(m.parameterTypes, types)
    }
    if (!found) {
      return null
    }
    // A GDK method belongs to the metaclass of its self type: the nearest self type wins, then the other arguments.
    return found.min { m -> distance([m.parameterTypes[0]] as Class[], types.take(1)) * 1000 +
      distance(m.parameterTypes, types) }
  }

  private static Constructor pickConstructor(Class receiver, List args) {
    List<Class> types = args.collect { a -> a?.getClass() }
    List<Constructor> found = receiver.constructors.findAll { k -> applicable(k.parameterTypes, types) }
    if (!found) {
      return null
    }
    return found.find { k -> found.every { o -> moreSpecific(k.parameterTypes, o.parameterTypes) } } ?: found[0]
  }

  /** The candidate nearest to the argument types (sum of class-hierarchy distances), as Groovy picks it. */
  private static Method mostSpecific(List<Method> found, List<Class> types) {
    if (!found) {
      return null
    }
    return found.min { m -> distance(m.parameterTypes, types) }
  }

  private static int distance(Class[] params, List<Class> types) {
    int d = 0
    for (int i = 0; i < params.length; i++) {
      Class a = types[i]
      if (a != null) {
        // Like Groovy's MetaClassHelper.calculateParameterDistance: Object is the farthest match of all.
        int k = params[i] == Object ? 100 : hierarchy(box(a)).indexOf(box(params[i]))
        d += k < 0 ? 50 : k
      }
    }
    return d
  }

  private static boolean moreSpecific(Class[] a, Class[] b) {
    for (int i = 0; i < a.length; i++) {
      if (!box(b[i]).isAssignableFrom(box(a[i]))) {
        return false
      }
    }
    return true
  }

  private static boolean applicable(Class[] params, List<Class> args) {
    if (params.length != args.size()) {
      return false
    }
    for (int i = 0; i < params.length; i++) {
      Class a = args[i]
      if (a == null) {
        if (params[i].isPrimitive()) {
          return false
        }
        continue
      }
      Class p = box(params[i])
      boolean ok = p.isAssignableFrom(a) || (p == String && GString.isAssignableFrom(a)) ||
        (Number.isAssignableFrom(p) && Number.isAssignableFrom(a) && params[i].isPrimitive())
      if (!ok) {
        return false
      }
    }
    return true
  }

  private static Class box(Class c) {
    Map<Class, Class> boxes = [(int): Integer, (long): Long, (boolean): Boolean, (double): Double, (float): Float,
                               (char): Character, (byte): Byte, (short): Short]
    return boxes[c] ?: c
  }

  /** Wraps each metaclass Groovy creates from now on (unless the recorder itself is running). */
  @CompileStatic
  static class RecordingHandle extends MetaClassRegistry.MetaClassCreationHandle {

    private final SandboxRecorder recorder

    RecordingHandle(SandboxRecorder recorder) {
      this.recorder = recorder
    }

    @Override
    protected MetaClass createNormalMetaClass(Class theClass, MetaClassRegistry reg) {
      MetaClass mc = super.createNormalMetaClass(theClass, reg)
      return !BUSY.get() && wraps(theClass) ? new Recording(mc, recorder) : mc
    }

  }

  /** The recording metaclass. */
  @CompileStatic
  static class Recording extends DelegatingMetaClass {

    private final SandboxRecorder recorder

    Recording(MetaClass delegate, SandboxRecorder recorder) {
      super(delegate)
      this.recorder = recorder
      initialize()
    }

    @Override
    Object invokeMethod(Object object, String methodName, Object[] arguments) {
      recorder.observe(object instanceof Class ? 'static' : 'method', object instanceof Class ? (Class) object :
        object.getClass(), methodName, arguments)
      return super.invokeMethod(object, methodName, arguments)
    }

    @Override
    Object invokeMethod(Object object, String methodName, Object arguments) {
      Object[] args = arguments == null ? [] as Object[] : (arguments instanceof Object[] ? (Object[]) arguments :
        [arguments] as Object[])
      recorder.observe('method', object.getClass(), methodName, args)
      return super.invokeMethod(object, methodName, arguments)
    }

    @Override
    Object invokeStaticMethod(Object object, String methodName, Object[] arguments) {
      recorder.observe('static', object instanceof Class ? (Class) object : object.getClass(), methodName, arguments)
      return super.invokeStaticMethod(object, methodName, arguments)
    }

    @Override
    Object invokeConstructor(Object[] arguments) {
      recorder.observe('new', theClass, '<init>', arguments)
      return super.invokeConstructor(arguments)
    }

    @Override
    Object getProperty(Object object, String property) {
      if (!(object instanceof Map)) {
        recorder.observe('property', object instanceof Class ? (Class) object : object.getClass(), property, [] as Object[])
      }
      return super.getProperty(object, property)
    }

  }

}

/** ScriptBytecodeAdapter as a class literal for the recorder's operator records. */
class ScriptBytecodeAdapterName {

  static final Class CLASS = org.codehaus.groovy.runtime.ScriptBytecodeAdapter

}
