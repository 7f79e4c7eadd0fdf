#include "delegate/kernels/sparse_fc.h"

#include <pthreadpool.h>

#include <algorithm>
#include <cassert>

namespace cocopie {
namespace {

// The union of the kept columns of rows [first, first + rows).
std::vector<int32_t> GroupColumns(int out, int in, const std::vector<uint8_t>& kept, int first,
                                  int rows) {
  std::vector<int32_t> columns;
  for (int i = 0; i < in; ++i) {
    for (int o = first; o < std::min(out, first + rows); ++o) {
      if (kept[static_cast<size_t>(o) * in + i]) {
        columns.push_back(i);
        break;
      }
    }
  }
  return columns;
}

// Bytes the packing with groups of `rows` streams per image: a column index
// and `rows` weights (padded with zeros) per kept column of each group.
size_t PackedBytes(int out, int in, const std::vector<uint8_t>& kept, int rows) {
  size_t bytes = 0;
  for (int first = 0; first < out; first += rows) {
    bytes += GroupColumns(out, in, kept, first, rows).size() *
             (sizeof(int32_t) + rows * sizeof(float));
  }
  return bytes;
}

// Columns taken together, each into its own accumulators: one chain of
// multiply-adds would wait on the add latency at every column.
constexpr int kColumnsAtOnce = 4;

// Groups of R rows: R accumulators per chain, each column's weights one
// R-wide load (the compiler vectorizes the fixed-size inner loops).
template <int R>
void RunGroups(const PackedSparseFc& w, const float* input, int batch, float* output,
               size_t first, size_t count) {
  constexpr int U = kColumnsAtOnce;
  for (size_t g = first; g < first + count; ++g) {
    const int64_t begin = w.group_start[g], end = w.group_start[g + 1];
    const int row0 = static_cast<int>(g) * R;
    const int rows = std::min(R, w.out - row0);
    for (int b = 0; b < batch; ++b) {
      const float* x = input + static_cast<size_t>(b) * w.in;
      float acc[U][R] = {};
      const float* panel = w.panel.data() + begin * R;
      const int32_t* column = w.columns.data() + begin;
      int64_t k = begin;
      for (; k + U <= end; k += U, panel += U * R, column += U) {
        for (int u = 0; u < U; ++u) {
          const float v = x[column[u]];
          for (int r = 0; r < R; ++r) acc[u][r] += panel[u * R + r] * v;
        }
      }
      for (; k < end; ++k, panel += R, ++column) {
        const float v = x[*column];
        for (int r = 0; r < R; ++r) acc[0][r] += panel[r] * v;
      }
      float* y = output + static_cast<size_t>(b) * w.out + row0;
      for (int r = 0; r < rows; ++r) {
        float sum = w.bias[row0 + r];
        for (int u = 0; u < U; ++u) sum += acc[u][r];
        y[r] = std::min(std::max(sum, w.act_min), w.act_max);
      }
    }
  }
}

struct FcTask {
  const PackedSparseFc* w;
  const float* input;
  int batch;
  float* output;
};

void RunTile(void* context, size_t first, size_t count) {
  const FcTask& t = *static_cast<const FcTask*>(context);
  switch (t.w->rows_per_group) {
    case 8: return RunGroups<8>(*t.w, t.input, t.batch, t.output, first, count);
    case 4: return RunGroups<4>(*t.w, t.input, t.batch, t.output, first, count);
    default: return RunGroups<1>(*t.w, t.input, t.batch, t.output, first, count);
  }
}

}  // namespace

PackedSparseFc PackSparseFc(int out, int in, const float* weights,
                            const std::vector<uint8_t>& kept, const float* bias,
                            float act_min, float act_max) {
  assert(out > 0 && in > 0 && kept.size() == static_cast<size_t>(out) * in);
  PackedSparseFc w;
  w.out = out;
  w.in = in;
  w.act_min = act_min;
  w.act_max = act_max;
  // The fewest bytes to stream; a wider group on a tie (fewer index loads).
  w.rows_per_group = 8;
  size_t best = PackedBytes(out, in, kept, 8);
  for (int rows : {4, 1}) {
    const size_t bytes = PackedBytes(out, in, kept, rows);
    if (bytes < best) best = bytes, w.rows_per_group = rows;
  }
  const int rows = w.rows_per_group;
  w.group_start.assign(1, 0);
  for (int first = 0; first < out; first += rows) {
    for (int32_t i : GroupColumns(out, in, kept, first, rows)) {
      w.columns.push_back(i);
      for (int r = 0; r < rows; ++r) {
        const int o = first + r;
        w.panel.push_back(o < out ? weights[static_cast<size_t>(o) * in + i] : 0.0f);
      }
    }
    w.group_start.push_back(static_cast<int64_t>(w.columns.size()));
  }
  w.bias.assign(out, 0.0f);
  if (bias != nullptr) std::copy(bias, bias + out, w.bias.begin());
  return w;
}

void SparseFullyConnected(const PackedSparseFc& w, const float* input, int batch, float* output,
                          pthreadpool_t pool) {
  FcTask task{&w, input, batch, output};
  const size_t groups = w.group_start.size() - 1;
  // Tasks of about 64 KiB of panel each: few enough to keep the pool's
  // overhead small, many enough to balance two to eight threads.
  const size_t per_group = std::max<size_t>(
      1, w.panel.size() * sizeof(float) / std::max<size_t>(1, groups));
  const size_t tile = std::max<size_t>(1, (64 << 10) / per_group);
  if (pool == nullptr) {
    RunTile(&task, 0, groups);
    return;
  }
  pthreadpool_parallelize_1d_tile_1d(pool, RunTile, &task, groups, tile, /*flags=*/0);
}

}  // namespace cocopie
