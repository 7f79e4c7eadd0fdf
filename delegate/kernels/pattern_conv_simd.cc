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
// instead of 8 half-empty ones (PlanRowsLayout).
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

#ifndef COCOPIE_PATTERN_CONV_SIMD_SHARED_
#define COCOPIE_PATTERN_CONV_SIMD_SHARED_
namespace cocopie {
namespace {

// Largest tile: up to 4 vectors per row, and rows per tile for 1..4 vectors.
// At most 12 accumulators (plus the broadcast weight and a load) fit the 16
// vector registers of AVX2/SSE4; the 32-register targets run the same shapes.
constexpr int kMaxTileVectors = 4;
constexpr int kMaxTileRows[kMaxTileVectors] = {8, 6, 4, 3};

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

size_t RoundUp(size_t value, size_t multiple) {
  return (value + multiple - 1) / multiple * multiple;
}

// Floats between consecutive channel planes of `floats` each: whole cache
// lines, an odd number of them. Planes of a power-of-two-ish size (30 rows of
// 34 floats is 4080 bytes) would otherwise put the same row of every channel
// in one cache set, and a filter's input channels would evict each other.
size_t PlaneStride(size_t floats) {
  constexpr size_t kLineFloats = 16;
  const size_t lines = RoundUp(floats, kLineFloats) / kLineFloats;
  return (lines | 1) * kLineFloats;
}

struct TileShape {
  int rows = 1, vectors = 1;
};

// Relative time of one tap over `padded` output vectors run R * V at a time.
// A tap issues one (mostly unaligned) load per FMA, and loads, not FMAs,
// bound it: on an AVX-512 EPYC, FMAs with a memory operand ran at a quarter
// of the register-only FMA rate. Below about three accumulators the FMA
// latency shows as well (measured with out/pattern_conv_bench: 4x4 and 8x8
// maps ran fastest in flattened tiles of 2 and 5 vectors; the 10 chains
// assumed before kept them in row tiles a third to a half slower).
constexpr double kLatencyChains = 3.0;

double TileCost(double padded, int rows, int vectors) {
  return padded / std::min(1.0, rows * vectors / kLatencyChains);
}

// Picks R and V for an output of out_h x out_w: the fewest padded pixels
// weighted by how well R * V independent FMA chains hide the FMA latency
// (TileCost). Ties go to the wider tile: its taps read fewer cache lines per
// FMA (3 rows x 4 vectors beat 5 x 2 by a fifth on a 28x28 output,
// out/pattern_conv_bench), then to more rows.
TileShape ChooseTile(int out_h, int out_w, size_t lanes, double* cost) {
  const size_t row_vectors = RoundUp(out_w, lanes) / lanes;
  TileShape best;
  double best_cost = 0.0;
  for (int vectors = 1; vectors <= kMaxTileVectors; ++vectors) {
    for (int rows = 1; rows <= kMaxTileRows[vectors - 1]; ++rows) {
      const double padded = static_cast<double>(RoundUp(out_h, rows)) *
                            RoundUp(row_vectors, vectors);
      const double tile_cost = TileCost(padded, rows, vectors);
      if (best_cost == 0.0 || tile_cost <= best_cost) {
        best_cost = tile_cost;
        best = {rows, vectors};
      }
    }
  }
  *cost = best_cost;
  return best;
}

// The same for the flattened output (RowsLayout::flat) of `vectors_needed`
// vectors: a tile is R * V consecutive vectors, so only the product counts;
// ties go to more vectors per row (fewer, longer runs).
TileShape ChooseFlatTile(size_t vectors_needed, double* cost) {
  TileShape best;
  double best_cost = 0.0;
  for (int vectors = kMaxTileVectors; vectors >= 1; --vectors) {
    for (int rows = 1; rows <= kMaxTileRows[vectors - 1]; ++rows) {
      const double padded = static_cast<double>(RoundUp(vectors_needed, rows * vectors));
      const double tile_cost = TileCost(padded, rows, vectors);
      if (best_cost == 0.0 || tile_cost < best_cost) {
        best_cost = tile_cost;
        best = {rows, vectors};
      }
    }
  }
  *cost = best_cost;
  return best;
}

// Where the padded copy, the channel-major output and the tiles lie.
//
// Row-tiled (the default): an output row is out_w pixels rounded up to whole
// tiles of V vectors; a tile is R such rows. Small maps waste most lanes that
// way (an 8x8 output fills half of each 16-lane vector, a 4x4 one a quarter),
// so at stride 1 a flattened layout is also costed: the padded image rows of
// `pitch` columns are laid end to end, output pixel (oh, ow) is flat position
// oh * pitch + ow, and tap (r, c) of flat position f reads padded position
// f + r * dilation_h * pitch + c * dilation_w, so the kernel runs the whole
// map as one long row cut into tiles of R x V consecutive vectors. The
// (kernel_w - 1) * dilation_w columns between image rows are computed and
// dropped; an 8x8 map takes 5 vectors instead of 8.
struct RowsLayout {
  TileShape tile;
  bool flat = false;
  int plane_h = 0;          // rows of the padded copy
  int phase_w = 0;          // floats per row of the padded copy (per phase)
  size_t plane = 0;         // floats per channel plane of the padded copy
  int64_t row_step = 0;     // input floats between a tile's consecutive rows
  size_t out_stride = 0;    // out_chw floats between a tile's consecutive rows
  size_t out_pitch = 0;     // out_chw floats between output image rows
  size_t out_plane = 0;     // out_chw floats per output channel
  size_t row_tiles = 0;
  int64_t tile_input = 0;   // floats of one channel's input that one tile reads
};

RowsLayout PlanRowsLayout(const ConvGeometry& g, size_t lanes) {
  RowsLayout l;
  double cost = 0.0;
  l.tile = ChooseTile(g.out_h, g.out_w, lanes, &cost);
  const int64_t extra_h = int64_t{g.kernel_h - 1} * g.dilation_h;
  const int64_t extra_w = int64_t{g.kernel_w - 1} * g.dilation_w;
  if (g.stride_h == 1 && g.stride_w == 1) {
    const int64_t pitch = g.out_w + extra_w;
    const size_t vectors = RoundUp(static_cast<size_t>(g.out_h * pitch), lanes) / lanes;
    double flat_cost = 0.0;
    const TileShape flat_tile = ChooseFlatTile(vectors, &flat_cost);
    if (flat_cost < cost) {
      l.flat = true;
      l.tile = flat_tile;
      const size_t tile_floats = flat_tile.rows * flat_tile.vectors * lanes;
      l.row_tiles = RoundUp(vectors * lanes, tile_floats) / tile_floats;
      l.plane_h = static_cast<int>(g.out_h + extra_h);
      l.phase_w = static_cast<int>(pitch);
      l.row_step = static_cast<int64_t>(flat_tile.vectors * lanes);
      l.out_stride = flat_tile.vectors * lanes;
      l.out_pitch = static_cast<size_t>(pitch);
      l.out_plane = PlaneStride(l.row_tiles * tile_floats);
      l.tile_input = static_cast<int64_t>(tile_floats) + extra_h * pitch + extra_w;
      // Tiles past the last image row read up to tile_input floats beyond
      // the last tile's start; the copy is zero there.
      const int64_t reads = static_cast<int64_t>((l.row_tiles - 1) * tile_floats) + l.tile_input;
      l.plane = PlaneStride(std::max<int64_t>(reads, int64_t{l.plane_h} * pitch));
      return l;
    }
  }
  const size_t out_rows = RoundUp(g.out_h, l.tile.rows);
  const size_t tile_columns = l.tile.vectors * lanes;
  const size_t out_cols = RoundUp(g.out_w, tile_columns);
  // Below the PaddedCopyFits bound every size here fits an int; whole tiles
  // add at most 7 rows and 2 vectors of columns to the padded copy.
  l.plane_h = static_cast<int>((out_rows - 1) * g.stride_h + extra_h + 1);
  const int padded_w = static_cast<int>((out_cols - 1) * g.stride_w + extra_w + 1);
  l.phase_w = (padded_w + g.stride_w - 1) / g.stride_w;
  l.plane = PlaneStride(static_cast<size_t>(l.plane_h) * l.phase_w);
  l.row_step = static_cast<int64_t>(g.stride_h) * l.phase_w;
  l.out_stride = out_cols;
  l.out_pitch = out_cols;
  l.out_plane = PlaneStride(out_rows * out_cols);
  l.row_tiles = out_rows / l.tile.rows;
  const int64_t rows_in = int64_t{l.tile.rows - 1} * g.stride_h + extra_h + 1;
  const int64_t columns_in = static_cast<int64_t>(tile_columns) * g.stride_w + extra_w + 1;
  l.tile_input = rows_in * columns_in;
  return l;
}

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

// Offset of every kept tap in the padded copy, relative to the input of
// output row 0, column 0.
void FillTapOffsets(const ConvGeometry& g, const PackedPatternWeights& w, size_t plane,
                    int phase_w, std::vector<int64_t>* taps) {
  taps->resize(w.weights.size());
  std::vector<std::vector<int>> cells_of;
  for (uint32_t mask : w.pattern_masks) cells_of.push_back(MaskCells(mask));
  for (int64_t k = 0; k < w.kept_kernels(); ++k) {
    const std::vector<int>& cells = cells_of[w.pattern[k]];
    for (int e = 0; e < w.entries; ++e) {
      const int r = cells[e] / w.kernel_w, c = cells[e] % w.kernel_w;
      const int x = c * g.dilation_w;
      const int phase = x % g.stride_w, q = x / g.stride_w;
      (*taps)[k * w.entries + e] =
          (static_cast<int64_t>(phase) * g.in_c + w.in_channel[k]) * plane +
          static_cast<int64_t>(r) * g.dilation_h * phase_w + q;
    }
  }
}

// Filters per task at most: a task's filters share the input chunk in L1.
constexpr size_t kMaxTaskFilters = 16;

// Splits the input channels into chunks whose input for one tile fits
// scratch->chunk_bytes, and fills scratch->chunk_kernels (see SimdTask).
// Returns the number of chunks.
int PlanChunks(const ConvGeometry& g, const PackedPatternWeights& w, const RowsLayout& layout,
               PatternConvScratch* scratch) {
  const int64_t channel_bytes = layout.tile_input * static_cast<int64_t>(sizeof(float));
  // Chunks need each filter's kernels in input-channel order, as
  // PackPatternWeights makes them; weights packed otherwise run in one chunk.
  bool sorted = true;
  for (int co = 0; co < w.out_c && sorted; ++co) {
    for (int32_t k = w.kernel_begin[co] + 1; k < w.kernel_begin[co + 1]; ++k) {
      if (w.in_channel[k - 1] > w.in_channel[k]) sorted = false;
    }
  }
  int64_t chunk_channels = g.in_c;
  if (scratch->chunk_bytes > 0 && sorted) {
    chunk_channels = std::max<int64_t>(1, scratch->chunk_bytes / channel_bytes);
  }
  const int chunks = static_cast<int>((g.in_c + chunk_channels - 1) / chunk_channels);
  std::vector<int32_t>& bounds = scratch->chunk_kernels;
  bounds.resize(static_cast<size_t>(w.out_c) * (chunks + 1));
  for (int co = 0; co < w.out_c; ++co) {
    int32_t k = w.kernel_begin[co];
    int32_t* row = bounds.data() + static_cast<size_t>(co) * (chunks + 1);
    for (int chunk = 0; chunk < chunks; ++chunk) {
      row[chunk] = k;
      const int64_t end_channel = (chunk + 1) * chunk_channels;
      while (k < w.kernel_begin[co + 1] && w.in_channel[k] < end_channel) ++k;
    }
    row[chunks] = k;
    assert(k == w.kernel_begin[co + 1]);
  }
  return chunks;
}

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
