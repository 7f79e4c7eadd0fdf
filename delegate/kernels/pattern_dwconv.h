// Pattern-pruned depthwise convolution, float32, NHWC activations.
//
// A DEPTHWISE_CONV_2D with depth multiplier 1 has one kh x kw kernel per
// channel, stored by TFLite as a (1, kh, kw, C) filter. The LR describes it
// as a layer with out_channels = C and in_channels = 1: one pattern id per
// channel (removed = the channel's kernel is all zero, its output the bias).
//
// Two packings of the kept weights:
//  * exact: per channel, its kept cells and their values (the reference);
//  * channel blocks of kDepthwiseChannelBlock channels: per block, the union
//    of its channels' kept cells ("taps"), each tap one weight per channel
//    (zero where that channel's pattern does not keep the cell, so the SIMD
//    kernel stays exact). When every block's channels share one pattern
//    (cocopie_keras.codesign.project_depthwise_grouped), each block's taps
//    are exactly that pattern's cells and no zero is multiplied.
#ifndef COCOPIE_DELEGATE_KERNELS_PATTERN_DWCONV_H_
#define COCOPIE_DELEGATE_KERNELS_PATTERN_DWCONV_H_

#include <cstdint>
#include <string>
#include <vector>

#include "delegate/lr/lr_format.h"
#include "delegate/kernels/pattern_conv.h"

namespace cocopie {

// Channels per packed block: a multiple of every enabled target's vector
// length, so one packing serves every SIMD target.
inline constexpr int kDepthwiseChannelBlock = 16;

struct PackedDepthwiseWeights {
  int channels = 0, kernel_h = 0, kernel_w = 0;
  // Exact packing: channel c keeps cells [channel_begin[c], channel_begin[c+1]).
  std::vector<int32_t> channel_begin;
  std::vector<uint8_t> cell;   // r * kernel_w + c
  std::vector<float> weight;
  // Block packing: block b runs taps [block_begin[b], block_begin[b + 1]).
  int blocks = 0;
  std::vector<int32_t> block_begin;
  std::vector<uint8_t> block_tap_cell;
  std::vector<uint8_t> block_tap_row;  // cell / kernel_w, kept to spare the
  std::vector<uint8_t> block_tap_col;  // kernel divisions by a run-time width
  std::vector<float> block_weights;  // kDepthwiseChannelBlock per tap
  std::vector<float> bias;           // blocks * kDepthwiseChannelBlock, zero padded

  int64_t kept_taps() const { return static_cast<int64_t>(cell.size()); }
  // Multiply-adds per output pixel the block kernel runs (>= kept_taps()).
  int64_t padded_taps() const {
    return static_cast<int64_t>(block_tap_cell.size()) * kDepthwiseChannelBlock;
  }
};

// Packs a dense (1, kh, kw, C) filter according to `layer` (in_channels 1,
// out_channels C). Cells the layer's patterns prune are never read. `bias`
// may be null.
PackedDepthwiseWeights PackDepthwiseWeights(const LrLayer& layer,
                                            const float* filter_1hwc,
                                            const float* bias);

// Scalar reference with bounds checks on every tap (option kernel=reference,
// and the tests' oracle for the SIMD kernel). `g` has in_c == out_c ==
// channels and dilation 1.
void DepthwiseConvReference(const ConvGeometry& g, const PackedDepthwiseWeights& w,
                            const float* input_nhwc, float* output_nhwc);

struct DepthwiseConvScratch {
  // One input row of zeros, read in place of rows above or below the image.
  std::vector<float> zero_row;
};

// Highway kernel f32_dwconv_nhwc_{pixels}x{lanes} (see KernelName below):
// vectors over channels, the block's taps in registers, one output row per
// pool task. `pool` may be null; `release_workers` as for PatternConvSimd.
void DepthwiseConvSimd(const ConvGeometry& g, const PackedDepthwiseWeights& w,
                       const float* input_nhwc, float* output_nhwc,
                       DepthwiseConvScratch* scratch, pthreadpool_t pool,
                       bool release_workers = false);

// Name of the kernel DepthwiseConvSimd dispatches to on this CPU, by op,
// layout, tile (pixels x channel lanes) and ISA, e.g.
// "f32_dwconv_nhwc_4x16_AVX3".
std::string DepthwiseConvKernelName();

}  // namespace cocopie

#endif  // COCOPIE_DELEGATE_KERNELS_PATTERN_DWCONV_H_
