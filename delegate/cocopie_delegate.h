// C API of the cocopie pattern-convolution delegate.
//
//   CocopieDelegateOptions options = CocopieDelegateOptionsDefault();
//   options.num_threads = 2;
//   TfLiteDelegate* delegate = CocopieDelegateCreate(&options);
//   ... interpreter->ModifyGraphWithDelegate(delegate) ...
//   CocopieDelegateDelete(delegate);  // after the interpreter is gone
//
// Python and other hosts load the same library as an external delegate
// (tflite_plugin_create_delegate, see external_delegate_adaptor.cc).
#ifndef COCOPIE_DELEGATE_COCOPIE_DELEGATE_H_
#define COCOPIE_DELEGATE_COCOPIE_DELEGATE_H_

#include "delegate/abi/tflite_abi.h"

#define COCOPIE_EXPORT __attribute__((visibility("default")))

#ifdef __cplusplus
extern "C" {
#endif

typedef enum CocopieKernelChoice {
  kCocopieKernelAuto = 0,       // per layer, the SIMD kernel expected fastest
  kCocopieKernelReference = 1,  // scalar reference loops (for checking)
  kCocopieKernelRows = 2,       // SIMD, channel-major rows, exact kept taps
  kCocopieKernelBlock = 3,      // SIMD, NHWC blocks of 16 output channels
} CocopieKernelChoice;

typedef enum CocopieTuningMode {
  // Use kernel tunings stored in the model's LR or the tuning cache; time
  // nothing. Layers found in neither run the built-in choice.
  kCocopieTuningCache = 0,
  kCocopieTuningOff = 1,      // always the built-in choice
  kCocopieTuningOn = 2,       // like cache, and time (then store) the rest
  kCocopieTuningRetune = 3,   // time every layer, ignoring the LR and cache
} CocopieTuningMode;

typedef struct CocopieDelegateOptions {
  // Worker threads for the delegate's kernels; 0 follows the interpreter's
  // thread count (1 when the interpreter leaves it unset).
  int num_threads;
  CocopieKernelChoice kernel;
  // 1: print which nodes were claimed to stderr.
  int verbose;
  // Per-layer kernel auto-tuning (delegate/tuning/kernel_tuning.h).
  CocopieTuningMode tuning;
  // File of timed choices kept between runs, keyed by layer signature and
  // CPU; NULL: in memory only. Copied by CocopieDelegateCreate.
  const char* tuning_cache;
} CocopieDelegateOptions;

COCOPIE_EXPORT CocopieDelegateOptions CocopieDelegateOptionsDefault(void);

// Returns NULL if `options` are invalid, or if the environment variable
// COCOPIE_SIMD_TARGET names no SIMD target this CPU supports
// (kernels/simd_target.h: the first call of this, CocopieDelegateSimdTarget or
// CocopieDelegatePreferredChannelBlock picks the process's SIMD target).
COCOPIE_EXPORT TfLiteDelegate* CocopieDelegateCreate(
    const CocopieDelegateOptions* options);

COCOPIE_EXPORT void CocopieDelegateDelete(TfLiteDelegate* delegate);

// Number of CONV_2D and DEPTHWISE_CONV_2D nodes the delegate took over at its
// latest Prepare (the latest interpreter it was applied to); -1 for a null
// delegate.
COCOPIE_EXPORT int CocopieDelegateClaimedNodes(const TfLiteDelegate* delegate);

// What each CONV_2D node claimed at the latest Prepare runs, as a JSON array
// of objects (one per node: "node", "source" — lr | cache | timed | default |
// off | forced —, "kernel", the block kernel's tunables, "record": the
// one-entry tuning record as hex, timings when timed). The text stays valid
// until the next call or the delegate's deletion; NULL for a null delegate.
COCOPIE_EXPORT const char* CocopieDelegateKernelTunings(TfLiteDelegate* delegate);

// The SIMD target the kernels dispatch to on this CPU, e.g. "AVX3", "NEON".
COCOPIE_EXPORT const char* CocopieDelegateSimdTarget(void);

// Empty when the SIMD target was chosen as asked; otherwise why
// COCOPIE_SIMD_TARGET was refused (no delegate is then created).
COCOPIE_EXPORT const char* CocopieDelegateSimdTargetError(void);

// Output channels the block kernel computes together on this CPU (16 or 32):
// channel groups of a multiple of it share a pattern union without padding.
COCOPIE_EXPORT int CocopieDelegatePreferredChannelBlock(void);

#ifdef __cplusplus
}  // extern "C"
#endif

#endif  // COCOPIE_DELEGATE_COCOPIE_DELEGATE_H_
