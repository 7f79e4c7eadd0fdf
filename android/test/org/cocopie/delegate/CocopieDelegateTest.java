package org.cocopie.delegate;

import java.util.Arrays;
import java.util.List;
import org.tensorflow.lite.Delegate;

/**
 * JVM test of CocopieDelegate through the real JNI library (no JUnit on the
 * build machines: a plain main() that exits non-zero on the first failure).
 *
 * <pre>
 * java -Djava.library.path=DIR -cp CLASSES org.cocopie.delegate.CocopieDelegateTest
 * </pre>
 */
public final class CocopieDelegateTest {
  private static int checks = 0;

  private static void check(boolean condition, String what) {
    checks++;
    if (!condition) {
      throw new AssertionError("FAILED: " + what);
    }
  }

  private interface Action {
    void run();
  }

  private static void expectThrows(
      Class<? extends Throwable> type, String messagePart, Action action, String what) {
    try {
      action.run();
    } catch (Throwable t) {
      check(type.isInstance(t), what + ": expected " + type.getSimpleName() + ", got " + t);
      check(
          t.getMessage() != null && t.getMessage().contains(messagePart),
          what + ": message '" + t.getMessage() + "' lacks '" + messagePart + "'");
      return;
    }
    check(false, what + ": nothing was thrown");
  }

  static void createsWithDefaults() {
    try (CocopieDelegate delegate = new CocopieDelegate()) {
      check(delegate instanceof Delegate, "implements org.tensorflow.lite.Delegate");
      check(delegate.getNativeHandle() != 0, "default delegate has a native handle");
      check(delegate.getNativeHandle() == delegate.getNativeHandle(), "handle is stable");
      check(delegate.getClaimedNodes() == 0, "no node claimed before any interpreter");
      check(delegate.getOptions().getNumThreads() == 0, "default threads follow the interpreter");
      check(delegate.getOptions().getKernel() == CocopieDelegate.Kernel.AUTO, "default kernel");
      check(!delegate.getOptions().isVerbose(), "quiet by default");
    }
  }

  static void createsWithOptions() {
    CocopieDelegate.Options options =
        new CocopieDelegate.Options()
            .setNumThreads(2)
            .setKernel(CocopieDelegate.Kernel.REFERENCE)
            .setVerbose(true);
    check(options.getNumThreads() == 2, "threads option kept");
    check(options.getKernel() == CocopieDelegate.Kernel.REFERENCE, "kernel option kept");
    check(options.isVerbose(), "verbose option kept");
    try (CocopieDelegate first = new CocopieDelegate(options);
        CocopieDelegate second = new CocopieDelegate(options.setKernel(CocopieDelegate.Kernel.AUTO))) {
      check(first.getNativeHandle() != second.getNativeHandle(), "each delegate owns its handle");
    }
  }

  static void closeIsFinalAndRepeatable() {
    CocopieDelegate delegate = new CocopieDelegate();
    delegate.close();
    delegate.close();  // second close: no crash, no double free
    expectThrows(IllegalStateException.class, "closed", delegate::getNativeHandle,
        "handle after close");
    expectThrows(IllegalStateException.class, "closed", delegate::getClaimedNodes,
        "claimed nodes after close");
  }

  static void refusesBadOptions() {
    expectThrows(IllegalArgumentException.class, "Received: numThreads=-1",
        () -> new CocopieDelegate.Options().setNumThreads(-1), "negative threads");
    expectThrows(IllegalArgumentException.class, "Received: kernel=null",
        () -> new CocopieDelegate.Options().setKernel(null), "null kernel");
    expectThrows(IllegalArgumentException.class, "Received: options=null",
        () -> new CocopieDelegate(null), "null options");
    // Codes the Java enum never sends are still refused by the native side.
    expectThrows(IllegalArgumentException.class, "refused these options",
        () -> CocopieDelegate.nativeCreate(0, 99, 0), "unknown kernel code");
    expectThrows(IllegalArgumentException.class, "num_threads=-3",
        () -> CocopieDelegate.nativeCreate(-3, 0, 0), "negative threads in native");
    expectThrows(IllegalArgumentException.class, "verbose=2",
        () -> CocopieDelegate.nativeCreate(0, 0, 2), "verbose out of range");
    expectThrows(IllegalArgumentException.class, "kernel=-1",
        () -> CocopieDelegate.nativeCreate(0, -1, 0), "negative kernel code");
  }

  static void reportsASimdTarget() {
    List<String> known = Arrays.asList("AVX3_SPR", "AVX3_ZEN4", "AVX3_DL", "AVX3", "AVX2",
        "SSE4", "SSSE3", "NEON", "SVE", "SVE2", "SVE_256", "SVE2_128", "EMU128", "SCALAR");
    String target = CocopieDelegate.simdTarget();
    check(known.contains(target), "known SIMD target: " + target);
    System.out.println("SIMD target: " + target);
  }

  public static void main(String[] args) {
    createsWithDefaults();
    createsWithOptions();
    closeIsFinalAndRepeatable();
    refusesBadOptions();
    reportsASimdTarget();
    System.out.println("CocopieDelegateTest: " + checks + " checks passed");
  }
}
