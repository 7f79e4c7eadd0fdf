// Pattern-pruned 2-D convolution, float32, NHWC activations.
//
// Weights arrive as TFLite's OHWI filter plus the LR's per-kernel pattern ids;
// PackPatternWeights keeps only the cells each kernel's pattern keeps, so the
// kernels below never touch a pruned weight or a removed kernel.
#ifndef COCOPIE_DELEGATE_PATTERN_CONV_H_
#define COCOPIE_DELEGATE_PATTERN_CONV_H_

#include <cstdint>
#include <string>
#include <vector>

#include "delegate/lr_format.h"

typedef struct pthreadpool* pthreadpool_t;

namespace cocopie {

enum class Padding { kSame, kValid };

// Geometry of one convolution; the batch and spatial sizes follow the input.
struct ConvGeometry {
  int batch = 1;
  int in_h = 0, in_w = 0, in_c = 0;
  int out_h = 0, out_w = 0, out_c = 0;
  int kernel_h = 0, kernel_w = 0;
  int stride_h = 1, stride_w = 1;
  int dilation_h = 1, dilation_w = 1;
  int pad_top = 0, pad_left = 0;
  float act_min = -3.402823466e+38f;  // fused activation as a clamp
  float act_max = 3.402823466e+38f;
};

// Fills output size and padding from the input size, TFLite's rules.
// Returns false (with *error) when the output would be empty.
bool ComputeConvGeometry(Padding padding, ConvGeometry* g, std::string* error);

// Kept weights of one layer, grouped by output channel.
struct PackedPatternWeights {
  int out_c = 0, in_c = 0, kernel_h = 0, kernel_w = 0;
  int entries = 0;                     // kept cells per kernel
  std::vector<int32_t> kernel_begin;   // out_c + 1 offsets into the arrays below
  std::vector<int32_t> in_channel;     // per kept kernel
  std::vector<uint8_t> pattern;        // per kept kernel: LR pattern id
  std::vector<float> weights;          // per kept kernel: `entries` values
  std::vector<uint32_t> pattern_masks;  // the LR table
  std::vector<float> bias;             // out_c values (zeros when absent)

  int64_t kept_kernels() const { return static_cast<int64_t>(in_channel.size()); }
};

// Packs a dense OHWI filter according to `layer`. `bias` may be null.
PackedPatternWeights PackPatternWeights(const LrLayer& layer,
                                        const float* filter_ohwi,
                                        const float* bias);

// Row-major cell indices kept by `mask`, in increasing order.
std::vector<int> MaskCells(uint32_t mask);

// Scalar reference: direct loops with bounds checks. Used by the delegate
// when asked for it (option kernel=reference) and by tests as the oracle.
void PatternConvReference(const ConvGeometry& g, const PackedPatternWeights& w,
                          const float* input_nhwc, float* output_nhwc);

// SIMD kernel (Highway, dispatched at run time to the best target the CPU
// has). Works on a zero-padded, stride-phase-split channel-major copy of the
// input so that every tap is a contiguous row load; `scratch` is reused
// between calls. `pool` may be null (single thread).
struct PatternConvScratch {
  std::vector<float> input_phases;
  std::vector<float> output_chw;
  std::vector<int64_t> tap_offsets;
};
void PatternConvSimd(const ConvGeometry& g, const PackedPatternWeights& w,
                     const float* input_nhwc, float* output_nhwc,
                     PatternConvScratch* scratch, pthreadpool_t pool);

// Name of the Highway target PatternConvSimd dispatches to on this CPU.
const char* PatternConvSimdTarget();

}  // namespace cocopie

#endif  // COCOPIE_DELEGATE_PATTERN_CONV_H_
