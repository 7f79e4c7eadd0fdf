// The rows kernel's layout planning (rows_layout.h).
#include "delegate/kernels/rows_layout.h"

#include <algorithm>
#include <cassert>
#include <cstdint>
#include <vector>

namespace cocopie {
namespace {

size_t RoundUp(size_t value, size_t multiple) {
  return (value + multiple - 1) / multiple * multiple;
}

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

}  // namespace

size_t PlaneStride(size_t floats) {
  constexpr size_t kLineFloats = 16;
  const size_t lines = RoundUp(floats, kLineFloats) / kLineFloats;
  return (lines | 1) * kLineFloats;
}

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

}  // namespace cocopie
