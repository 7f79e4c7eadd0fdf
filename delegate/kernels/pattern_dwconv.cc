// Pattern-pruned depthwise convolution: packing, scalar reference, and the
// Highway kernel f32_dwconv_nhwc_{kPixels}x{lanes}, compiled once per SIMD
// target (AVX-512, AVX2, SSE4 on x86-64; NEON on aarch64) and dispatched at
// run time.
//
// The kernel vectorizes over channels, which are contiguous in NHWC. For one
// vector of channels it loads the block's tap weights into registers once,
// then sweeps an output row: per pixel one unaligned input load and one FMA
// per tap, kPixels pixels at a time for independent accumulator chains. The
// tap count is a compile-time constant (0..9, larger kernels take a generic
// loop) so that weights and tap pointers stay in registers.
//
// Zero padding costs no per-pixel branch in the interior: rows above or
// below the image read a row of zeros instead, and the columns whose taps all
// fall inside the image are computed unchecked; only the few border columns
// of each row check every tap. Channels beyond the last full vector (odd
// channel counts) are computed scalar.

// The kernel keeps tap weights in arrays of vectors, which sizeless SVE
// vector types cannot form; on SVE CPUs it dispatches to NEON.
#ifndef HWY_DISABLED_TARGETS
#define HWY_DISABLED_TARGETS (HWY_SVE | HWY_SVE2 | HWY_SVE_256 | HWY_SVE2_128)
#endif

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "delegate/kernels/pattern_dwconv.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"

#include <pthreadpool.h>

#include <algorithm>
#include <array>
#include <cassert>
#include <string>
#include <utility>
#include <vector>

#include "delegate/kernels/pattern_dwconv.h"

#ifndef COCOPIE_PATTERN_DWCONV_SHARED_
#define COCOPIE_PATTERN_DWCONV_SHARED_
namespace cocopie {
namespace {

// Output pixels computed together in the interior sweep.
constexpr int kPixels = 4;
// Tap counts with a compiled specialization (a 3x3 kernel's at most).
constexpr int kMaxSpecializedTaps = 9;

struct DwTask {
  const ConvGeometry* g;
  const PackedDepthwiseWeights* w;
  const float* input;     // NHWC, all images
  float* output;          // NHWC, all images
  const float* zero_row;  // in_w * channels zeros
  int ow_lo, ow_hi;       // output columns whose taps all lie inside the image
};

}  // namespace
}  // namespace cocopie
#endif  // COCOPIE_PATTERN_DWCONV_SHARED_

HWY_BEFORE_NAMESPACE();
namespace cocopie {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// Internal linkage: the other kernel files define per-target functions too.
namespace {

using DF = hn::ScalableTag<float>;
constexpr size_t kLanes = hn::MaxLanes(DF());
static_assert(kDepthwiseChannelBlock % kLanes == 0,
              "a packed channel block must be whole vectors on every target");

HWY_INLINE hn::Vec<DF> Clamp(hn::Vec<DF> v, hn::Vec<DF> lo, hn::Vec<DF> hi) {
  return hn::Min(hn::Max(v, lo), hi);
}

// The kernel_h input rows output row `oh` of `image` reads; rows outside
// the image read the row of zeros.
HWY_INLINE void RowPointers(const DwTask& t, int image, int oh, const float** rows) {
  const ConvGeometry& g = *t.g;
  const int64_t row_floats = static_cast<int64_t>(g.in_w) * g.in_c;
  const float* in_image = t.input + static_cast<int64_t>(image) * g.in_h * row_floats;
  for (int r = 0; r < g.kernel_h; ++r) {
    const int ih = oh * g.stride_h - g.pad_top + r;
    rows[r] = ih >= 0 && ih < g.in_h ? in_image + ih * row_floats : t.zero_row;
  }
}

HWY_INLINE float* OutputRow(const DwTask& t, int image, int oh) {
  const ConvGeometry& g = *t.g;
  return t.output + (static_cast<int64_t>(image) * g.out_h + oh) * g.out_w * g.in_c;
}

// Interior columns [ow_lo, ow_hi) of output rows [oh0, oh1), channels
// [c, c + kLanes), with the kTaps taps from `tap_begin` (kTaps < 0: `taps`,
// known at run time only).
template <int kTaps>
HWY_NOINLINE void InteriorSlice(const DwTask& t, int image, int oh0, int oh1,
                                int tap_begin, int taps, int c) {
  constexpr int kSlots = kTaps > 0 ? kTaps : (kTaps < 0 ? kMaxKernelCells : 1);
  const int n = kTaps >= 0 ? kTaps : taps;
  const DF d;
  const ConvGeometry& g = *t.g;
  const PackedDepthwiseWeights& w = *t.w;
  const int channels = g.in_c;
  const int64_t step = static_cast<int64_t>(g.stride_w) * channels;
  const float* weights = w.block_weights.data() +
                         static_cast<size_t>(tap_begin) * kDepthwiseChannelBlock +
                         c % kDepthwiseChannelBlock;
  const uint8_t* tap_row = w.block_tap_row.data() + tap_begin;
  const uint8_t* tap_col = w.block_tap_col.data() + tap_begin;
  const int iw0 = t.ow_lo * g.stride_w - g.pad_left;  // >= 0 in the interior
  hn::Vec<DF> wv[kSlots];
#pragma GCC unroll 9
  for (int k = 0; k < n; ++k) {
    wv[k] = hn::LoadU(d, weights + static_cast<size_t>(k) * kDepthwiseChannelBlock);
  }
  const auto bias = hn::LoadU(d, w.bias.data() + c);
  const auto lo = hn::Set(d, g.act_min);
  const auto hi = hn::Set(d, g.act_max);
  for (int oh = oh0; oh < oh1; ++oh) {
    const float* rows[kMaxKernelCells];
    RowPointers(t, image, oh, rows);
    const float* src[kSlots];
#pragma GCC unroll 9
    for (int k = 0; k < n; ++k) {
      src[k] = rows[tap_row[k]] + static_cast<int64_t>(iw0 + tap_col[k]) * channels + c;
    }
    float* out = OutputRow(t, image, oh) + static_cast<int64_t>(t.ow_lo) * channels + c;
    int64_t x = 0;
    int ow = t.ow_lo;
    for (; ow + kPixels <= t.ow_hi; ow += kPixels, x += kPixels * step,
                                    out += kPixels * channels) {
      auto a0 = bias, a1 = bias, a2 = bias, a3 = bias;
#pragma GCC unroll 9
      for (int k = 0; k < n; ++k) {
        const float* p = src[k] + x;
        a0 = hn::MulAdd(wv[k], hn::LoadU(d, p), a0);
        a1 = hn::MulAdd(wv[k], hn::LoadU(d, p + step), a1);
        a2 = hn::MulAdd(wv[k], hn::LoadU(d, p + 2 * step), a2);
        a3 = hn::MulAdd(wv[k], hn::LoadU(d, p + 3 * step), a3);
      }
      hn::StoreU(Clamp(a0, lo, hi), d, out);
      hn::StoreU(Clamp(a1, lo, hi), d, out + channels);
      hn::StoreU(Clamp(a2, lo, hi), d, out + 2 * channels);
      hn::StoreU(Clamp(a3, lo, hi), d, out + 3 * channels);
    }
    for (; ow < t.ow_hi; ++ow, x += step, out += channels) {
      auto acc = bias;
#pragma GCC unroll 9
      for (int k = 0; k < n; ++k) acc = hn::MulAdd(wv[k], hn::LoadU(d, src[k] + x), acc);
      hn::StoreU(Clamp(acc, lo, hi), d, out);
    }
  }
}

using InteriorFn = void (*)(const DwTask&, int, int, int, int, int, int);

template <int... kTaps>
constexpr std::array<InteriorFn, sizeof...(kTaps)> InteriorTable(
    std::integer_sequence<int, kTaps...>) {
  return {{&InteriorSlice<kTaps>...}};
}

// Channels [c, c + kLanes) of one output column with every tap
// bounds-checked (the border columns of a row).
HWY_INLINE void BorderPixel(const DwTask& t, const float* const* rows, int tap_begin,
                            int tap_end, int c, int ow, float* out_row) {
  const DF d;
  const ConvGeometry& g = *t.g;
  const PackedDepthwiseWeights& w = *t.w;
  const int iw0 = ow * g.stride_w - g.pad_left;
  auto acc = hn::LoadU(d, w.bias.data() + c);
  for (int k = tap_begin; k < tap_end; ++k) {
    const int r = w.block_tap_row[k];
    const int iw = iw0 + w.block_tap_col[k];
    if (iw < 0 || iw >= g.in_w) continue;
    const float* weights = w.block_weights.data() +
                           static_cast<size_t>(k) * kDepthwiseChannelBlock +
                           c % kDepthwiseChannelBlock;
    acc = hn::MulAdd(hn::LoadU(d, weights),
                     hn::LoadU(d, rows[r] + static_cast<int64_t>(iw) * g.in_c + c), acc);
  }
  hn::StoreU(Clamp(acc, hn::Set(d, g.act_min), hn::Set(d, g.act_max)), d,
             out_row + static_cast<int64_t>(ow) * g.in_c + c);
}

// Channel c of a whole output row, scalar (channels past the last vector).
void ScalarChannel(const DwTask& t, const float* const* rows, int tap_begin,
                   int tap_end, int c, float* out_row) {
  const ConvGeometry& g = *t.g;
  const PackedDepthwiseWeights& w = *t.w;
  for (int ow = 0; ow < g.out_w; ++ow) {
    const int iw0 = ow * g.stride_w - g.pad_left;
    float acc = w.bias[c];
    for (int k = tap_begin; k < tap_end; ++k) {
      const int iw = iw0 + w.block_tap_col[k];
      if (iw < 0 || iw >= g.in_w) continue;
      const float* row = rows[w.block_tap_row[k]];
      acc += w.block_weights[static_cast<size_t>(k) * kDepthwiseChannelBlock +
                             c % kDepthwiseChannelBlock] *
             row[static_cast<int64_t>(iw) * g.in_c + c];
    }
    out_row[static_cast<int64_t>(ow) * g.in_c + c] =
        std::min(std::max(acc, g.act_min), g.act_max);
  }
}

// Pool task: output row `index` of the batch (image index / out_h, row
// index % out_h), every channel. Going through a row's channel blocks one
// after the other reads its input rows nearly sequentially, which the
// hardware prefetchers serve better than walking one block down many rows
// (measured: 30 % slower on 112x112x96 stride 2).
void RunRow(void* context, size_t index) {
  static constexpr auto kInterior = InteriorTable(
      std::make_integer_sequence<int, kMaxSpecializedTaps + 1>());
  const DwTask& t = *static_cast<const DwTask*>(context);
  const ConvGeometry& g = *t.g;
  const PackedDepthwiseWeights& w = *t.w;
  const int image = static_cast<int>(index) / g.out_h;
  const int oh = static_cast<int>(index) % g.out_h;
  const float* rows[kMaxKernelCells];
  RowPointers(t, image, oh, rows);
  float* out_row = OutputRow(t, image, oh);
  for (int b = 0; b < w.blocks; ++b) {
    const int c0 = b * kDepthwiseChannelBlock;
    const int width = std::min(kDepthwiseChannelBlock, g.in_c - c0);
    const int tap_begin = w.block_begin[b], tap_end = w.block_begin[b + 1];
    const int taps = tap_end - tap_begin;
    const int vectors_end = c0 + width / static_cast<int>(kLanes) * static_cast<int>(kLanes);
    for (int c = c0; c < vectors_end; c += static_cast<int>(kLanes)) {
      if (t.ow_lo < t.ow_hi) {
        const InteriorFn interior =
            taps <= kMaxSpecializedTaps ? kInterior[taps] : &InteriorSlice<-1>;
        interior(t, image, oh, oh + 1, tap_begin, taps, c);
      }
      for (int ow = 0; ow < t.ow_lo; ++ow) {
        BorderPixel(t, rows, tap_begin, tap_end, c, ow, out_row);
      }
      for (int ow = t.ow_hi; ow < g.out_w; ++ow) {
        BorderPixel(t, rows, tap_begin, tap_end, c, ow, out_row);
      }
    }
    for (int c = vectors_end; c < c0 + width; ++c) {
      ScalarChannel(t, rows, tap_begin, tap_end, c, out_row);
    }
  }
}

}  // namespace

using DwRowFn = void (*)(void*, size_t);
DwRowFn GetDwconvRowFn() { return &RunRow; }

const char* DwconvTargetName() { return hwy::TargetName(HWY_TARGET); }
int DwconvLanes() { return static_cast<int>(kLanes); }

}  // namespace HWY_NAMESPACE
}  // namespace cocopie
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace cocopie {

HWY_EXPORT(GetDwconvRowFn);
HWY_EXPORT(DwconvTargetName);
HWY_EXPORT(DwconvLanes);

PackedDepthwiseWeights PackDepthwiseWeights(const LrLayer& layer,
                                            const float* filter_1hwc,
                                            const float* bias) {
  assert(layer.in_channels == 1);
  PackedDepthwiseWeights w;
  w.channels = layer.out_channels;
  w.kernel_h = layer.kernel_h;
  w.kernel_w = layer.kernel_w;
  const int channels = w.channels;
  const int cells = w.kernel_h * w.kernel_w;
  auto kept_mask = [&](int c) {
    const uint8_t id = layer.PatternOf(c, 0);
    return id == kRemovedKernel ? 0u : layer.pattern_masks[id];
  };
  auto value = [&](int c, int cell) {
    return filter_1hwc[static_cast<size_t>(cell) * channels + c];
  };
  w.channel_begin.reserve(channels + 1);
  for (int c = 0; c < channels; ++c) {
    w.channel_begin.push_back(static_cast<int32_t>(w.cell.size()));
    const uint32_t mask = kept_mask(c);
    for (int cell = 0; cell < cells; ++cell) {
      if (!(mask & (1u << cell))) continue;
      w.cell.push_back(static_cast<uint8_t>(cell));
      w.weight.push_back(value(c, cell));
    }
  }
  w.channel_begin.push_back(static_cast<int32_t>(w.cell.size()));

  w.blocks = (channels + kDepthwiseChannelBlock - 1) / kDepthwiseChannelBlock;
  w.bias.assign(static_cast<size_t>(w.blocks) * kDepthwiseChannelBlock, 0.0f);
  if (bias != nullptr) std::copy(bias, bias + channels, w.bias.begin());
  w.block_begin.push_back(0);
  for (int b = 0; b < w.blocks; ++b) {
    const int c0 = b * kDepthwiseChannelBlock;
    const int c1 = std::min(channels, c0 + kDepthwiseChannelBlock);
    uint32_t tap_union = 0;
    for (int c = c0; c < c1; ++c) tap_union |= kept_mask(c);
    for (int cell = 0; cell < cells; ++cell) {
      if (!(tap_union & (1u << cell))) continue;
      w.block_tap_cell.push_back(static_cast<uint8_t>(cell));
      w.block_tap_row.push_back(static_cast<uint8_t>(cell / w.kernel_w));
      w.block_tap_col.push_back(static_cast<uint8_t>(cell % w.kernel_w));
      for (int lane = 0; lane < kDepthwiseChannelBlock; ++lane) {
        const int c = c0 + lane;
        const bool kept = c < c1 && (kept_mask(c) & (1u << cell));
        w.block_weights.push_back(kept ? value(c, cell) : 0.0f);
      }
    }
    w.block_begin.push_back(static_cast<int32_t>(w.block_tap_cell.size()));
  }
  return w;
}

void DepthwiseConvReference(const ConvGeometry& g, const PackedDepthwiseWeights& w,
                            const float* input, float* output) {
  assert(g.in_c == w.channels && g.out_c == w.channels);
  assert(g.dilation_h == 1 && g.dilation_w == 1);
  const int channels = w.channels;
  for (int n = 0; n < g.batch; ++n) {
    const float* image = input + static_cast<size_t>(n) * g.in_h * g.in_w * channels;
    for (int oh = 0; oh < g.out_h; ++oh) {
      for (int ow = 0; ow < g.out_w; ++ow) {
        float* out = output +
                     ((static_cast<size_t>(n) * g.out_h + oh) * g.out_w + ow) * channels;
        for (int c = 0; c < channels; ++c) {
          float acc = w.bias[c];
          for (int k = w.channel_begin[c]; k < w.channel_begin[c + 1]; ++k) {
            const int ih = oh * g.stride_h - g.pad_top + w.cell[k] / w.kernel_w;
            const int iw = ow * g.stride_w - g.pad_left + w.cell[k] % w.kernel_w;
            if (ih < 0 || ih >= g.in_h || iw < 0 || iw >= g.in_w) continue;
            acc += w.weight[k] * image[(static_cast<size_t>(ih) * g.in_w + iw) * channels + c];
          }
          out[c] = std::min(std::max(acc, g.act_min), g.act_max);
        }
      }
    }
  }
}

void DepthwiseConvSimd(const ConvGeometry& g, const PackedDepthwiseWeights& w,
                       const float* input, float* output,
                       DepthwiseConvScratch* scratch, pthreadpool_t pool,
                       bool release_workers) {
  assert(g.in_c == w.channels && g.out_c == w.channels);
  assert(g.kernel_h == w.kernel_h && g.kernel_w == w.kernel_w);
  assert(g.dilation_h == 1 && g.dilation_w == 1);
  const size_t row_floats = static_cast<size_t>(g.in_w) * g.in_c;
  if (scratch->zero_row.size() < row_floats) scratch->zero_row.assign(row_floats, 0.0f);
  DwTask task{&g, &w, input, output, scratch->zero_row.data(), 0, 0};
  // Interior: iw0 = ow * stride - pad_left >= 0 and iw0 + kernel_w - 1 < in_w.
  task.ow_lo = std::min(g.out_w, (g.pad_left + g.stride_w - 1) / g.stride_w);
  const int last_start = g.in_w - g.kernel_w + g.pad_left;  // largest ow*stride
  task.ow_hi = last_start < 0 ? 0 : std::min(g.out_w, last_start / g.stride_w + 1);
  task.ow_hi = std::max(task.ow_hi, task.ow_lo);
  pthreadpool_parallelize_1d(pool, HWY_DYNAMIC_DISPATCH(GetDwconvRowFn)(), &task,
                             static_cast<size_t>(g.batch) * g.out_h,
                             release_workers ? PTHREADPOOL_FLAG_YIELD_WORKERS : 0);
}

std::string DepthwiseConvKernelName() {
  return "f32_dwconv_nhwc_" + std::to_string(kPixels) + "x" +
         std::to_string(HWY_DYNAMIC_DISPATCH(DwconvLanes)()) + "_" +
         HWY_DYNAMIC_DISPATCH(DwconvTargetName)();
}

}  // namespace cocopie
#endif  // HWY_ONCE
