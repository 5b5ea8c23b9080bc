package org.jenkinsci.plugins.workflow.steps

/**
 * Test stand-in with the real name and message of workflow-step-api's exception (thrown by a step that needs
 * a context such as hudson.FilePath outside node): "Required context " + type + " is missing".
 */
class MissingContextVariableException extends Exception {

  MissingContextVariableException(Class type) {
    super("Required context ${type} is missing".toString())
  }

}
