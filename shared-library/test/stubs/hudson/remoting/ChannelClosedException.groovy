package hudson.remoting

/** Test stand-in with the real name of Jenkins remoting's exception (extends IOException: the channel is closed). */
class ChannelClosedException extends IOException {

  ChannelClosedException(String message, Throwable cause) {
    super(message, cause)
  }

}
