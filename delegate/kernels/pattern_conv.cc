#include "delegate/kernels/pattern_conv.h"

#include <algorithm>
#include <cassert>
#include <limits>

namespace cocopie {

namespace {

// Output size along one axis by TFLite's rules; 0 when empty.
int64_t OutputSize(Padding padding, int64_t in, int64_t stride, int64_t extent) {
  if (padding == Padding::kSame) return (in + stride - 1) / stride;
  return in >= extent ? (in - extent) / stride + 1 : 0;
}

}  // namespace

bool ComputeConvGeometry(Padding padding, ConvGeometry* g, std::string* error) {
  constexpr int64_t kIntMax = std::numeric_limits<int>::max();
  if (g->batch < 0 || g->in_h < 1 || g->in_w < 1 || g->stride_h < 1 ||
      g->stride_w < 1 || g->dilation_h < 1 || g->dilation_w < 1 || g->kernel_h < 1 ||
      g->kernel_w < 1) {
    *error = "input " + std::to_string(g->in_h) + "x" + std::to_string(g->in_w) +
             " or the kernel's parameters are not positive";
    return false;
  }
  // Every product below stays far inside int64: each factor is below 2^31.
  const int64_t eff_h = int64_t{g->kernel_h - 1} * g->dilation_h + 1;
  const int64_t eff_w = int64_t{g->kernel_w - 1} * g->dilation_w + 1;
  const int64_t out_h = OutputSize(padding, g->in_h, g->stride_h, eff_h);
  const int64_t out_w = OutputSize(padding, g->in_w, g->stride_w, eff_w);
  if (out_h <= 0 || out_w <= 0) {
    *error = "input " + std::to_string(g->in_h) + "x" + std::to_string(g->in_w) +
             " is smaller than the kernel's extent";
    return false;
  }
  // SAME pads the total evenly, the odd pixel going to the bottom/right.
  const int64_t pad_h = std::max<int64_t>((out_h - 1) * g->stride_h + eff_h - g->in_h, 0);
  const int64_t pad_w = std::max<int64_t>((out_w - 1) * g->stride_w + eff_w - g->in_w, 0);
  if (eff_h > kIntMax || eff_w > kIntMax || g->in_h + pad_h > kIntMax ||
      g->in_w + pad_w > kIntMax || out_h * out_w > kIntMax) {
    *error = "kernel extent " + std::to_string(eff_h) + "x" + std::to_string(eff_w) +
             " on input " + std::to_string(g->in_h) + "x" + std::to_string(g->in_w) +
             " is too large";
    return false;
  }
  g->out_h = static_cast<int>(out_h);
  g->out_w = static_cast<int>(out_w);
  g->pad_top = padding == Padding::kSame ? static_cast<int>(pad_h / 2) : 0;
  g->pad_left = padding == Padding::kSame ? static_cast<int>(pad_w / 2) : 0;
  return true;
}

int64_t PaddedCopyFloats(const ConvGeometry& g) {
  if (g.out_h < 1 || g.out_w < 1 || g.stride_w < 1) return 0;
  const int64_t padded_h =
      int64_t{g.out_h - 1} * g.stride_h + int64_t{g.kernel_h - 1} * g.dilation_h + 1;
  const int64_t padded_w =
      int64_t{g.out_w - 1} * g.stride_w + int64_t{g.kernel_w - 1} * g.dilation_w + 1;
  // The SIMD kernel splits columns by stride phase, rounding each phase up.
  const int64_t columns = (padded_w + g.stride_w - 1) / g.stride_w * g.stride_w;
  return padded_h * columns * g.in_c;
}

bool PaddedCopyFits(const ConvGeometry& g) {
  // A bordered copy is a little larger than its image; a few times larger,
  // or a few MiB for a small image, is a border no real layer has.
  constexpr int64_t kSlackFloats = int64_t{1} << 20;
  const int64_t image = int64_t{g.in_h} * g.in_w * g.in_c;
  const int64_t padded = PaddedCopyFloats(g);
  return padded > 0 && padded <= 4 * image + kSlackFloats;
}

std::vector<int> MaskCells(uint32_t mask) {
  std::vector<int> cells;
  for (int cell = 0; cell < 32; ++cell) {
    if (mask & (1u << cell)) cells.push_back(cell);
  }
  return cells;
}

PackedPatternWeights PackPatternWeights(const LrLayer& layer,
                                        const float* filter_ohwi,
                                        const float* bias) {
  PackedPatternWeights w;
  w.out_c = layer.out_channels;
  w.in_c = layer.in_channels;
  w.kernel_h = layer.kernel_h;
  w.kernel_w = layer.kernel_w;
  w.entries = layer.entries_per_pattern;
  w.pattern_masks = layer.pattern_masks;
  w.bias.assign(w.out_c, 0.0f);
  if (bias != nullptr) w.bias.assign(bias, bias + w.out_c);

  std::vector<std::vector<int>> cells_of;
  for (uint32_t mask : layer.pattern_masks) cells_of.push_back(MaskCells(mask));

  const int cells = w.kernel_h * w.kernel_w;
  w.kernel_begin.reserve(w.out_c + 1);
  for (int co = 0; co < w.out_c; ++co) {
    w.kernel_begin.push_back(static_cast<int32_t>(w.in_channel.size()));
    for (int ci = 0; ci < w.in_c; ++ci) {
      const uint8_t id = layer.PatternOf(co, ci);
      if (id == kRemovedKernel) continue;
      w.in_channel.push_back(ci);
      w.pattern.push_back(id);
      for (int cell : cells_of[id]) {
        // OHWI: [co][r][c][ci], cell = r * kernel_w + c.
        const size_t index =
            (static_cast<size_t>(co) * cells + cell) * w.in_c + ci;
        w.weights.push_back(filter_ohwi[index]);
      }
    }
  }
  w.kernel_begin.push_back(static_cast<int32_t>(w.in_channel.size()));
  w.filter_order.resize(w.out_c);
  for (int co = 0; co < w.out_c; ++co) w.filter_order[co] = co;
  std::stable_sort(w.filter_order.begin(), w.filter_order.end(), [&w](int32_t a, int32_t b) {
    return w.kernel_begin[a + 1] - w.kernel_begin[a] > w.kernel_begin[b + 1] - w.kernel_begin[b];
  });
  return w;
}

void PatternConvReference(const ConvGeometry& g, const PackedPatternWeights& w,
                          const float* input, float* output) {
  assert(g.in_c == w.in_c && g.out_c == w.out_c);
  std::vector<std::vector<int>> cells_of;
  for (uint32_t mask : w.pattern_masks) cells_of.push_back(MaskCells(mask));
  for (int n = 0; n < g.batch; ++n) {
    const float* in_image = input + static_cast<size_t>(n) * g.in_h * g.in_w * g.in_c;
    for (int oh = 0; oh < g.out_h; ++oh) {
      for (int ow = 0; ow < g.out_w; ++ow) {
        float* out = output +
                     ((static_cast<size_t>(n) * g.out_h + oh) * g.out_w + ow) * g.out_c;
        for (int co = 0; co < g.out_c; ++co) {
          float acc = w.bias[co];
          for (int k = w.kernel_begin[co]; k < w.kernel_begin[co + 1]; ++k) {
            const std::vector<int>& cells = cells_of[w.pattern[k]];
            for (int e = 0; e < w.entries; ++e) {
              const int r = cells[e] / w.kernel_w, c = cells[e] % w.kernel_w;
              // 64-bit: with a large dilation, r * dilation_h alone may not
              // fit an int.
              const int64_t ih = int64_t{oh} * g.stride_h - g.pad_top +
                                 int64_t{r} * g.dilation_h;
              const int64_t iw = int64_t{ow} * g.stride_w - g.pad_left +
                                 int64_t{c} * g.dilation_w;
              if (ih < 0 || ih >= g.in_h || iw < 0 || iw >= g.in_w) continue;
              acc += w.weights[static_cast<size_t>(k) * w.entries + e] *
                     in_image[(ih * g.in_w + iw) * g.in_c + w.in_channel[k]];
            }
          }
          out[co] = std::min(std::max(acc, g.act_min), g.act_max);
        }
      }
    }
  }
}

}  // namespace cocopie

namespace cocopie {

BlockPackedWeights PackChannelBlocks(const PackedPatternWeights& exact, int block_size) {
  assert(block_size > 0 && block_size <= kMaxChannelBlock);
  const int kChannelBlock = block_size;
  BlockPackedWeights b;
  b.block = block_size;
  b.out_c = exact.out_c;
  b.in_c = exact.in_c;
  b.kernel_h = exact.kernel_h;
  b.kernel_w = exact.kernel_w;
  b.blocks = (exact.out_c + kChannelBlock - 1) / kChannelBlock;
  b.bias.assign(static_cast<size_t>(b.blocks) * kChannelBlock, 0.0f);
  std::copy(exact.bias.begin(), exact.bias.end(), b.bias.begin());
  std::vector<std::vector<int>> cells_of;
  for (uint32_t mask : exact.pattern_masks) cells_of.push_back(MaskCells(mask));

  const int cells = exact.kernel_h * exact.kernel_w;
  // Scratch: for the current block, [in channel][cell] -> weights of 16 lanes.
  std::vector<float> grid(static_cast<size_t>(exact.in_c) * cells * kChannelBlock);
  std::vector<uint8_t> used(static_cast<size_t>(exact.in_c) * cells);
  b.block_begin.push_back(0);
  for (int block = 0; block < b.blocks; ++block) {
    std::fill(grid.begin(), grid.end(), 0.0f);
    std::fill(used.begin(), used.end(), 0);
    const int co_end = std::min(exact.out_c, (block + 1) * kChannelBlock);
    for (int co = block * kChannelBlock; co < co_end; ++co) {
      const int lane = co - block * kChannelBlock;
      for (int k = exact.kernel_begin[co]; k < exact.kernel_begin[co + 1]; ++k) {
        const int ci = exact.in_channel[k];
        const std::vector<int>& kept = cells_of[exact.pattern[k]];
        for (int e = 0; e < exact.entries; ++e) {
          const size_t slot = static_cast<size_t>(ci) * cells + kept[e];
          used[slot] = 1;
          grid[slot * kChannelBlock + lane] =
              exact.weights[static_cast<size_t>(k) * exact.entries + e];
        }
        b.kept_taps += exact.entries;
      }
    }
    // Taps in input-channel order, cells in row-major order: the kernel then
    // walks each input pixel's channels forward, which the prefetcher likes.
    for (int ci = 0; ci < exact.in_c; ++ci) {
      for (int cell = 0; cell < cells; ++cell) {
        const size_t slot = static_cast<size_t>(ci) * cells + cell;
        if (!used[slot]) continue;
        b.tap_in_channel.push_back(ci);
        b.tap_cell.push_back(static_cast<uint8_t>(cell));
        b.weights.insert(b.weights.end(), grid.begin() + slot * kChannelBlock,
                         grid.begin() + (slot + 1) * kChannelBlock);
      }
    }
    b.block_begin.push_back(static_cast<int32_t>(b.tap_in_channel.size()));
  }
  b.padded_taps = static_cast<int64_t>(b.tap_in_channel.size()) * kChannelBlock;
  return b;
}

}  // namespace cocopie
