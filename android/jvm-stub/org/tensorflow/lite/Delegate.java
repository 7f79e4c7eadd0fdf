// COMPILE-TIME STAND-IN, NOT PART OF ANY BUILD THAT SHIPS.
//
// Written for this project so that CocopieDelegate.java and its JVM test
// compile where no TensorFlow Lite / LiteRT Android library is available.
// It states only the contract CocopieDelegate relies on: an interpreter
// asks a delegate for the address of its native TfLiteDelegate and closes it
// when done. Android builds take the real org.tensorflow.lite.Delegate from
// the TensorFlow Lite (or LiteRT) library instead; build.gradle never sees
// this directory.
package org.tensorflow.lite;

import java.io.Closeable;

public interface Delegate extends Closeable {
  /** Address of the native TfLiteDelegate the interpreter will apply. */
  long getNativeHandle();

  /** Releases the native delegate; no exception, safe to repeat. */
  @Override
  default void close() {}
}
