package org.cocopie.delegate;

import org.tensorflow.lite.Delegate;

/**
 * The cocopie pattern-convolution delegate for the TensorFlow Lite / LiteRT
 * Java interpreter.
 *
 * <p>It runs the 3x3 CONV_2D layers that a cocopie-converted model describes
 * in its "cocopie_lr" metadata with kernels that touch only the kept weights;
 * every other node stays with the interpreter's own kernels.
 *
 * <pre>{@code
 * CocopieDelegate.Options options =
 *     new CocopieDelegate.Options().setNumThreads(2);
 * try (CocopieDelegate delegate = new CocopieDelegate(options);
 *      Interpreter interpreter = new Interpreter(
 *          modelBuffer, new Interpreter.Options().addDelegate(delegate))) {
 *   interpreter.run(input, output);
 * }  // the interpreter is closed before the delegate
 * }</pre>
 *
 * <p>Close the delegate only after every interpreter using it is closed.
 * Closing twice is harmless; using a closed delegate throws
 * {@link IllegalStateException}.
 */
public final class CocopieDelegate implements Delegate, AutoCloseable {

  /** Which convolution kernels the delegate runs (codes of the C API). */
  public enum Kernel {
    /** Per layer, the SIMD kernel expected fastest on this CPU (default). */
    AUTO(0),
    /** Scalar reference loops, for checking results. */
    REFERENCE(1),
    /** SIMD, channel-major rows (needs a library that has it). */
    ROWS(2),
    /** SIMD, NHWC blocks of output channels (needs a library that has it). */
    BLOCK(3);

    final int code;

    Kernel(int code) {
      this.code = code;
    }
  }

  /** Options of a delegate; setters return {@code this} for chaining. */
  public static final class Options {
    private int numThreads = 0;
    private Kernel kernel = Kernel.AUTO;
    private boolean verbose = false;

    /**
     * Worker threads for the delegate's kernels; 0 (default) follows the
     * interpreter's thread count.
     *
     * @throws IllegalArgumentException if {@code numThreads} is negative.
     */
    public Options setNumThreads(int numThreads) {
      if (numThreads < 0) {
        throw new IllegalArgumentException(
            "Expected numThreads >= 0 (0 follows the interpreter). Received: numThreads="
                + numThreads);
      }
      this.numThreads = numThreads;
      return this;
    }

    /**
     * Kernel family to run (default {@link Kernel#AUTO}).
     *
     * @throws IllegalArgumentException if {@code kernel} is null.
     */
    public Options setKernel(Kernel kernel) {
      if (kernel == null) {
        throw new IllegalArgumentException("Expected a Kernel. Received: kernel=null");
      }
      this.kernel = kernel;
      return this;
    }

    /** When true the delegate prints the nodes it takes over on stderr. */
    public Options setVerbose(boolean verbose) {
      this.verbose = verbose;
      return this;
    }

    public int getNumThreads() {
      return numThreads;
    }

    public Kernel getKernel() {
      return kernel;
    }

    public boolean isVerbose() {
      return verbose;
    }
  }

  /** Name of the JNI library (libcocopie_delegate_jni.so). */
  public static final String LIBRARY_NAME = "cocopie_delegate_jni";

  private static boolean libraryLoaded = false;

  private long handle;
  private final Options options;

  /** A delegate with default options. */
  public CocopieDelegate() {
    this(new Options());
  }

  /**
   * A delegate with {@code options}.
   *
   * @throws IllegalArgumentException if the native library refuses the options.
   * @throws UnsatisfiedLinkError if libcocopie_delegate_jni.so cannot be loaded.
   */
  public CocopieDelegate(Options options) {
    if (options == null) {
      throw new IllegalArgumentException("Expected Options. Received: options=null");
    }
    loadLibrary();
    this.options = options;
    this.handle = nativeCreate(options.numThreads, options.kernel.code, options.verbose ? 1 : 0);
  }

  /** The options this delegate was made with. */
  public Options getOptions() {
    return options;
  }

  @Override
  public synchronized long getNativeHandle() {
    if (handle == 0) {
      throw new IllegalStateException("This CocopieDelegate is closed.");
    }
    return handle;
  }

  /**
   * Number of CONV_2D nodes the delegate took over in the latest interpreter
   * it was applied to (0 before any).
   */
  public synchronized int getClaimedNodes() {
    return nativeClaimedNodes(getNativeHandle());
  }

  /** Releases the native delegate. Call after closing its interpreters. */
  @Override
  public synchronized void close() {
    if (handle != 0) {
      nativeDelete(handle);
      handle = 0;
    }
  }

  /** The SIMD target the kernels dispatch to on this CPU, e.g. "NEON". */
  public static String simdTarget() {
    loadLibrary();
    return nativeSimdTarget();
  }

  private static synchronized void loadLibrary() {
    if (!libraryLoaded) {
      System.loadLibrary(LIBRARY_NAME);
      libraryLoaded = true;
    }
  }

  // Package-private so that tests can pass codes the Kernel enum never does.
  static native long nativeCreate(int numThreads, int kernel, int verbose);

  private static native void nativeDelete(long handle);

  private static native int nativeClaimedNodes(long handle);

  private static native String nativeSimdTarget();
}
