package io.cireport

import com.cloudbees.groovy.cps.NonCPS

/**
 * POSIX shell quoting for the non-secret values the library puts on a command line.
 * Secrets never go through here: they reach ci-report through withCredentials and the environment.
 */
class Shell implements Serializable {

  private static final long serialVersionUID = 1L
  private static final String SAFE = /^[A-Za-z0-9_@%+=:,.\/-]+$/

  /** Quotes one word: safe words stay as they are, anything else is wrapped in single quotes. */
  @NonCPS
  static String quote(Object value) {
    String s = value == null ? '' : value.toString()
    if (s ==~ SAFE) {
      return s
    }
    return "'" + s.replace("'", "'\\''") + "'"
  }

  /** Quotes each word and joins them with single spaces. */
  @NonCPS
  static String join(List words) {
    return words.collect { w -> quote(w) }.join(' ')
  }

}
