package harness

/** What a Jenkins timeout or abort throws (Jenkins: FlowInterruptedException extends InterruptedException). */
class FlowInterruptedException extends InterruptedException {

  FlowInterruptedException(String message) {
    super(message)
  }

}
