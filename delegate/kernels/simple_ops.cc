#include "delegate/kernels/simple_ops.h"

#include <pthreadpool.h>

#include <algorithm>
#include <cassert>
#include <cstring>

namespace cocopie {
namespace {

// Elements per task: large enough that scheduling costs nothing, small
// enough that two threads share a 100 KB tensor.
constexpr int64_t kAddChunk = 4096;

struct AddTask {
  const float* a;
  const float* b;
  float* out;
  int64_t count;
  float lo, hi;
};

void AddChunk(void* context, size_t chunk) {
  const auto* t = static_cast<const AddTask*>(context);
  const int64_t begin = static_cast<int64_t>(chunk) * kAddChunk;
  const int64_t end = std::min(t->count, begin + kAddChunk);
  for (int64_t i = begin; i < end; ++i) {
    // Plain loop: the compiler vectorizes it, and it is bound by memory.
    t->out[i] = std::min(std::max(t->a[i] + t->b[i], t->lo), t->hi);
  }
}

// The context of a task over output rows of one input and one output.
template <typename Geometry>
struct RowsTask {
  const Geometry* g;
  const float* input;
  float* output;
};
using PoolTask = RowsTask<PoolGeometry>;
using PadTask = RowsTask<PadGeometry>;

// One output row (image n, row y) of the max pool.
void MaxPoolRow(void* context, size_t row) {
  const auto* t = static_cast<const PoolTask*>(context);
  const PoolGeometry& g = *t->g;
  const int n = static_cast<int>(row) / g.out_h;
  const int y = static_cast<int>(row) % g.out_h;
  const int c_count = g.channels;
  const int y0 = y * g.stride_h - g.pad_top;
  const int r_begin = std::max(0, -y0), r_end = std::min(g.filter_h, g.in_h - y0);
  const float* image = t->input + static_cast<int64_t>(n) * g.in_h * g.in_w * c_count;
  float* out_row = t->output + (static_cast<int64_t>(n) * g.out_h + y) * g.out_w * c_count;
  for (int x = 0; x < g.out_w; ++x) {
    const int x0 = x * g.stride_w - g.pad_left;
    const int s_begin = std::max(0, -x0), s_end = std::min(g.filter_w, g.in_w - x0);
    float* out = out_row + static_cast<int64_t>(x) * c_count;
    // ComputePoolGeometry guarantees every window holds a real cell.
    assert(r_begin < r_end && s_begin < s_end);
    std::memcpy(out, image + (static_cast<int64_t>(y0 + r_begin) * g.in_w + x0 + s_begin) * c_count,
                sizeof(float) * c_count);
    for (int r = r_begin; r < r_end; ++r) {
      for (int s = s_begin; s < s_end; ++s) {
        const float* in = image + (static_cast<int64_t>(y0 + r) * g.in_w + x0 + s) * c_count;
        for (int c = 0; c < c_count; ++c) out[c] = std::max(out[c], in[c]);
      }
    }
    for (int c = 0; c < c_count; ++c) {
      out[c] = std::min(std::max(out[c], g.act_min), g.act_max);
    }
  }
}

// One output row (image n, row y) of the padded tensor.
void PadRow(void* context, size_t row) {
  const auto* t = static_cast<const PadTask*>(context);
  const PadGeometry& g = *t->g;
  const int out_h = g.in_h + g.top + g.bottom, out_w = g.in_w + g.left + g.right;
  const int n = static_cast<int>(row) / out_h;
  const int y = static_cast<int>(row) % out_h;
  const int64_t c = g.channels;
  float* out = t->output + (static_cast<int64_t>(n) * out_h + y) * out_w * c;
  const int in_y = y - g.top;
  if (in_y < 0 || in_y >= g.in_h) {
    std::memset(out, 0, sizeof(float) * out_w * c);
    return;
  }
  std::memset(out, 0, sizeof(float) * g.left * c);
  std::memcpy(out + g.left * c,
              t->input + (static_cast<int64_t>(n) * g.in_h + in_y) * g.in_w * c,
              sizeof(float) * g.in_w * c);
  std::memset(out + (g.left + g.in_w) * c, 0, sizeof(float) * g.right * c);
}

void Run(pthreadpool_t pool, void (*fn)(void*, size_t), void* context, size_t range,
         bool release_workers) {
  if (pool == nullptr) {
    for (size_t i = 0; i < range; ++i) fn(context, i);
  } else {
    pthreadpool_parallelize_1d(pool, fn, context, range,
                               release_workers ? PTHREADPOOL_FLAG_YIELD_WORKERS : 0);
  }
}

}  // namespace

void AddF32(const float* a, const float* b, float* out, int64_t count, float lo,
            float hi, pthreadpool_t pool, bool release_workers) {
  assert(count >= 0);
  AddTask task{a, b, out, count, lo, hi};
  Run(pool, AddChunk, &task, static_cast<size_t>((count + kAddChunk - 1) / kAddChunk),
      release_workers);
}

bool ComputePoolGeometry(bool same_padding, PoolGeometry* g) {
  if (g->in_h <= 0 || g->in_w <= 0 || g->channels <= 0 || g->batch <= 0 ||
      g->filter_h <= 0 || g->filter_w <= 0 || g->stride_h <= 0 || g->stride_w <= 0) {
    return false;
  }
  if (same_padding) {
    // 64-bit: the file may hold any int stride or filter size.
    const int64_t out_h = (int64_t{g->in_h} + g->stride_h - 1) / g->stride_h;
    const int64_t out_w = (int64_t{g->in_w} + g->stride_w - 1) / g->stride_w;
    g->out_h = static_cast<int>(out_h);  // at most in_h, in_w
    g->out_w = static_cast<int>(out_w);
    g->pad_top = static_cast<int>(
        std::max<int64_t>(0, (out_h - 1) * g->stride_h + g->filter_h - g->in_h) / 2);
    g->pad_left = static_cast<int>(
        std::max<int64_t>(0, (out_w - 1) * g->stride_w + g->filter_w - g->in_w) / 2);
  } else {
    g->out_h = g->in_h >= g->filter_h ? (g->in_h - g->filter_h) / g->stride_h + 1 : 0;
    g->out_w = g->in_w >= g->filter_w ? (g->in_w - g->filter_w) / g->stride_w + 1 : 0;
    g->pad_top = g->pad_left = 0;
  }
  // A window made only of padding would have no maximum; TFLite's rules never
  // produce one, but a hostile filter size could.
  if (g->out_h <= 0 || g->out_w <= 0 || g->pad_top >= g->filter_h ||
      g->pad_left >= g->filter_w) {
    return false;
  }
  const int last_y = (g->out_h - 1) * g->stride_h - g->pad_top;
  const int last_x = (g->out_w - 1) * g->stride_w - g->pad_left;
  return last_y < g->in_h && last_x < g->in_w;
}

void MaxPoolF32(const PoolGeometry& g, const float* input, float* output,
                pthreadpool_t pool, bool release_workers) {
  PoolTask task{&g, input, output};
  Run(pool, MaxPoolRow, &task, static_cast<size_t>(g.batch) * g.out_h, release_workers);
}

void PadF32(const PadGeometry& g, const float* input, float* output,
            pthreadpool_t pool, bool release_workers) {
  assert(g.top >= 0 && g.bottom >= 0 && g.left >= 0 && g.right >= 0);
  PadTask task{&g, input, output};
  Run(pool, PadRow, &task, static_cast<size_t>(g.batch) * (g.in_h + g.top + g.bottom),
      release_workers);
}

}  // namespace cocopie
