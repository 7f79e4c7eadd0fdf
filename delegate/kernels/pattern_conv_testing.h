// PatternConvTester: a fluent description of one pattern-convolution case,
// run on every SIMD target this CPU has and compared with a dense scalar
// convolution. Included by *_test.cc files alone (it uses the test framework).
#ifndef COCOPIE_DELEGATE_KERNELS_PATTERN_CONV_TESTING_H_
#define COCOPIE_DELEGATE_KERNELS_PATTERN_CONV_TESTING_H_

#include <pthreadpool.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "delegate/kernels/conv_testing.h"
#include "delegate/kernels/pattern_conv.h"
#include "gtest/gtest.h"
#include "hwy/targets.h"

namespace cocopie {

// The 8 default 3x3 patterns of the Python package (centre always kept).
inline std::vector<uint32_t> DefaultPatterns() {
  auto bits = [](std::initializer_list<int> cells) {
    uint32_t m = 0;
    for (int c : cells) m |= 1u << c;
    return m;
  };
  return {bits({4, 1, 3, 5}), bits({4, 7, 3, 5}), bits({4, 1, 7, 3}),
          bits({4, 1, 7, 5}), bits({4, 1, 3, 0}), bits({4, 1, 5, 2}),
          bits({4, 7, 3, 6}), bits({4, 7, 5, 8})};
}

// Fluent description of one test case, XNNPACK-tester style.
class PatternConvTester {
 public:
  PatternConvTester& Batch(int n) { g_.batch = n; return *this; }
  PatternConvTester& Input(int h, int w) { g_.in_h = h; g_.in_w = w; return *this; }
  PatternConvTester& Channels(int in, int out) { g_.in_c = in; g_.out_c = out; return *this; }
  PatternConvTester& Stride(int s) { g_.stride_h = g_.stride_w = s; return *this; }
  PatternConvTester& Dilation(int d) { g_.dilation_h = g_.dilation_w = d; return *this; }
  PatternConvTester& Valid() { padding_ = Padding::kValid; return *this; }
  PatternConvTester& Clamp(float lo, float hi) { g_.act_min = lo; g_.act_max = hi; return *this; }
  PatternConvTester& Removed(double rate) { removed_ = rate; return *this; }
  PatternConvTester& Threads(int t) { threads_ = t; return *this; }
  // Every group of kMaxChannelBlock output channels shares one pattern per input
  // channel (the co-design pruning option): the block kernel then runs no
  // zero weight at all.
  PatternConvTester& BlockPatterns() { block_patterns_ = true; return *this; }
  // Block-kernel variants to run besides the default: all of them (the
  // default), or one picked at random (keeps long random sweeps short).
  PatternConvTester& OneBlockVariant() { all_variants_ = false; return *this; }
  // 1x1 kernels: one single-cell "pattern", kernels kept or removed.
  PatternConvTester& Pointwise() { kernel_ = 1; return *this; }

  void Test() { Run(/*allow_empty=*/false); }
  // For random sweeps: an input smaller than a VALID kernel is skipped.
  void TestIfValid() { Run(/*allow_empty=*/true); }

 private:
  void Run(bool allow_empty) {
    ConvGeometry g;
    if (!SizeConvGeometryOrSkip(g_, kernel_, padding_, allow_empty, &g)) return;
    std::mt19937 rng(1234);
    std::uniform_real_distribution<float> value(-1.0f, 1.0f);
    LrLayer layer;
    std::vector<float> filter;
    RandomPrunedFilter(g, &rng, &layer, &filter);
    std::vector<float> bias(g.out_c);
    for (float& b : bias) b = value(rng);
    std::vector<float> input(static_cast<size_t>(g.batch) * g.in_h * g.in_w * g.in_c);
    for (float& x : input) x = value(rng);
    const size_t out_size = static_cast<size_t>(g.batch) * g.out_h * g.out_w * g.out_c;

    const std::vector<float> expected = DenseConv(g, filter, bias, input);
    const PackedPatternWeights packed = PackPatternWeights(layer, filter.data(), bias.data());
    ASSERT_EQ(packed.kept_kernels() * layer.entries_per_pattern,
              static_cast<int64_t>(packed.weights.size()));

    std::vector<float> output(out_size, NAN);
    PatternConvReference(g, packed, input.data(), output.data());
    ExpectNear(expected, output, "reference");

    pthreadpool_t pool = threads_ > 1 ? pthreadpool_create(threads_) : nullptr;
    for (int64_t target : EverySimdTarget()) {
      hwy::SetSupportedTargetsForTest(target);
      PatternConvScratch scratch;
      BlockConvScratch block_scratch;
      const BlockPackedWeights blocks = PackChannelBlocks(packed, PreferredChannelBlock());
      ASSERT_EQ(blocks.kept_taps, packed.kept_kernels() * layer.entries_per_pattern);
      ASSERT_GE(blocks.padded_taps, blocks.kept_taps);
      if (block_patterns_ && g.out_c % blocks.block == 0) {
        ASSERT_EQ(blocks.padded_taps, blocks.kept_taps) << "a shared pattern needs no padding";
      }
      for (int repeat = 0; repeat < 2; ++repeat) {  // scratch reuse
        std::fill(output.begin(), output.end(), NAN);
        PatternConvSimd(g, packed, input.data(), output.data(), &scratch, pool);
        ExpectNear(expected, output, std::string("rows ") + hwy::TargetName(target));
        std::fill(output.begin(), output.end(), NAN);
        ASSERT_TRUE(PatternConvBlock(g, blocks, input.data(), output.data(), &block_scratch, pool));
        ExpectNear(expected, output, std::string("block ") + hwy::TargetName(target));
      }
      // All input channels in one chunk, and one channel per chunk (partial
      // sums through the output tile between every pair of channels).
      for (int chunk_bytes : {0, 1}) {
        PatternConvScratch chunked;
        chunked.chunk_bytes = chunk_bytes;
        std::fill(output.begin(), output.end(), NAN);
        PatternConvSimd(g, packed, input.data(), output.data(), &chunked, pool);
        ExpectNear(expected, output, std::string("rows, chunk_bytes ") +
                                         std::to_string(chunk_bytes) + " " +
                                         hwy::TargetName(target));
      }
      TestBlockVariants(g, packed, input, expected, pool, &rng, &block_scratch,
                        hwy::TargetName(target), all_variants_);
    }
    hwy::SetSupportedTargetsForTest(0);
    if (pool != nullptr) pthreadpool_destroy(pool);
  }

  // A random OHWI filter pruned to the tester's patterns and removal rate,
  // and the LR layer describing it.
  void RandomPrunedFilter(const ConvGeometry& g, std::mt19937* rng, LrLayer* layer,
                          std::vector<float>* filter) const {
    const int cells = kernel_ * kernel_;
    const std::vector<uint32_t> patterns =
        kernel_ == 1 ? std::vector<uint32_t>{1u} : DefaultPatterns();
    const int num_patterns = static_cast<int>(patterns.size());
    std::uniform_real_distribution<float> value(-1.0f, 1.0f);
    std::uniform_real_distribution<double> coin(0.0, 1.0);
    layer->out_channels = g.out_c;
    layer->in_channels = g.in_c;
    layer->kernel_h = layer->kernel_w = kernel_;
    layer->entries_per_pattern = kernel_ == 1 ? 1 : 4;
    layer->pattern_masks = patterns;
    filter->assign(static_cast<size_t>(g.out_c) * cells * g.in_c, 0.0f);
    for (int co = 0; co < g.out_c; ++co) {
      for (int ci = 0; ci < g.in_c; ++ci) {
        uint8_t id = coin(*rng) < removed_ ? kRemovedKernel : (*rng)() % num_patterns;
        if (block_patterns_) {
          // Same pattern and same removal for a whole channel block.
          std::mt19937 shared(ci * 7919 + co / kMaxChannelBlock);
          id = std::uniform_real_distribution<double>(0, 1)(shared) < removed_
                   ? kRemovedKernel : shared() % num_patterns;
        }
        layer->kernel_pattern.push_back(id);
        if (id == kRemovedKernel) continue;
        for (int cell = 0; cell < cells; ++cell) {
          if (layer->pattern_masks[id] & (1u << cell)) {
            (*filter)[(static_cast<size_t>(co) * cells + cell) * g.in_c + ci] = value(*rng);
          }
        }
      }
    }
  }

  // Every compiled (channel block, tile) variant of the block kernel, each
  // with random run-time tunables; one scratch for all of them, so that a
  // change of params must re-plan. With `all`, every variant runs on `pool`,
  // the loop orders alternating; otherwise one random variant runs on the
  // caller (long random sweeps: pool hand-offs would dominate their time).
  static void TestBlockVariants(const ConvGeometry& g, const PackedPatternWeights& packed,
                                const std::vector<float>& input,
                                const std::vector<float>& expected, pthreadpool_t pool,
                                std::mt19937* rng, BlockConvScratch* scratch,
                                const std::string& target, bool all) {
    const std::vector<int> blocks = BlockKernelChannelBlocks();
    ASSERT_FALSE(blocks.empty());
    ASSERT_EQ(blocks.front(), PreferredChannelBlock());
    std::vector<float> output(expected.size());
    const int chunk_choices[] = {0, kMinChunkBytes, 4096, 24 * 1024};
    size_t count = 0;
    for (int block : blocks) count += BlockKernelTilePixels(block).size();
    const size_t only = all ? count : (*rng)() % count;  // `count`: all
    size_t variant = 0;
    for (int block : blocks) {
      BlockPackedWeights w;  // packed when one of its variants runs
      const std::vector<int> tiles = BlockKernelTilePixels(block);
      ASSERT_FALSE(tiles.empty());
      for (int tile : tiles) {
        if (only != count && variant != only) {
          ++variant;
          continue;
        }
        if (w.block_begin.empty()) w = PackChannelBlocks(packed, block);
        BlockKernelParams params;
        params.tile_pixels = tile;
        params.tiles_per_task = 1 + static_cast<int>((*rng)() % 7);
        params.chunk_bytes = chunk_choices[(*rng)() % 4];
        params.loop_order = (all ? variant % 2 : (*rng)() % 2) ? BlockLoopOrder::kPixelsOuter
                                                               : BlockLoopOrder::kBlocksOuter;
        ASSERT_EQ(CheckBlockKernelParams(block, params), "");
        scratch->params = params;
        std::fill(output.begin(), output.end(), NAN);
        ++variant;
        ASSERT_TRUE(PatternConvBlock(g, w, input.data(), output.data(), scratch,
                                     all ? pool : nullptr));
        ExpectNear(expected, output,
                   "block " + target + " " + std::to_string(tile) + "x" +
                       std::to_string(block) + " tiles/task " +
                       std::to_string(params.tiles_per_task) + " chunk " +
                       std::to_string(params.chunk_bytes) + " order " +
                       std::to_string(static_cast<int>(params.loop_order)));
        if (::testing::Test::HasFatalFailure()) return;
      }
    }
    scratch->params = BlockKernelParams();
  }

  // Direct convolution over all 9 cells: the definition, not a kernel.
  static std::vector<float> DenseConv(const ConvGeometry& g,
                                      const std::vector<float>& filter,
                                      const std::vector<float>& bias,
                                      const std::vector<float>& input) {
    std::vector<float> out(static_cast<size_t>(g.batch) * g.out_h * g.out_w * g.out_c);
    for (int n = 0; n < g.batch; ++n)
      for (int oh = 0; oh < g.out_h; ++oh)
        for (int ow = 0; ow < g.out_w; ++ow)
          for (int co = 0; co < g.out_c; ++co) {
            double acc = bias[co];
            for (int r = 0; r < g.kernel_h; ++r)
              for (int c = 0; c < g.kernel_w; ++c) {
                const int ih = oh * g.stride_h - g.pad_top + r * g.dilation_h;
                const int iw = ow * g.stride_w - g.pad_left + c * g.dilation_w;
                if (ih < 0 || ih >= g.in_h || iw < 0 || iw >= g.in_w) continue;
                for (int ci = 0; ci < g.in_c; ++ci) {
                  acc += static_cast<double>(
                             filter[((co * g.kernel_h + r) * g.kernel_w + c) * g.in_c + ci]) *
                         input[((static_cast<size_t>(n) * g.in_h + ih) * g.in_w + iw) * g.in_c + ci];
                }
              }
            const float v = static_cast<float>(acc);
            out[((static_cast<size_t>(n) * g.out_h + oh) * g.out_w + ow) * g.out_c + co] =
                std::min(std::max(v, g.act_min), g.act_max);
          }
    return out;
  }

  static void ExpectNear(const std::vector<float>& expected,
                         const std::vector<float>& actual, const std::string& who) {
    for (size_t i = 0; i < expected.size(); ++i) {
      const float tolerance = 1e-5f * (1.0f + std::fabs(expected[i])) * 10;
      ASSERT_NEAR(expected[i], actual[i], tolerance) << who << " at " << i;
    }
  }

  ConvGeometry g_;
  Padding padding_ = Padding::kSame;
  double removed_ = 0.0;
  int threads_ = 1;
  bool block_patterns_ = false;
  bool all_variants_ = true;
  int kernel_ = 3;
};

}  // namespace cocopie

#endif  // COCOPIE_DELEGATE_KERNELS_PATTERN_CONV_TESTING_H_
