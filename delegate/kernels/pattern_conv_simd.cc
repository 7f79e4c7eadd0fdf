// PatternConvSimd, the free-pattern ("rows") kernel: work proportional to the
// kept weights whatever pattern and connectivity each kernel has. Written
// once with Highway and compiled for every SIMD target Highway knows on the
// build architecture (AVX-512, AVX2, SSE4 on x86-64; NEON/SVE on aarch64);
// the best one the CPU supports is chosen at run time.
//
// Data layout: each image is copied to a zero-padded, channel-major buffer
// split by horizontal stride phase, [phase][channel][row][column]. A kernel
// tap (r, c) of output row `oh` then reads the contiguous run
//   phases[phase(c)][ci][oh * stride_h + r * dilation_h][q(c) + ow ...]
// so every tap of every stride/dilation is a plain vector load, and padding
// needs no branches. The buffer is tall and wide enough for whole tiles, so a
// tile never reads outside its channel's plane.
//
// Register tile: output pixels along the vector lanes, R output rows x V
// vectors of one output channel (the <R, V> micro-kernels below). A tap's
// weight is broadcast once and feeds R * V independent FMAs, enough chains to
// hide the FMA latency; each input vector a tap loads is used once, so a tile
// costs one load per FMA plus one broadcast per tap. The tile shape is picked
// per layer from the output size; at stride 1, small maps run flattened, the
// padded rows end to end as one long row, so that an 8x8 map fills 5 vectors
// instead of 8 half-empty ones (PlanRowsLayout, rows_layout.h).
//
// A task is a group of output channels on one row tile (R rows, every column
// tile), filters handed out heaviest first (PackedPatternWeights::filter_order)
// so that the pool's threads end together. Input channels are taken a chunk
// at a time (PatternConvScratch::chunk_bytes): the chunk's input rows for the
// row tile stay in L1 while every filter of the group reads them, so the one
// load per FMA hits L1 instead of streaming the whole input from L2 once per
// filter; each filter's accumulators go through its output tile between
// chunks, a load and a store per accumulator per chunk. Outputs are produced
// channel-major and transposed back to NHWC.
//
// The zero border of the padded copy is written once per geometry; later
// images overwrite only the interior (FillPhases, in parallel by rows).

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "delegate/kernels/pattern_conv_simd.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"

#include <pthreadpool.h>

#include <algorithm>
#include <cassert>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <utility>
#include <vector>

#include "delegate/kernels/pattern_conv.h"
#include "delegate/kernels/planar_copy.h"
#include "delegate/kernels/rows_layout.h"

#ifndef COCOPIE_PATTERN_CONV_SIMD_SHARED_
#define COCOPIE_PATTERN_CONV_SIMD_SHARED_
namespace cocopie {
namespace {

struct SimdTask {
  const ConvGeometry* g;
  const PackedPatternWeights* w;
  const float* phases;
  const int64_t* tap_offsets;  // per kept kernel and entry
  // Kernel index where filter co's chunk k starts: chunk_kernels[co * (chunks
  // + 1) + k]; a filter's kernels are in input-channel order.
  const int32_t* chunk_kernels;
  int chunks;
  int group;             // filters (in filter_order) per task
  int64_t row_step;      // input floats between consecutive output rows
  int tile_rows;         // R
  size_t tile_columns;   // V * lanes
  size_t out_stride;     // floats between output rows in out_chw
  size_t out_plane;      // floats between output channels in out_chw
  float* out_chw;
};

}  // namespace
}  // namespace cocopie
#endif

HWY_BEFORE_NAMESPACE();
namespace cocopie {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// Output channel `co` on the R x V tile whose top-left input is `in`, stored
// at `out` (rows out_stride apart): bias plus the filter's kept taps, clamped
// to the fused activation. The accumulators are named variables, row i in
// a_i, b_i, c_i, e_i, not an array: scalable vectors (SVE) cannot live in
// arrays. Those beyond R x V are dead code.
//
// Runs taps [tap_begin, tap_end): the filter's kernels in one input-channel
// chunk. The first chunk starts from the bias, later ones from what `out`
// holds; only the last clamps to the activation.
template <int R, int V>
HWY_INLINE void ConvTile(const SimdTask& t, size_t co, const float* in, float* out,
                         int tap_begin, int tap_end, bool first, bool last) {
  static_assert(R >= 1 && R <= 8 && V >= 1 && V <= 4, "tile shape");
  const PackedPatternWeights& w = *t.w;
  const hn::ScalableTag<float> d;
  const size_t lanes = hn::Lanes(d);
  const int64_t rs = t.row_step;
  const size_t os = t.out_stride;
  const auto bias = hn::Set(d, w.bias[co]);
  auto a0 = bias, b0 = bias, c0 = bias, e0 = bias, a1 = bias, b1 = bias, c1 = bias,
       e1 = bias, a2 = bias, b2 = bias, c2 = bias, e2 = bias, a3 = bias, b3 = bias,
       c3 = bias, e3 = bias, a4 = bias, b4 = bias, c4 = bias, e4 = bias, a5 = bias,
       b5 = bias, c5 = bias, e5 = bias, a6 = bias, b6 = bias, c6 = bias, e6 = bias,
       a7 = bias, b7 = bias, c7 = bias, e7 = bias;
  // Applies `op(accumulator, vector index)` to row i's V accumulators.
  auto each_row = [&](auto&& row) {
    row(a0, b0, c0, e0, 0);
    if constexpr (R > 1) row(a1, b1, c1, e1, 1);
    if constexpr (R > 2) row(a2, b2, c2, e2, 2);
    if constexpr (R > 3) row(a3, b3, c3, e3, 3);
    if constexpr (R > 4) row(a4, b4, c4, e4, 4);
    if constexpr (R > 5) row(a5, b5, c5, e5, 5);
    if constexpr (R > 6) row(a6, b6, c6, e6, 6);
    if constexpr (R > 7) row(a7, b7, c7, e7, 7);
  };
  auto each_vector = [](auto&& op, auto& a, auto& b, auto& c, auto& e) {
    op(a, 0);
    if constexpr (V > 1) op(b, 1);
    if constexpr (V > 2) op(c, 2);
    if constexpr (V > 3) op(e, 3);
  };
  if (!first) {
    each_row([&](auto& a, auto& b, auto& c, auto& e, int i) {
      const float* row = out + i * os;
      each_vector([&](auto& acc, int v) { acc = hn::LoadU(d, row + v * lanes); }, a, b, c, e);
    });
  }

  const float* weights = w.weights.data();
  const int64_t* taps = t.tap_offsets;
  for (int tap = tap_begin; tap < tap_end; ++tap) {
    const auto wv = hn::Set(d, weights[tap]);
    const float* src = in + taps[tap];
    each_row([&](auto& a, auto& b, auto& c, auto& e, int i) {
      const float* row = src + i * rs;
      each_vector([&](auto& acc, int v) {
        acc = hn::MulAdd(wv, hn::LoadU(d, row + v * lanes), acc);
      }, a, b, c, e);
    });
  }

  if (!last) {  // partial sums, unclamped (a clamp would also turn NaN into a bound)
    each_row([&](auto& a, auto& b, auto& c, auto& e, int i) {
      float* row = out + i * os;
      each_vector([&](auto& acc, int v) { hn::StoreU(acc, d, row + v * lanes); }, a, b, c, e);
    });
    return;
  }
  const auto lo = hn::Set(d, t.g->act_min);
  const auto hi = hn::Set(d, t.g->act_max);
  each_row([&](auto& a, auto& b, auto& c, auto& e, int i) {
    float* row = out + i * os;
    each_vector([&](auto& acc, int v) {
      hn::StoreU(hn::Min(hn::Max(acc, lo), hi), d, row + v * lanes);
    }, a, b, c, e);
  });
}

// One task: filters [group * t.group, ...) of w.filter_order on row tile
// `row_tile`, one column tile at a time, input-channel chunk by chunk.
template <int R, int V>
void RunTile(void* context, size_t group, size_t row_tile) {
  const auto& t = *static_cast<const SimdTask*>(context);
  const PackedPatternWeights& w = *t.w;
  const float* in = t.phases + static_cast<int64_t>(row_tile) * R * t.row_step;
  const size_t f_begin = group * t.group;
  const size_t f_end = std::min<size_t>(f_begin + t.group, w.filter_order.size());
  const size_t row_offset = row_tile * R * t.out_stride;
  for (size_t column = 0; column < t.out_stride; column += t.tile_columns) {
    for (int k = 0; k < t.chunks; ++k) {
      const bool first = k == 0, last = k == t.chunks - 1;
      for (size_t f = f_begin; f < f_end; ++f) {
        const size_t co = static_cast<size_t>(w.filter_order[f]);
        const int32_t* bounds = t.chunk_kernels + co * (t.chunks + 1) + k;
        const int tap_begin = bounds[0] * w.entries, tap_end = bounds[1] * w.entries;
        if (!first && !last && tap_begin == tap_end) continue;
        ConvTile<R, V>(t, co, in + column, t.out_chw + co * t.out_plane + row_offset + column,
                       tap_begin, tap_end, first, last);
      }
    }
  }
}

using TileFn = void (*)(void*, size_t, size_t);

// The micro-kernel for R rows of V vectors compiled for this target; R * V
// stays within 12 accumulators (kMaxTileRows).
TileFn GetTileFn(int rows, int vectors) {
  static constexpr TileFn kOne[kMaxTileRows[0]] = {
      &RunTile<1, 1>, &RunTile<2, 1>, &RunTile<3, 1>, &RunTile<4, 1>,
      &RunTile<5, 1>, &RunTile<6, 1>, &RunTile<7, 1>, &RunTile<8, 1>};
  static constexpr TileFn kTwo[kMaxTileRows[1]] = {&RunTile<1, 2>, &RunTile<2, 2>,
                                                   &RunTile<3, 2>, &RunTile<4, 2>,
                                                   &RunTile<5, 2>, &RunTile<6, 2>};
  static constexpr TileFn kThree[kMaxTileRows[2]] = {&RunTile<1, 3>, &RunTile<2, 3>,
                                                     &RunTile<3, 3>, &RunTile<4, 3>};
  static constexpr TileFn kFour[kMaxTileRows[3]] = {&RunTile<1, 4>, &RunTile<2, 4>,
                                                    &RunTile<3, 4>};
  static constexpr const TileFn* kByVectors[kMaxTileVectors] = {kOne, kTwo, kThree, kFour};
  assert(vectors >= 1 && vectors <= kMaxTileVectors && rows >= 1 &&
         rows <= kMaxTileRows[vectors - 1]);
  return kByVectors[vectors - 1][rows - 1];
}

size_t FloatLanes() { return hn::Lanes(hn::ScalableTag<float>()); }

const char* TargetName() { return hwy::TargetName(HWY_TARGET); }

}  // namespace HWY_NAMESPACE
}  // namespace cocopie
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace cocopie {

HWY_EXPORT(GetTileFn);
HWY_EXPORT(FloatLanes);
HWY_EXPORT(TargetName);

const char* PatternConvSimdTarget() { return HWY_DYNAMIC_DISPATCH(TargetName)(); }

namespace {

// Copies input row `ih` of one NHWC image into the padded phase-split layout
// (see top); the border around the image is left as it is (zero).
struct FillTask {
  const ConvGeometry* g;
  const float* image;
  int plane_h, phase_w;
  size_t plane;
  float* phases;
};

void FillPhaseRow(void* context, size_t ih) {
  const auto& t = *static_cast<const FillTask*>(context);
  const ConvGeometry& g = *t.g;
  const int r = static_cast<int>(ih) + g.pad_top;
  if (r >= t.plane_h) return;
  // Padded column x = iw + pad_left goes to phase x % stride_w, column
  // x / stride_w: each phase takes every stride_w-th pixel, in column order.
  const int s = g.stride_w;
  for (int phase = 0; phase < s; ++phase) {
    const int first_iw = ((phase - g.pad_left) % s + s) % s;
    if (first_iw >= g.in_w) continue;
    const int first_column = (first_iw + g.pad_left) / s;
    const int count = std::min((g.in_w - first_iw + s - 1) / s, t.phase_w - first_column);
    if (count <= 0) continue;
    const float* src = t.image + (ih * g.in_w + first_iw) * static_cast<size_t>(g.in_c);
    float* dst = t.phases + static_cast<size_t>(phase) * g.in_c * t.plane +
                 static_cast<size_t>(r) * t.phase_w + first_column;
    CopyPixelsToPlanes(src, static_cast<size_t>(s) * g.in_c, count, g.in_c, dst, t.plane);
  }
}

// Filters per task at most: a task's filters share the input chunk in L1.
constexpr size_t kMaxTaskFilters = 16;

// Everything the tap offsets and chunks depend on: the geometry (not the
// batch or the activation), the layout, the chunk budget, and the packing's
// arrays. A scratch serves one packing at a time; weights packed again are
// new arrays, so they are planned again.
std::vector<int64_t> PlanKey(const ConvGeometry& g, const PackedPatternWeights& w,
                             const RowsLayout& l, int chunk_bytes, size_t lanes) {
  auto address = [](const void* p) { return static_cast<int64_t>(reinterpret_cast<intptr_t>(p)); };
  return {g.in_h, g.in_w, g.in_c, g.out_h, g.out_w, g.out_c, g.kernel_h, g.kernel_w,
          g.stride_h, g.stride_w, g.dilation_h, g.dilation_w, g.pad_top, g.pad_left,
          l.flat, l.plane_h, l.phase_w, static_cast<int64_t>(l.plane), l.tile_input,
          chunk_bytes, static_cast<int64_t>(lanes), w.entries, address(w.weights.data()),
          address(w.in_channel.data()), address(w.pattern.data()),
          address(w.kernel_begin.data()), address(w.pattern_masks.data()),
          static_cast<int64_t>(w.weights.size()),
          static_cast<int64_t>(w.pattern_masks.size())};
}

// Sizes the padded input copy and zeroes it when its layout changed: the
// images that follow overwrite the same interior, so the border stays zero.
void PrepareInputCopy(const ConvGeometry& g, int plane_h, int phase_w, size_t plane,
                      size_t phase_floats, PatternConvScratch* scratch) {
  const std::vector<int64_t> layout = {g.in_h,    g.in_w,   g.in_c,  g.pad_top,
                                       g.pad_left, g.stride_w, plane_h, phase_w,
                                       static_cast<int64_t>(plane)};
  if (scratch->zeroed_layout == layout && scratch->input_phases.size() == phase_floats) return;
  scratch->input_phases.assign(phase_floats, 0.0f);
  scratch->zeroed_layout = layout;
}

// out_nhwc[pixel][co] = out_chw[co][row][column] over the valid region.
struct TransposeTask {
  const ConvGeometry* g;
  const float* out_chw;
  size_t out_stride, out_plane;
  float* out_nhwc;
};

void TransposeRows(void* context, size_t oh) {
  const auto& t = *static_cast<const TransposeTask*>(context);
  const int out_c = t.g->out_c, out_w = t.g->out_w;
  CopyPlanesToPixels(t.out_chw + oh * t.out_stride, t.out_plane, out_w, out_c,
                     t.out_nhwc + oh * out_w * out_c, out_c);
}

}  // namespace

void PatternConvSimd(const ConvGeometry& g, const PackedPatternWeights& w,
                     const float* input, float* output,
                     PatternConvScratch* scratch, pthreadpool_t pool,
                     bool release_workers) {
  assert(g.in_c == w.in_c && g.out_c == w.out_c);
  assert(g.kernel_h == w.kernel_h && g.kernel_w == w.kernel_w);
  assert(static_cast<int>(w.filter_order.size()) == w.out_c);
  if (!PaddedCopyFits(g)) {
    // The border alone would dwarf the image (a huge dilation): compute the
    // few taps that reach the image directly, with no copy.
    PatternConvReference(g, w, input, output);
    return;
  }
  const size_t lanes = HWY_DYNAMIC_DISPATCH(FloatLanes)();
  const RowsLayout layout = PlanRowsLayout(g, lanes);
  const TileShape tile = layout.tile;
  const size_t phase_floats = static_cast<size_t>(g.stride_w) * g.in_c * layout.plane;

  std::vector<int64_t> key = PlanKey(g, w, layout, scratch->chunk_bytes, lanes);
  if (scratch->planned_key != key) {
    scratch->planned_key.clear();  // a plan half made is no plan
    FillTapOffsets(g, w, layout.plane, layout.phase_w, &scratch->tap_offsets);
    scratch->planned_chunks = PlanChunks(g, w, layout, scratch);
    scratch->planned_key = std::move(key);
  }
  const int chunks = scratch->planned_chunks;
  const size_t threads = pool != nullptr ? pthreadpool_get_threads_count(pool) : 1;
  // Enough tasks that the threads end together (8 per thread), as few
  // filters per task as that takes below kMaxTaskFilters.
  const size_t group = std::max<size_t>(
      1, std::min<size_t>(kMaxTaskFilters, g.out_c * layout.row_tiles / (8 * threads)));

  PrepareInputCopy(g, layout.plane_h, layout.phase_w, layout.plane, phase_floats, scratch);
  scratch->output_chw.resize(layout.out_plane * g.out_c);
  SimdTask task;
  task.g = &g;
  task.w = &w;
  task.phases = scratch->input_phases.data();
  task.tap_offsets = scratch->tap_offsets.data();
  task.row_step = layout.row_step;
  task.tile_rows = tile.rows;
  task.tile_columns = tile.vectors * lanes;
  task.out_stride = layout.out_stride;
  task.out_plane = layout.out_plane;
  task.out_chw = scratch->output_chw.data();
  task.chunk_kernels = scratch->chunk_kernels.data();
  task.chunks = chunks;
  task.group = static_cast<int>(group);
  const auto run = HWY_DYNAMIC_DISPATCH(GetTileFn)(tile.rows, tile.vectors);

  for (int n = 0; n < g.batch; ++n) {
    const float* image = input + static_cast<size_t>(n) * g.in_h * g.in_w * g.in_c;
    FillTask fill{&g, image, layout.plane_h, layout.phase_w, layout.plane,
                  scratch->input_phases.data()};
    pthreadpool_parallelize_1d(pool, FillPhaseRow, &fill, g.in_h, 0);
    pthreadpool_parallelize_2d(pool, run, &task, (g.out_c + group - 1) / group,
                               layout.row_tiles, 0);
    const bool last_call = release_workers && n == g.batch - 1;
    TransposeTask transpose{&g, scratch->output_chw.data(), layout.out_pitch, layout.out_plane,
                            output + static_cast<size_t>(n) * g.out_h * g.out_w * g.out_c};
    pthreadpool_parallelize_1d(pool, TransposeRows, &transpose, g.out_h,
                               last_call ? PTHREADPOOL_FLAG_YIELD_WORKERS : 0);
  }
}

}  // namespace cocopie
#endif  // HWY_ONCE
