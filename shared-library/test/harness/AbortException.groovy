package harness

/** What error() throws here (Jenkins: hudson.AbortException). */
class AbortException extends RuntimeException {

  AbortException(String message) {
    super(message)
  }

}
