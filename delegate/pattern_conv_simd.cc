// PatternConvSimd: the pattern convolution written once with Highway and
// compiled for every SIMD target Highway knows on the build architecture
// (AVX-512, AVX2, SSE4 on x86-64; NEON/SVE on aarch64); the best one the CPU
// supports is chosen at run time.
//
// Data layout: each image is copied to a zero-padded, channel-major buffer
// split by horizontal stride phase, [phase][channel][row][column]. A kernel
// tap (r, c) of output row `oh` then reads the contiguous run
//   phases[phase(c)][ci][oh * stride_h + r * dilation_h][q(c) + ow ...]
// so every tap of every stride/dilation is a plain vector load, and padding
// needs no branches. Outputs are produced channel-major, one output channel
// per task, and transposed back to NHWC.

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "delegate/pattern_conv_simd.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"

#include <pthreadpool.h>

#include <algorithm>
#include <cassert>
#include <cstring>

#include "delegate/pattern_conv.h"

#ifndef COCOPIE_PATTERN_CONV_SIMD_SHARED_
#define COCOPIE_PATTERN_CONV_SIMD_SHARED_
namespace cocopie {
namespace {
// Slack after the phase buffer: the row tail is computed with a full vector
// whose extra lanes read (and then discard) up to one vector past the end.
constexpr size_t kTailSlackFloats = 64;

struct SimdTask {
  const ConvGeometry* g;
  const PackedPatternWeights* w;
  const float* phases;
  const int64_t* tap_offsets;  // per kept kernel and entry
  int64_t row_step;            // floats between consecutive output rows
  float* out_chw;
};
}  // namespace
}  // namespace cocopie
#endif

HWY_BEFORE_NAMESPACE();
namespace cocopie {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

void ConvOutputChannel(const SimdTask& t, size_t co) {
  const ConvGeometry& g = *t.g;
  const PackedPatternWeights& w = *t.w;
  const hn::ScalableTag<float> d;
  const size_t lanes = hn::Lanes(d);
  const size_t out_w = static_cast<size_t>(g.out_w);
  const int taps_begin = w.kernel_begin[co] * w.entries;
  const int taps_end = w.kernel_begin[co + 1] * w.entries;
  const float* weights = w.weights.data();
  const int64_t* taps = t.tap_offsets;
  const auto bias = hn::Set(d, w.bias[co]);
  const auto lo = hn::Set(d, g.act_min);
  const auto hi = hn::Set(d, g.act_max);

  for (int oh = 0; oh < g.out_h; ++oh) {
    const float* row = t.phases + oh * t.row_step;
    float* out = t.out_chw + (co * g.out_h + oh) * out_w;
    size_t ow = 0;
    for (; ow + 2 * lanes <= out_w; ow += 2 * lanes) {
      auto acc0 = bias, acc1 = bias;
      for (int tap = taps_begin; tap < taps_end; ++tap) {
        const auto wv = hn::Set(d, weights[tap]);
        const float* src = row + taps[tap] + ow;
        acc0 = hn::MulAdd(wv, hn::LoadU(d, src), acc0);
        acc1 = hn::MulAdd(wv, hn::LoadU(d, src + lanes), acc1);
      }
      hn::StoreU(hn::Min(hn::Max(acc0, lo), hi), d, out + ow);
      hn::StoreU(hn::Min(hn::Max(acc1, lo), hi), d, out + ow + lanes);
    }
    for (; ow < out_w; ow += lanes) {
      auto acc = bias;
      for (int tap = taps_begin; tap < taps_end; ++tap) {
        acc = hn::MulAdd(hn::Set(d, weights[tap]),
                         hn::LoadU(d, row + taps[tap] + ow), acc);
      }
      acc = hn::Min(hn::Max(acc, lo), hi);
      const size_t n = std::min(lanes, out_w - ow);
      if (n == lanes) {
        hn::StoreU(acc, d, out + ow);
      } else {
        HWY_ALIGN float tail[hn::MaxLanes(d)];
        hn::Store(acc, d, tail);
        std::memcpy(out + ow, tail, n * sizeof(float));
      }
    }
  }
}

void RunTask(void* context, size_t co) {
  ConvOutputChannel(*static_cast<const SimdTask*>(context), co);
}

// Returns the task body compiled for this target; called through dispatch.
using TaskFn = void (*)(void*, size_t);
TaskFn GetTaskFn() { return &RunTask; }

const char* TargetName() { return hwy::TargetName(HWY_TARGET); }

}  // namespace HWY_NAMESPACE
}  // namespace cocopie
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace cocopie {

HWY_EXPORT(GetTaskFn);
HWY_EXPORT(TargetName);

const char* PatternConvSimdTarget() { return HWY_DYNAMIC_DISPATCH(TargetName)(); }

namespace {

// Copies one NHWC image into the padded phase-split layout (see top).
void FillPhases(const ConvGeometry& g, const float* image, int padded_h,
                int phase_w, float* phases) {
  const int sw = g.stride_w;
  const size_t plane = static_cast<size_t>(padded_h) * phase_w;
  for (int ih = 0; ih < g.in_h; ++ih) {
    const int r = ih + g.pad_top;
    if (r >= padded_h) break;
    for (int iw = 0; iw < g.in_w; ++iw) {
      const int x = iw + g.pad_left;
      const int phase = x % sw, column = x / sw;
      if (column >= phase_w) break;
      const float* src = image + (static_cast<size_t>(ih) * g.in_w + iw) * g.in_c;
      float* dst = phases + static_cast<size_t>(phase) * g.in_c * plane +
                   static_cast<size_t>(r) * phase_w + column;
      for (int ci = 0; ci < g.in_c; ++ci) dst[ci * plane] = src[ci];
    }
  }
}

}  // namespace

void PatternConvSimd(const ConvGeometry& g, const PackedPatternWeights& w,
                     const float* input, float* output,
                     PatternConvScratch* scratch, pthreadpool_t pool,
                     bool release_workers) {
  assert(g.in_c == w.in_c && g.out_c == w.out_c);
  assert(g.kernel_h == w.kernel_h && g.kernel_w == w.kernel_w);
  if (!PaddedCopyFits(g)) {
    // The border alone would dwarf the image (a huge dilation): compute the
    // few taps that reach the image directly, with no copy.
    PatternConvReference(g, w, input, output);
    return;
  }
  // Below the PaddedCopyFits bound, every padded size fits an int.
  const int padded_h = (g.out_h - 1) * g.stride_h + (g.kernel_h - 1) * g.dilation_h + 1;
  const int padded_w = (g.out_w - 1) * g.stride_w + (g.kernel_w - 1) * g.dilation_w + 1;
  const int phase_w = (padded_w + g.stride_w - 1) / g.stride_w;
  const size_t plane = static_cast<size_t>(padded_h) * phase_w;
  const size_t phase_floats = static_cast<size_t>(g.stride_w) * g.in_c * plane;

  // Offset of every tap relative to the start of output row 0, column 0.
  std::vector<int64_t>& taps = scratch->tap_offsets;
  taps.resize(w.weights.size());
  std::vector<std::vector<int>> cells_of;
  for (uint32_t mask : w.pattern_masks) cells_of.push_back(MaskCells(mask));
  for (int64_t k = 0; k < w.kept_kernels(); ++k) {
    const std::vector<int>& cells = cells_of[w.pattern[k]];
    for (int e = 0; e < w.entries; ++e) {
      const int r = cells[e] / w.kernel_w, c = cells[e] % w.kernel_w;
      const int x = c * g.dilation_w;
      const int phase = x % g.stride_w, q = x / g.stride_w;
      taps[k * w.entries + e] =
          (static_cast<int64_t>(phase) * g.in_c + w.in_channel[k]) * plane +
          static_cast<int64_t>(r) * g.dilation_h * phase_w + q;
    }
  }

  scratch->input_phases.resize(phase_floats + kTailSlackFloats);
  const size_t out_plane = static_cast<size_t>(g.out_h) * g.out_w;
  scratch->output_chw.resize(out_plane * g.out_c);
  SimdTask task{&g, &w, scratch->input_phases.data(), taps.data(),
                static_cast<int64_t>(g.stride_h) * phase_w,
                scratch->output_chw.data()};
  const auto run = HWY_DYNAMIC_DISPATCH(GetTaskFn)();

  for (int n = 0; n < g.batch; ++n) {
    const float* image = input + static_cast<size_t>(n) * g.in_h * g.in_w * g.in_c;
    std::fill(scratch->input_phases.begin(), scratch->input_phases.end(), 0.0f);
    FillPhases(g, image, padded_h, phase_w, scratch->input_phases.data());
    const bool last_call = release_workers && n == g.batch - 1;
    pthreadpool_parallelize_1d(pool, run, &task, g.out_c,
                               last_call ? PTHREADPOOL_FLAG_YIELD_WORKERS : 0);
    float* out_image = output + static_cast<size_t>(n) * out_plane * g.out_c;
    for (size_t pixel = 0; pixel < out_plane; ++pixel) {
      for (int co = 0; co < g.out_c; ++co) {
        out_image[pixel * g.out_c + co] = scratch->output_chw[co * out_plane + pixel];
      }
    }
  }
}

}  // namespace cocopie
#endif  // HWY_ONCE
