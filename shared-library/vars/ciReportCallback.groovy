// ciReportCallback(...): ciReport.callback(...) as a step of its own, so that a Declarative pipeline needs no
// script { } block:   post { always { ciReportCallback(junit: ['build/test-results/*.xml']) } }
// Same options, same return value (see ciReportCallback.txt and ciReport.txt).

/** Sends the callback (ciReport.callback); returns ci-report's exit code. Never fails the build unless asked. */
def call(Map options = [:]) {
  return ciReport.callback(options)
}
