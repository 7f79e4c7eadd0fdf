// Pattern-pruned 2-D convolution, float32, NHWC activations.
//
// Weights arrive as TFLite's OHWI filter plus the LR's per-kernel pattern ids;
// PackPatternWeights keeps only the cells each kernel's pattern keeps, so the
// kernels below never touch a pruned weight or a removed kernel.
#ifndef COCOPIE_DELEGATE_KERNELS_PATTERN_CONV_H_
#define COCOPIE_DELEGATE_KERNELS_PATTERN_CONV_H_

#include <cstdint>
#include <string>
#include <vector>

#include "delegate/lr/lr_format.h"

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

// Fills output size and padding from the input size, TFLite's rules, in
// 64-bit arithmetic. Returns false (with *error) when the output would be
// empty or a size would not fit the kernels' `int` indices.
bool ComputeConvGeometry(Padding padding, ConvGeometry* g, std::string* error);

// Largest stride, and largest kernel span (kernel - 1) * dilation + 1, of a
// convolution the delegate runs (conv_node.h refuses larger ones): far past
// any real layer, and small enough that no index the kernels compute from
// them can overflow.
inline constexpr int kMaxConvSpan = 1 << 16;

// Floats of the zero-bordered input copy that PatternConvSimd (and, when the
// convolution pads, PatternConvBlock) makes of one image; 0 for a geometry
// ComputeConvGeometry has not accepted.
int64_t PaddedCopyFloats(const ConvGeometry& g);

// Whether that copy stays within a few times the image itself. A large
// dilation with padding makes the border far larger than the image (a 3x3
// kernel of dilation 4096 on an 8x8 image: 67 million floats per channel);
// the SIMD kernels then do not run and PatternConvSimd falls back to the
// scalar reference, which needs no copy.
bool PaddedCopyFits(const ConvGeometry& g);

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
  // Output channels, most kept kernels first (ties in channel order): the
  // order PatternConvSimd hands filters to the pool's threads, so the long
  // ones start first and the threads end together (filter-kernel reorder).
  // Computed when packing, not stored in the LR: it follows from the kept
  // kernels the LR already holds, and outputs stay in the model's order.
  std::vector<int32_t> filter_order;

  int64_t kept_kernels() const { return static_cast<int64_t>(in_channel.size()); }
};

// Packs a dense OHWI filter according to `layer`. `bias` may be null.
PackedPatternWeights PackPatternWeights(const LrLayer& layer,
                                        const float* filter_ohwi,
                                        const float* bias);

// Row-major cell indices kept by `mask`, in increasing order.
std::vector<int> MaskCells(uint32_t mask);

// Scalar reference: direct loops with bounds checks. Used by the delegate
// when asked for it (option kernel=reference), by PatternConvSimd when the
// padded copy would not fit (PaddedCopyFits), and by tests as the oracle.
void PatternConvReference(const ConvGeometry& g, const PackedPatternWeights& w,
                          const float* input_nhwc, float* output_nhwc);

// Free-pattern SIMD kernel, the "rows" kernel (Highway, dispatched at run
// time to the best target the CPU has): work proportional to the kept
// weights whatever each kernel's pattern and connectivity. Output pixels run
// along the vector lanes in a register tile of up to 8 rows x 2 vectors of
// one output channel, picked per layer from the output size; filters are
// handed to the threads longest first (filter_order). Works on a zero-padded,
// stride-phase-split channel-major copy of the input so that every tap is a
// contiguous row load; `scratch` is reused between calls. `pool` may be null
// (single thread).
struct PatternConvScratch {
  // L1 budget of one input-channel chunk's input for one tile (its filters
  // all read the chunk before the next one is loaded); 0 runs all input
  // channels in one chunk.
  int chunk_bytes = 32 * 1024;
  std::vector<float> input_phases;
  std::vector<float> output_chw;
  // The plan for one geometry and one packing, made on the first call and
  // again only when either changes (re-planning every call cost more than
  // the convolution itself on 7x7 maps): each kept tap's input offset and
  // each filter's first kernel of every input-channel chunk.
  std::vector<int64_t> tap_offsets;
  std::vector<int32_t> chunk_kernels;   // per filter, its first kernel of each chunk
  int planned_chunks = 0;
  std::vector<int64_t> planned_key;     // what the plan was made for
  std::vector<int64_t> zeroed_layout;   // the copy layout whose border is zero
};
//
// `release_workers`: let the pool's threads sleep when the call returns
// instead of spinning for the next one; pass it on the last convolution before
// the runtime's other kernels (XNNPACK, with a pool of its own) take over, so
// the two pools do not fight for the cores.
void PatternConvSimd(const ConvGeometry& g, const PackedPatternWeights& w,
                     const float* input_nhwc, float* output_nhwc,
                     PatternConvScratch* scratch, pthreadpool_t pool,
                     bool release_workers = false);

// Name of the Highway target PatternConvSimd dispatches to on this CPU.
const char* PatternConvSimdTarget();

// ---- Output-channel-block kernel -------------------------------------------
//
// Output channels are taken `block` at a time (by default 32 on AVX-512,
// where two vectors per pixel make the micro-kernel FMA-bound, 16 elsewhere;
// half of it is also compiled, for tuning). For each block and input
// channel, the taps to run are the union of the block's kernel patterns for
// that input channel; each tap stores `block` weights (zero for a channel
// whose kernel does not keep the cell). When pruning gives 32 output
// channels one pattern per input channel (the co-design option,
// cocopie_keras.codesign), the union is exactly that pattern on every target
// and no zero is multiplied; otherwise the union costs extra FMAs, and
// `padded_taps` / `kept_taps` says how many.
inline constexpr int kMaxChannelBlock = 32;

// The channel block the block kernel uses on this CPU by default.
int PreferredChannelBlock();

struct BlockPackedWeights {
  int out_c = 0, in_c = 0, kernel_h = 0, kernel_w = 0;
  int block = 16;                      // output channels per block
  int blocks = 0;                      // ceil(out_c / block)
  std::vector<int32_t> block_begin;    // blocks + 1 offsets into the tap arrays
  std::vector<int32_t> tap_in_channel;
  std::vector<uint8_t> tap_cell;       // r * kernel_w + c
  std::vector<float> weights;          // `block` per tap
  std::vector<float> bias;             // blocks * block, zero padded
  int64_t kept_taps = 0;    // sum over kept kernels of their cells
  int64_t padded_taps = 0;  // taps * block (what the kernel runs)
};

// Packs `exact` (as made by PackPatternWeights) into blocks of `block`
// output channels (PreferredChannelBlock() for the kernel on this CPU).
BlockPackedWeights PackChannelBlocks(const PackedPatternWeights& exact, int block);

// Packs `exact` with the channel block, among those compiled on this CPU
// (BlockKernelChannelBlocks), that runs the fewest padded taps: the preferred
// one unless another cuts them by more than a tenth. Weights pruned in
// groups of 16 output channels thus run exact at 16 on a CPU that prefers 32
// (packed at 32, two groups' patterns are merged and 1.8 taps run per kept
// tap); the grouping training chose decides, not the CPU alone.
BlockPackedWeights PackLeastPaddedBlocks(const PackedPatternWeights& exact);

// Order in which the (channel block x pixel group) tasks are handed to the
// pool. Consecutive tasks of one worker share their weights when blocks are
// outer, and their input pixels when pixels are outer.
enum class BlockLoopOrder : uint8_t { kBlocksOuter = 0, kPixelsOuter = 1 };

// Run-time tunables of the block kernel (kernel_tuning.h searches them). Every
// field's zero/default value gives the built-in choice, so a default-made
// struct runs the kernel exactly as before tuning existed. The channel block
// itself is fixed when the weights are packed (BlockPackedWeights::block).
struct BlockKernelParams {
  // Output pixels per micro-kernel tile (MR); must be one of
  // BlockKernelTilePixels(block) on this CPU. 0: the target's default.
  int tile_pixels = 0;
  // Micro-kernel tiles per pool task; bounds scheduling overhead.
  int tiles_per_task = 4;
  // L1 budget of one input-channel chunk (a chunk's weights + one tile's
  // input); 0 runs all input channels in one chunk.
  int chunk_bytes = 24 * 1024;
  BlockLoopOrder loop_order = BlockLoopOrder::kBlocksOuter;

  bool operator==(const BlockKernelParams& o) const {
    return tile_pixels == o.tile_pixels && tiles_per_task == o.tiles_per_task &&
           chunk_bytes == o.chunk_bytes && loop_order == o.loop_order;
  }
  bool operator!=(const BlockKernelParams& o) const { return !(*this == o); }
};

// Limits a BlockKernelParams must respect (checked by PatternConvBlock and by
// the tuning-record decoder).
inline constexpr int kMaxTilesPerTask = 64;
inline constexpr int kMinChunkBytes = 1024;
inline constexpr int kMaxChunkBytes = 4 << 20;

// Channel blocks the block kernel can run on this CPU (compiled variants),
// the preferred one first.
std::vector<int> BlockKernelChannelBlocks();
// Tile sizes (MR) compiled for `block` on this CPU, the default first; empty
// when `block` is not supported here.
std::vector<int> BlockKernelTilePixels(int block);
// Empty when PatternConvBlock can run weights packed with `block` using
// `params` on this CPU; otherwise why not.
std::string CheckBlockKernelParams(int block, const BlockKernelParams& params);

struct BlockConvScratch {
  // Tunables to run with; changing them re-plans on the next call.
  BlockKernelParams params;
  std::vector<float> padded_input;   // one zero-bordered NHWC image
  std::vector<int64_t> tap_offsets;  // per tap, for the current geometry
  // Input channels are processed in chunks small enough that a tile's input
  // stays in L1; chunk_taps[b * (chunks + 1) + k] is block b's first tap of
  // chunk k.
  int chunks = 1;
  std::vector<int32_t> chunk_taps;
  ConvGeometry planned_for;          // geometry tap_offsets were made for
  BlockKernelParams planned_params;  // params the chunk plan was made for
  // The packing the plan was made for (a scratch serves one packing; these
  // make a switch re-plan instead of reading stale tap offsets).
  const float* planned_weights = nullptr;
  int planned_block = 0;
  size_t planned_taps = 0;
  bool planned = false;
};

// NHWC convolution of all `g.batch` images with block-packed weights, run
// with `scratch->params`. Returns false, computing nothing, if this CPU has no
// variant for `w.block` and those params (CheckBlockKernelParams), e.g.
// weights packed for another target, or if the convolution pads and its
// padded copy would not fit (PaddedCopyFits). `pool` may be null; `release_workers`
// as for PatternConvSimd.
bool PatternConvBlock(const ConvGeometry& g, const BlockPackedWeights& w,
                      const float* input_nhwc, float* output_nhwc,
                      BlockConvScratch* scratch, pthreadpool_t pool,
                      bool release_workers = false);

}  // namespace cocopie

#endif  // COCOPIE_DELEGATE_KERNELS_PATTERN_CONV_H_
