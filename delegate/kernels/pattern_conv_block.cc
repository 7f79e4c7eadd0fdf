// PatternConvBlock: NHWC pattern convolution over blocks of output channels
// (see pattern_conv.h), written once with Highway and dispatched to the best
// target at run time.
//
// Micro-kernel f32_patconv_nhwc_{MR}x{block}: MR output pixels x `block`
// output channels of accumulators stay in registers while every tap of the
// block is applied: one weight load per vector of channels per tap, one
// broadcast input load per pixel, MR x block FMAs. Input pixels are addressed
// through a zero-bordered copy of the image, so padding costs no branch; tail
// pixels repeat the last valid pixel and are not stored.
//
// MR and the channel block are compile-time constants (the accumulators must
// be registers), so each target compiles a few (block, MR) variants that fit
// its register file; BlockKernelParams picks one at run time, with the task
// size, the input-channel chunk and the task order (kernel_tuning.h).

// The micro-kernel keeps its accumulators in arrays of vectors, which sizeless
// SVE vector types cannot form; on SVE CPUs this kernel dispatches to NEON
// (the same 128-bit registers, all 32 of them).
#ifndef HWY_DISABLED_TARGETS
#define HWY_DISABLED_TARGETS (HWY_SVE | HWY_SVE2 | HWY_SVE_256 | HWY_SVE2_128)
#endif

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "delegate/kernels/pattern_conv_block.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"

#include <pthreadpool.h>

#include <algorithm>
#include <cassert>
#include <cstring>
#include <string>
#include <vector>

#include "delegate/kernels/pattern_conv.h"

#ifndef COCOPIE_PATTERN_CONV_BLOCK_SHARED_
#define COCOPIE_PATTERN_CONV_BLOCK_SHARED_
namespace cocopie {
namespace {

struct BlockTask {
  const ConvGeometry* g;
  const BlockPackedWeights* w;
  const float* input;          // padded image (or the input when unpadded)
  int64_t row_stride;          // floats between input rows
  const int64_t* tap_offsets;  // per tap
  const int32_t* chunk_taps;   // see BlockConvScratch
  int chunks;
  float* output;               // NHWC image
  int pixels;                  // out_h * out_w
  int pixels_per_task;
};

using BlockTaskFn = void (*)(void*, size_t, size_t);

// One compiled micro-kernel: `block` channels x `tile` pixels, with a task
// body per BlockLoopOrder.
struct BlockVariant {
  int block;
  int tile;
  BlockTaskFn run[2];
};

}  // namespace
}  // namespace cocopie
#endif

HWY_BEFORE_NAMESPACE();
namespace cocopie {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

using DF = hn::ScalableTag<float>;
constexpr size_t kLanes = hn::MaxLanes(DF());
// Two vectors of output channels per pixel where vectors are 16 wide, so that
// each tap's broadcasts feed twice as many FMAs; 16 channels elsewhere. Half
// of it is compiled too: it multiplies fewer zeros when patterns are free.
constexpr int kDefaultBlock = kLanes >= 16 ? 32 : 16;
constexpr int kHalfBlock = kDefaultBlock / 2;
constexpr size_t VecsOf(int block) {
  return static_cast<size_t>(block) >= kLanes ? block / kLanes : 1;
}
#if HWY_ARCH_ARM_A64
constexpr size_t kRegisters = 32;
#elif HWY_TARGET <= HWY_AVX3
constexpr size_t kRegisters = 32;
#else
constexpr size_t kRegisters = 16;
#endif
// Accumulators: MR x vecs registers; keep a few for weights and inputs.
constexpr size_t MaxTile(size_t vecs, size_t cap) {
  return kRegisters > vecs + 2
             ? std::max<size_t>(1, std::min<size_t>(cap, (kRegisters - vecs - 2) / vecs))
             : 1;
}
// Default tile: 12 x 32 on AVX-512, 6 x 16 on AVX2 and NEON.
constexpr size_t kTileDefault = MaxTile(VecsOf(kDefaultBlock), 12);
constexpr size_t kTileLarge = MaxTile(VecsOf(kDefaultBlock), 16);
constexpr size_t kTileTwoThirds = std::max<size_t>(1, kTileDefault * 2 / 3);
constexpr size_t kTileHalf = std::max<size_t>(1, kTileDefault / 2);
constexpr size_t kHalfBlockTile = MaxTile(VecsOf(kHalfBlock), 24);
constexpr size_t kHalfBlockTileSmall = std::max<size_t>(1, kHalfBlockTile * 2 / 3);

// One tile: pixels [p0, p0 + count) of the image, channel block `block`,
// taps [tap_begin, tap_end). The first chunk starts from the bias, later ones
// from the partial sums left in the output; the last applies the activation.
template <size_t kMR, int kChannelBlock>
HWY_INLINE void Tile(const BlockTask& t, int block, int p0, int count,
                     int tap_begin, int tap_end, bool first, bool last) {
  constexpr size_t kVecs = VecsOf(kChannelBlock);
  const DF d;
  const ConvGeometry& g = *t.g;
  const BlockPackedWeights& w = *t.w;
  int64_t base[kMR];
  for (size_t m = 0; m < kMR; ++m) {
    const int p = p0 + std::min<int>(static_cast<int>(m), count - 1);
    const int oh = p / g.out_w, ow = p % g.out_w;
    base[m] = int64_t{oh} * g.stride_h * t.row_stride +
              static_cast<int64_t>(ow) * g.stride_w * g.in_c;
  }
  // The accumulator array must live in registers: every loop over m or v is
  // fully unrolled (GCC at -O2 would otherwise keep it on the stack).
  decltype(hn::Zero(d)) acc[kMR][kVecs];
  const int co0 = block * kChannelBlock;
  const int valid = std::min(kChannelBlock, g.out_c - co0);
  HWY_ALIGN float lanes[kVecs * kLanes] = {};
  if (first) {
    const float* bias = w.bias.data() + static_cast<size_t>(co0);
#pragma GCC unroll 16
    for (size_t v = 0; v < kVecs; ++v) {
      const auto b = hn::LoadU(d, bias + v * kLanes);
#pragma GCC unroll 32
      for (size_t m = 0; m < kMR; ++m) acc[m][v] = b;
    }
  } else {
#pragma GCC unroll 32
    for (size_t m = 0; m < kMR; ++m) {
      // Tail pixels repeat the last valid one; their sums are never stored.
      const int pm = p0 + std::min<int>(static_cast<int>(m), count - 1);
      const float* partial = t.output + static_cast<int64_t>(pm) * g.out_c + co0;
      if (valid != kChannelBlock) {
        std::memcpy(lanes, partial, valid * sizeof(float));
        partial = lanes;
      }
#pragma GCC unroll 16
      for (size_t v = 0; v < kVecs; ++v) acc[m][v] = hn::LoadU(d, partial + v * kLanes);
    }
  }
  const float* weights = w.weights.data();
  for (int tap = tap_begin; tap < tap_end; ++tap) {
    const float* wt = weights + static_cast<size_t>(tap) * kChannelBlock;
    decltype(hn::Zero(d)) wv[kVecs];
#pragma GCC unroll 16
    for (size_t v = 0; v < kVecs; ++v) wv[v] = hn::LoadU(d, wt + v * kLanes);
    const float* in = t.input + t.tap_offsets[tap];
#pragma GCC unroll 32
    for (size_t m = 0; m < kMR; ++m) {
      const auto x = hn::Set(d, in[base[m]]);
#pragma GCC unroll 16
      for (size_t v = 0; v < kVecs; ++v) acc[m][v] = hn::MulAdd(wv[v], x, acc[m][v]);
    }
  }
  const auto lo = hn::Set(d, last ? g.act_min : hwy::LowestValue<float>());
  const auto hi = hn::Set(d, last ? g.act_max : hwy::HighestValue<float>());
#pragma GCC unroll 32
  for (int m = 0; m < static_cast<int>(kMR); ++m) {
    if (m >= count) break;
    float* out = t.output + static_cast<int64_t>(p0 + m) * g.out_c + co0;
    float* dst = valid == kChannelBlock ? out : lanes;
#pragma GCC unroll 16
    for (size_t v = 0; v < kVecs; ++v) {
      hn::StoreU(hn::Min(hn::Max(acc[m][v], lo), hi), d, dst + v * kLanes);
    }
    if (dst != out) std::memcpy(out, lanes, valid * sizeof(float));
  }
}

// Task (i, j) of the pool's 2-D range: (channel block, pixel group), or
// (pixel group, channel block) when kPixelsOuter.
template <size_t kMR, int kChannelBlock, bool kPixelsOuter>
void RunTask(void* context, size_t i, size_t j) {
  const BlockTask& t = *static_cast<const BlockTask*>(context);
  const size_t block = kPixelsOuter ? j : i;
  const size_t group = kPixelsOuter ? i : j;
  const int begin = static_cast<int>(group) * t.pixels_per_task;
  const int end = std::min(t.pixels, begin + t.pixels_per_task);
  const int32_t* taps = t.chunk_taps + block * (t.chunks + 1);
  for (int k = 0; k < t.chunks; ++k) {
    if (taps[k] == taps[k + 1] && k != 0 && k != t.chunks - 1) continue;
    for (int p = begin; p < end; p += static_cast<int>(kMR)) {
      Tile<kMR, kChannelBlock>(t, static_cast<int>(block), p,
                               std::min<int>(static_cast<int>(kMR), end - p),
                               taps[k], taps[k + 1], k == 0, k == t.chunks - 1);
    }
  }
}

template <size_t kMR, int kChannelBlock>
constexpr BlockVariant Variant() {
  return BlockVariant{kChannelBlock, static_cast<int>(kMR),
                      {&RunTask<kMR, kChannelBlock, false>,
                       &RunTask<kMR, kChannelBlock, true>}};
}

// The compiled variants, the default first; duplicates (where two tile sizes
// coincide on a small register file) are skipped by the caller.
const BlockVariant* GetBlockVariants(size_t* count) {
  static constexpr BlockVariant kVariants[] = {
      Variant<kTileDefault, kDefaultBlock>(),
      Variant<kTileLarge, kDefaultBlock>(),
      Variant<kTileTwoThirds, kDefaultBlock>(),
      Variant<kTileHalf, kDefaultBlock>(),
      Variant<kHalfBlockTile, kHalfBlock>(),
      Variant<kHalfBlockTileSmall, kHalfBlock>(),
  };
  *count = sizeof(kVariants) / sizeof(kVariants[0]);
  return kVariants;
}

int ChannelBlock() { return kDefaultBlock; }

}  // namespace HWY_NAMESPACE
}  // namespace cocopie
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace cocopie {

HWY_EXPORT(GetBlockVariants);
HWY_EXPORT(ChannelBlock);

int PreferredChannelBlock() { return HWY_DYNAMIC_DISPATCH(ChannelBlock)(); }

namespace {

// The variant for `block` and `tile` (0: the block's default), or null.
const BlockVariant* FindVariant(int block, int tile) {
  size_t count = 0;
  const BlockVariant* variants = HWY_DYNAMIC_DISPATCH(GetBlockVariants)(&count);
  for (size_t i = 0; i < count; ++i) {
    if (variants[i].block == block && (tile == 0 || variants[i].tile == tile)) {
      return &variants[i];
    }
  }
  return nullptr;
}

// Copies input rows into the interior of the bordered image; the border was
// zeroed when the buffer was sized for this geometry and is never written.
struct CopyRowsTask {
  const ConvGeometry* g;
  const float* image;
  float* padded;
  int64_t row_stride;
  int padded_h, padded_w;
};

void CopyRow(void* context, size_t ih) {
  const CopyRowsTask& t = *static_cast<const CopyRowsTask*>(context);
  const ConvGeometry& g = *t.g;
  const int r = static_cast<int>(ih) + g.pad_top;
  if (r >= t.padded_h) return;
  const size_t columns = std::min(g.in_w, t.padded_w - g.pad_left);
  std::memcpy(t.padded + r * t.row_stride + static_cast<int64_t>(g.pad_left) * g.in_c,
              t.image + ih * static_cast<size_t>(g.in_w) * g.in_c,
              columns * g.in_c * sizeof(float));
}

bool SameGeometry(const ConvGeometry& a, const ConvGeometry& b) {
  return a.in_h == b.in_h && a.in_w == b.in_w && a.in_c == b.in_c &&
         a.out_h == b.out_h && a.out_w == b.out_w && a.stride_h == b.stride_h &&
         a.stride_w == b.stride_w && a.dilation_h == b.dilation_h &&
         a.dilation_w == b.dilation_w && a.pad_top == b.pad_top &&
         a.pad_left == b.pad_left;
}

}  // namespace

std::vector<int> BlockKernelChannelBlocks() {
  size_t count = 0;
  const BlockVariant* variants = HWY_DYNAMIC_DISPATCH(GetBlockVariants)(&count);
  std::vector<int> blocks;
  for (size_t i = 0; i < count; ++i) {
    if (std::find(blocks.begin(), blocks.end(), variants[i].block) == blocks.end()) {
      blocks.push_back(variants[i].block);
    }
  }
  return blocks;
}

BlockPackedWeights PackLeastPaddedBlocks(const PackedPatternWeights& exact) {
  // Another block must cut padded taps by more than this to replace the
  // preferred one, whose wider tiles run more FMAs per load.
  constexpr double kPaddingMargin = 0.9;
  const std::vector<int> blocks = BlockKernelChannelBlocks();  // preferred first
  BlockPackedWeights best = PackChannelBlocks(exact, blocks.front());
  for (size_t i = 1; i < blocks.size(); ++i) {
    BlockPackedWeights other = PackChannelBlocks(exact, blocks[i]);
    if (other.padded_taps < kPaddingMargin * best.padded_taps) best = std::move(other);
  }
  return best;
}

std::vector<int> BlockKernelTilePixels(int block) {
  size_t count = 0;
  const BlockVariant* variants = HWY_DYNAMIC_DISPATCH(GetBlockVariants)(&count);
  std::vector<int> tiles;
  for (size_t i = 0; i < count; ++i) {
    if (variants[i].block == block &&
        std::find(tiles.begin(), tiles.end(), variants[i].tile) == tiles.end()) {
      tiles.push_back(variants[i].tile);
    }
  }
  return tiles;
}

std::string CheckBlockKernelParams(int block, const BlockKernelParams& params) {
  if (FindVariant(block, 0) == nullptr) {
    return "channel block " + std::to_string(block) + " is not compiled for " +
           PatternConvSimdTarget();
  }
  if (FindVariant(block, params.tile_pixels) == nullptr) {
    return "tile of " + std::to_string(params.tile_pixels) + " pixels x " +
           std::to_string(block) + " channels is not compiled for " +
           PatternConvSimdTarget();
  }
  if (params.tiles_per_task < 1 || params.tiles_per_task > kMaxTilesPerTask) {
    return "tiles per task " + std::to_string(params.tiles_per_task) +
           " out of range [1, " + std::to_string(kMaxTilesPerTask) + "]";
  }
  if (params.chunk_bytes != 0 &&
      (params.chunk_bytes < kMinChunkBytes || params.chunk_bytes > kMaxChunkBytes)) {
    return "chunk of " + std::to_string(params.chunk_bytes) + " bytes out of range";
  }
  if (params.loop_order != BlockLoopOrder::kBlocksOuter &&
      params.loop_order != BlockLoopOrder::kPixelsOuter) {
    return "unknown loop order";
  }
  return "";
}

bool PatternConvBlock(const ConvGeometry& g, const BlockPackedWeights& w,
                      const float* input, float* output,
                      BlockConvScratch* scratch, pthreadpool_t pool,
                      bool release_workers) {
  assert(g.in_c == w.in_c && g.out_c == w.out_c);
  // Weights packed for a block this target lacks would be misread.
  const BlockKernelParams& params = scratch->params;
  if (!CheckBlockKernelParams(w.block, params).empty()) return false;
  const BlockVariant& variant = *FindVariant(w.block, params.tile_pixels);
  const int64_t padded_h64 =
      int64_t{g.out_h - 1} * g.stride_h + int64_t{g.kernel_h - 1} * g.dilation_h + 1;
  const int64_t padded_w64 =
      int64_t{g.out_w - 1} * g.stride_w + int64_t{g.kernel_w - 1} * g.dilation_w + 1;
  // Without padding the input itself is read; otherwise a bordered copy, made
  // only when it is not far larger than the image (see PaddedCopyFits).
  const bool copy = g.pad_top != 0 || g.pad_left != 0 || padded_h64 > g.in_h ||
                    padded_w64 > g.in_w;
  if (copy && !PaddedCopyFits(g)) return false;
  // Both are now at most the image's own sizes or within the copy's bound.
  const int padded_h = static_cast<int>(padded_h64);
  const int padded_w = static_cast<int>(padded_w64);
  const int row_w = copy ? padded_w : g.in_w;
  const int64_t row_stride = static_cast<int64_t>(row_w) * g.in_c;

  if (!scratch->planned || !SameGeometry(scratch->planned_for, g) ||
      scratch->planned_params != params ||
      scratch->planned_weights != w.weights.data() ||
      scratch->planned_block != w.block ||
      scratch->planned_taps != w.tap_in_channel.size()) {
    scratch->tap_offsets.resize(w.tap_in_channel.size());
    for (size_t tap = 0; tap < w.tap_in_channel.size(); ++tap) {
      const int r = w.tap_cell[tap] / w.kernel_w, c = w.tap_cell[tap] % w.kernel_w;
      scratch->tap_offsets[tap] = int64_t{r} * g.dilation_h * row_stride +
                                  static_cast<int64_t>(c) * g.dilation_w * g.in_c +
                                  w.tap_in_channel[tap];
    }
    // Input-channel chunk: per input channel, a tile reads (MR - 1) * stride
    // + extent columns of kernel_h rows, and the block holds taps/in_c weight
    // vectors of `block` floats; keep both within params.chunk_bytes.
    const int64_t columns = int64_t{variant.tile - 1} * g.stride_w +
                            int64_t{g.kernel_w - 1} * g.dilation_w + 1;
    const double taps_per_channel =
        static_cast<double>(w.tap_in_channel.size()) / (std::max(1, w.blocks) * g.in_c);
    const double bytes_per_channel =
        sizeof(float) * (columns * g.kernel_h + taps_per_channel * w.block);
    int chunk_c = g.in_c;
    if (params.chunk_bytes != 0) {
      chunk_c = static_cast<int>(params.chunk_bytes / bytes_per_channel);
      chunk_c = std::max(16, chunk_c / 16 * 16);
    }
    scratch->chunks = (g.in_c + chunk_c - 1) / chunk_c;
    scratch->chunk_taps.assign(static_cast<size_t>(w.blocks) * (scratch->chunks + 1), 0);
    for (int b = 0; b < w.blocks; ++b) {
      int32_t* bounds = scratch->chunk_taps.data() + b * (scratch->chunks + 1);
      int tap = w.block_begin[b];
      for (int k = 0; k < scratch->chunks; ++k) {
        bounds[k] = tap;
        while (tap < w.block_begin[b + 1] && w.tap_in_channel[tap] < (k + 1) * chunk_c) ++tap;
      }
      bounds[scratch->chunks] = w.block_begin[b + 1];
    }
    if (copy) {
      scratch->padded_input.assign(static_cast<size_t>(padded_h) * row_stride, 0.0f);
    }
    scratch->planned_for = g;
    scratch->planned_params = params;
    scratch->planned_weights = w.weights.data();
    scratch->planned_block = w.block;
    scratch->planned_taps = w.tap_in_channel.size();
    scratch->planned = true;
  }

  const int pixels = g.out_h * g.out_w;
  const int per_task = variant.tile * params.tiles_per_task;
  const int groups = (pixels + per_task - 1) / per_task;
  const bool pixels_outer = params.loop_order == BlockLoopOrder::kPixelsOuter;
  const BlockTaskFn run = variant.run[pixels_outer ? 1 : 0];
  const size_t image_in = static_cast<size_t>(g.in_h) * g.in_w * g.in_c;
  const size_t image_out = static_cast<size_t>(pixels) * g.out_c;
  for (int n = 0; n < g.batch; ++n) {
    const float* image = input + n * image_in;
    if (copy) {
      CopyRowsTask rows{&g, image, scratch->padded_input.data(), row_stride,
                        padded_h, padded_w};
      pthreadpool_parallelize_1d(pool, CopyRow, &rows, g.in_h, /*flags=*/0);
    }
    BlockTask task{&g,
                   &w,
                   copy ? scratch->padded_input.data() : image,
                   row_stride,
                   scratch->tap_offsets.data(),
                   scratch->chunk_taps.data(),
                   scratch->chunks,
                   output + n * image_out,
                   pixels,
                   per_task};
    const bool last_call = release_workers && n == g.batch - 1;
    pthreadpool_parallelize_2d(pool, run, &task, pixels_outer ? groups : w.blocks,
                               pixels_outer ? w.blocks : groups,
                               last_call ? PTHREADPOOL_FLAG_YIELD_WORKERS : 0);
  }
  return true;
}

}  // namespace cocopie
#endif  // HWY_ONCE
