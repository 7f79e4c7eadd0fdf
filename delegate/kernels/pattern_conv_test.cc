// Every pattern-convolution kernel against a dense scalar convolution, for
// shapes like those of real CNN layers and every SIMD target this CPU runs.
#include "delegate/kernels/pattern_conv.h"

#include <pthreadpool.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "delegate/kernels/conv_testing.h"
#include "delegate/kernels/pattern_conv_testing.h"
#include "delegate/lr/lr_format.h"
#include "gtest/gtest.h"
#include "hwy/targets.h"

namespace cocopie {
namespace {

// One input and one output channel, a k×k filter with no kept kernel,
// packed in channel blocks of `block`, on a same-padded k×k input: the
// smallest layer a refusal test can hand the block kernel.
struct OneChannelCase {
  BlockPackedWeights weights;
  ConvGeometry g;
  bool geometry_ok = false;
};
OneChannelCase OneChannelBlockCase(int k, int block) {
  PackedPatternWeights exact;
  exact.out_c = exact.in_c = 1;
  exact.kernel_h = exact.kernel_w = k;
  exact.entries = k == 3 ? 4 : 1;
  exact.kernel_begin = {0, 0};
  exact.bias = {0.0f};
  OneChannelCase c;
  c.weights = PackChannelBlocks(exact, block);
  c.g.in_h = c.g.in_w = k;
  c.g.in_c = c.g.out_c = 1;
  c.g.kernel_h = c.g.kernel_w = k;
  std::string error;
  c.geometry_ok = ComputeConvGeometry(Padding::kSame, &c.g, &error);
  return c;
}

TEST(PatternConv, SameStride1) {
  PatternConvTester().Input(9, 11).Channels(3, 5).Test();
}
TEST(PatternConv, ValidStride1OddChannels) {
  PatternConvTester().Input(10, 7).Channels(7, 3).Valid().Test();
}
TEST(PatternConv, SameStride2) {
  PatternConvTester().Input(13, 12).Channels(4, 6).Stride(2).Test();
}
TEST(PatternConv, ValidStride2) {
  PatternConvTester().Input(14, 15).Channels(5, 5).Stride(2).Valid().Test();
}
TEST(PatternConv, Dilation2) {
  PatternConvTester().Input(12, 12).Channels(3, 4).Dilation(2).Test();
}
TEST(PatternConv, BatchAndRelu6) {
  PatternConvTester().Batch(3).Input(8, 8).Channels(6, 7).Clamp(0.0f, 6.0f).Test();
}
TEST(PatternConv, WideRowsUseFullVectors) {
  // 56 columns: several full vector tiles plus a tail on every target.
  PatternConvTester().Input(6, 56).Channels(8, 16).Test();
}
TEST(PatternConv, ConnectivityPrunedAndThreaded) {
  PatternConvTester().Input(14, 14).Channels(16, 24).Removed(0.5).Threads(2).Test();
}
TEST(PatternConv, AllKernelsRemovedGivesBias) {
  PatternConvTester().Input(5, 5).Channels(2, 3).Removed(1.0).Test();
}
TEST(PatternConv, BlockSharedPatterns) {
  PatternConvTester().Input(9, 10).Channels(5, 64).BlockPatterns().Removed(0.3).Test();
}
// 64 output channels whose patterns (and removals) are shared by groups of
// `group`, packed as the delegate packs them.
BlockPackedWeights PackedInGroups(int group) {
  std::mt19937 rng(group);
  LrLayer layer;
  layer.out_channels = 64;
  layer.in_channels = 12;
  layer.kernel_h = layer.kernel_w = 3;
  layer.entries_per_pattern = 4;
  layer.out_group = group;
  layer.pattern_masks = {0x1B, 0xD8, 0x3A, 0xB8};
  for (int i = 0; i < 64 / group * layer.in_channels; ++i) {
    layer.kernel_pattern.push_back(rng() % 3 == 0 ? kRemovedKernel : rng() % 4);
  }
  const std::vector<float> filter(static_cast<size_t>(64) * 9 * layer.in_channels, 0.5f);
  return PackLeastPaddedBlocks(PackPatternWeights(layer, filter.data(), nullptr));
}

TEST(PatternConv, WeightsPackAtTheBlockTheirGroupsFit) {
  for (int64_t target : EverySimdTarget()) {
    hwy::SetSupportedTargetsForTest(target);
    const std::vector<int> blocks = BlockKernelChannelBlocks();  // preferred first
    const int smallest = *std::min_element(blocks.begin(), blocks.end());
    // Groups of the preferred block: it stays (ties go to the wider tiles).
    const BlockPackedWeights preferred = PackedInGroups(blocks.front());
    EXPECT_EQ(preferred.block, blocks.front()) << hwy::TargetName(target);
    EXPECT_EQ(preferred.padded_taps, preferred.kept_taps) << hwy::TargetName(target);
    // Groups of a smaller compiled block run exact at that block, instead of
    // merging two groups' patterns.
    const BlockPackedWeights small = PackedInGroups(smallest);
    EXPECT_EQ(small.block, smallest) << hwy::TargetName(target);
    EXPECT_EQ(small.padded_taps, small.kept_taps) << hwy::TargetName(target);
  }
  hwy::SetSupportedTargetsForTest(0);
}

TEST(PatternConv, BlockPackedForAnotherTargetIsRefused) {
  // No target compiles a 24-channel block (blocks are 8, 16 or 32).
  const int other = 24;
  for (int block : BlockKernelChannelBlocks()) ASSERT_NE(block, other);
  const OneChannelCase c = OneChannelBlockCase(3, other);
  ASSERT_TRUE(c.geometry_ok);
  std::vector<float> in(9, 1.0f), out(9, -1.0f);
  BlockConvScratch scratch;
  EXPECT_FALSE(PatternConvBlock(c.g, c.weights, in.data(), out.data(), &scratch, nullptr));
  EXPECT_EQ(out[0], -1.0f);  // untouched
}
TEST(PatternConv, BlockParamsOutOfRangeAreRefused) {
  const int block = PreferredChannelBlock();
  BlockKernelParams params;
  EXPECT_EQ(CheckBlockKernelParams(block, params), "");
  params.tile_pixels = 1000;
  EXPECT_NE(CheckBlockKernelParams(block, params), "");
  params = BlockKernelParams();
  params.tiles_per_task = 0;
  EXPECT_NE(CheckBlockKernelParams(block, params), "");
  params.tiles_per_task = kMaxTilesPerTask + 1;
  EXPECT_NE(CheckBlockKernelParams(block, params), "");
  params = BlockKernelParams();
  params.chunk_bytes = kMinChunkBytes - 1;
  EXPECT_NE(CheckBlockKernelParams(block, params), "");
  params = BlockKernelParams();
  params.loop_order = static_cast<BlockLoopOrder>(7);
  EXPECT_NE(CheckBlockKernelParams(block, params), "");
  // A refused plan computes nothing.
  const OneChannelCase c = OneChannelBlockCase(1, block);
  ASSERT_TRUE(c.geometry_ok);
  float in = 1.0f, out = -1.0f;
  BlockConvScratch scratch;
  scratch.params.tiles_per_task = 0;
  EXPECT_FALSE(PatternConvBlock(c.g, c.weights, &in, &out, &scratch, nullptr));
  EXPECT_EQ(out, -1.0f);
}
TEST(PatternConv, BlockSharedPatternsStride2Valid) {
  PatternConvTester().Batch(2).Input(12, 11).Channels(7, 32).Stride(2).Valid()
      .BlockPatterns().Test();
}
TEST(PatternConv, ChannelTailAndFewPixels) {
  // 21 outputs: one full block and a 5-channel tail; 3 pixels < one tile.
  PatternConvTester().Input(1, 3).Channels(2, 21).Test();
}
TEST(PatternConv, ManyInputChannelsAccumulateAcrossChunks) {
  // Enough input channels that the block kernel splits them into several
  // L1-sized chunks on every SIMD target; an all-removed chunk included.
  PatternConvTester().Input(5, 30).Channels(300, 20).BlockPatterns().Removed(0.3)
      .Clamp(0.0f, 6.0f).Test();
  PatternConvTester().Input(7, 29).Channels(260, 16).Stride(2).Threads(2).Test();
}
TEST(PatternConv, ConnectivityPrunedPointwise) {
  PatternConvTester().Pointwise().Input(7, 9).Channels(70, 40).Removed(0.72).Test();
  PatternConvTester().Pointwise().Input(6, 6).Channels(64, 64).BlockPatterns().Removed(0.72)
      .Stride(2).Test();
}
// Output sizes from 1x1 to 20x40, so that the free-pattern kernel runs every
// tile shape it picks (1..8 rows of one vector, 1..6 rows of two) with
// partial row and column tiles, at stride 1 and 2, on every target; at
// stride 1 the small maps run flattened (rows end to end), the wide ones in
// row tiles.
TEST(PatternConv, EveryTileShapeAndTail) {
  for (int h = 1; h <= 20; ++h) {
    for (int w : {1, 3, 7, 8, 9, 15, 16, 17, 24, 31, 33, 40}) {
      for (int stride : {1, 2}) {
        PatternConvTester().Input(h * stride, w * stride).Channels(3, 5).Stride(stride)
            .Removed(0.3).OneBlockVariant().Test();
        if (HasFatalFailure()) {
          ADD_FAILURE() << "output " << h << "x" << w << " stride " << stride;
          return;
        }
      }
    }
  }
}
// Small maps at stride 1 run flattened: the taps of one tile then cross from
// one image row into the next through the zero columns between them, and the
// last tile reads past the last row; with dilation, VALID padding and enough
// input channels for several chunks.
TEST(PatternConv, FlattenedSmallMaps) {
  PatternConvTester().Input(8, 8).Channels(300, 9).Removed(0.5).Test();
  PatternConvTester().Input(4, 4).Channels(70, 17).Test();
  PatternConvTester().Input(9, 7).Channels(20, 6).Dilation(2).Test();
  PatternConvTester().Input(7, 7).Channels(33, 4).Valid().Dilation(2).Threads(2).Test();
  PatternConvTester().Batch(2).Input(5, 3).Channels(6, 6).Valid().Test();
}
TEST(PatternConv, FilterOrderPutsTheLongestFiltersFirst) {
  LrLayer layer;
  layer.out_channels = 4;
  layer.in_channels = 3;
  layer.kernel_h = layer.kernel_w = 3;
  layer.entries_per_pattern = 4;
  layer.pattern_masks = DefaultPatterns();
  // Kept kernels per filter: 1, 3, 0, 3.
  const uint8_t x = kRemovedKernel;
  layer.kernel_pattern = {0, x, x, /**/ 1, 2, 3, /**/ x, x, x, /**/ 4, 5, 6};
  const std::vector<float> filter(4 * 9 * 3, 1.0f);
  const PackedPatternWeights packed = PackPatternWeights(layer, filter.data(), nullptr);
  EXPECT_EQ(packed.filter_order, (std::vector<int32_t>{1, 3, 0, 2}));
}
TEST(PatternConv, SinglePixel) {
  PatternConvTester().Input(1, 1).Channels(1, 1).Test();
}

// PatternConvSimd plans tap offsets and chunks once per geometry and packing;
// one scratch fed other weights, another input size or another chunk budget
// must plan again, never run a stale plan.
TEST(PatternConv, OneScratchReplansForNewWeightsGeometryAndChunks) {
  std::mt19937 rng(11);
  std::uniform_real_distribution<float> value(-1.0f, 1.0f);
  // `ids`: the kernels' pattern ids (random when empty).
  auto random_layer = [&](int in_c, int out_c, std::vector<uint8_t> ids,
                          std::vector<float>* filter) {
    LrLayer layer;
    layer.out_channels = out_c;
    layer.in_channels = in_c;
    layer.kernel_h = layer.kernel_w = 3;
    layer.entries_per_pattern = 4;
    layer.pattern_masks = DefaultPatterns();
    filter->assign(static_cast<size_t>(out_c) * 9 * in_c, 0.0f);
    for (int co = 0; co < out_c; ++co) {
      for (int ci = 0; ci < in_c; ++ci) {
        const size_t k = static_cast<size_t>(co) * in_c + ci;
        if (ids.size() <= k) ids.push_back(rng() % 3 == 0 ? kRemovedKernel : rng() % 8);
        const uint8_t id = ids[k];
        layer.kernel_pattern.push_back(id);
        if (id == kRemovedKernel) continue;
        for (int cell = 0; cell < 9; ++cell) {
          if (layer.pattern_masks[id] & (1u << cell)) {
            (*filter)[(static_cast<size_t>(co) * 9 + cell) * in_c + ci] = value(rng);
          }
        }
      }
    }
    return layer;
  };
  std::vector<float> filter_a, filter_b;
  const LrLayer layer_a = random_layer(20, 7, {}, &filter_a);
  // Same sizes everywhere (kept kernels per filter too), other kernels kept.
  std::vector<uint8_t> reversed = layer_a.kernel_pattern;
  for (int co = 0; co < 7; ++co) {
    std::reverse(reversed.begin() + co * 20, reversed.begin() + (co + 1) * 20);
  }
  const LrLayer layer_b = random_layer(20, 7, reversed, &filter_b);
  const PackedPatternWeights a = PackPatternWeights(layer_a, filter_a.data(), nullptr);
  const PackedPatternWeights b = PackPatternWeights(layer_b, filter_b.data(), nullptr);
  PatternConvScratch scratch;
  struct Step {
    const PackedPatternWeights* w;
    int size;
    int chunk_bytes;
  };
  const Step steps[] = {{&a, 9, 32 * 1024}, {&b, 9, 32 * 1024}, {&a, 9, 32 * 1024},
                        {&a, 14, 32 * 1024}, {&a, 14, 1}, {&b, 5, 1}, {&a, 9, 0}};
  for (const Step& step : steps) {
    ConvGeometry base;
    base.in_h = base.in_w = step.size;
    base.in_c = 20;
    base.out_c = 7;
    ConvGeometry g;
    ASSERT_TRUE(SizeConvGeometryOrSkip(base, 3, Padding::kSame, false, &g));
    std::vector<float> input(static_cast<size_t>(g.in_h) * g.in_w * g.in_c);
    for (float& x : input) x = value(rng);
    const size_t out_size = static_cast<size_t>(g.out_h) * g.out_w * g.out_c;
    std::vector<float> expected(out_size), actual(out_size, NAN);
    PatternConvReference(g, *step.w, input.data(), expected.data());
    scratch.chunk_bytes = step.chunk_bytes;
    PatternConvSimd(g, *step.w, input.data(), actual.data(), &scratch, nullptr);
    for (size_t i = 0; i < out_size; ++i) {
      ASSERT_NEAR(expected[i], actual[i], 1e-4f * (1.0f + std::fabs(expected[i])))
          << "output " << i << " of step with " << (step.w == &a ? "a" : "b") << ", size "
          << step.size << ", chunk_bytes " << step.chunk_bytes;
    }
  }
}

// Thousands of random configurations: every stride/padding/activation
// combination, dilation, odd and tiny sizes, empty filters, batch > 1, both
// pattern regimes, threads.
TEST(PatternConv, RandomConfigurations) {
  std::mt19937 rng(7);
  auto pick = [&](int lo, int hi) { return lo + static_cast<int>(rng() % (hi - lo + 1)); };
  const float clamps[3][2] = {{-3.4e38f, 3.4e38f}, {0.0f, 3.4e38f}, {0.0f, 6.0f}};
  for (int i = 0; i < 1500; ++i) {
    PatternConvTester t;
    const int stride = pick(1, 2), dilation = pick(1, 4) == 4 ? 2 : 1;
    t.Batch(pick(1, 4) == 4 ? 2 : 1)
        .Input(pick(1, 9), pick(1, 13))
        .Channels(pick(1, 40), pick(1, 40))
        .Stride(stride)
        .Dilation(dilation)
        .Removed(pick(0, 4) == 0 ? 1.0 : 0.1 * pick(0, 8))
        .Threads(pick(1, 2));
    const int act = pick(0, 2);
    t.Clamp(clamps[act][0], clamps[act][1]);
    if (pick(0, 1)) t.Valid();
    if (pick(0, 1)) t.BlockPatterns();
    if (pick(0, 5) == 0) t.Pointwise();
    if (i % 4 != 0) t.OneBlockVariant();
    t.TestIfValid();
    if (HasFatalFailure()) {
      ADD_FAILURE() << "random configuration " << i;
      return;
    }
  }
}

TEST(ConvGeometry, MatchesTfliteRules) {
  ConvGeometry g;
  g.in_h = 7; g.in_w = 8; g.kernel_h = g.kernel_w = 3; g.stride_h = g.stride_w = 2;
  std::string error;
  ASSERT_TRUE(ComputeConvGeometry(Padding::kSame, &g, &error));
  EXPECT_EQ(g.out_h, 4); EXPECT_EQ(g.out_w, 4);
  EXPECT_EQ(g.pad_top, 1); EXPECT_EQ(g.pad_left, 0);  // extra pad goes last
  ASSERT_TRUE(ComputeConvGeometry(Padding::kValid, &g, &error));
  EXPECT_EQ(g.out_h, 3); EXPECT_EQ(g.out_w, 3);
  g.in_h = 2;
  EXPECT_FALSE(ComputeConvGeometry(Padding::kValid, &g, &error));
  EXPECT_FALSE(error.empty());
}

TEST(PatternConv, ReportsADispatchTarget) {
  EXPECT_STRNE(PatternConvSimdTarget(), "");
}

}  // namespace
}  // namespace cocopie
