// Extreme geometries a file may ask for: strides and dilations up to the
// int range. The geometry is computed without overflow (UBSan checks), and
// the kernels either give the reference's answer without a padded copy far
// larger than the image, or refuse.
#include <climits>
#include <random>
#include <string>
#include <vector>

#include "delegate/kernels/pattern_conv.h"
#include "gtest/gtest.h"

namespace cocopie {
namespace {

ConvGeometry Geometry(int in_h, int in_w, int in_c, int out_c, int stride, int dilation) {
  ConvGeometry g;
  g.in_h = in_h;
  g.in_w = in_w;
  g.in_c = in_c;
  g.out_c = out_c;
  g.kernel_h = g.kernel_w = 3;
  g.stride_h = g.stride_w = stride;
  g.dilation_h = g.dilation_w = dilation;
  return g;
}

// Every kernel of a 3x3 layer keeps the same 4 cells, random weights.
PackedPatternWeights RandomWeights(int out_c, int in_c, std::mt19937* rng) {
  LrLayer layer;
  layer.out_channels = out_c;
  layer.in_channels = in_c;
  layer.kernel_h = layer.kernel_w = 3;
  layer.entries_per_pattern = 4;
  layer.pattern_masks = {(1u << 1) | (1u << 3) | (1u << 4) | (1u << 5)};
  layer.kernel_pattern.assign(static_cast<size_t>(out_c) * in_c, 0);
  std::uniform_real_distribution<float> value(-1.0f, 1.0f);
  std::vector<float> filter(static_cast<size_t>(out_c) * 9 * in_c);
  for (float& v : filter) v = value(*rng);
  std::vector<float> bias(out_c);
  for (float& v : bias) v = value(*rng);
  return PackPatternWeights(layer, filter.data(), bias.data());
}

TEST(ConvGeometryHostile, KernelExtentBeyondIntIsRefused) {
  std::string error;
  ConvGeometry g = Geometry(8, 8, 1, 1, 1, 1 << 30);  // extent 2^31 + 1
  EXPECT_FALSE(ComputeConvGeometry(Padding::kSame, &g, &error));
  EXPECT_NE(error.find("too large"), std::string::npos) << error;
  g = Geometry(8, 8, 1, 1, 1, INT_MAX);
  EXPECT_FALSE(ComputeConvGeometry(Padding::kValid, &g, &error));
}

TEST(ConvGeometryHostile, StrideNearIntMaxGivesOnePixel) {
  std::string error;
  ConvGeometry g = Geometry(8, 9, 1, 1, INT_MAX, 1);
  ASSERT_TRUE(ComputeConvGeometry(Padding::kSame, &g, &error)) << error;
  EXPECT_EQ(g.out_h, 1);
  EXPECT_EQ(g.out_w, 1);
  EXPECT_EQ(g.pad_top, 0);
  ASSERT_TRUE(ComputeConvGeometry(Padding::kValid, &g, &error)) << error;
  EXPECT_EQ(g.out_h, 1);
}

TEST(ConvGeometryHostile, LargeDilationPadsLikeTflite) {
  std::string error;
  ConvGeometry g = Geometry(8, 8, 1, 1, 1, 1 << 29);  // extent 2^30 + 1
  ASSERT_TRUE(ComputeConvGeometry(Padding::kSame, &g, &error)) << error;
  EXPECT_EQ(g.out_h, 8);
  EXPECT_EQ(g.pad_top, ((1 << 30) + 1 + 7 - 8) / 2);
  EXPECT_EQ(PaddedCopyFloats(g), int64_t{(1 << 30) + 8} * ((1 << 30) + 8));
  EXPECT_FALSE(PaddedCopyFits(g));
}

// A 3x3 kernel of dilation 1024 on an 8x8 image: only the centre tap reaches
// the image, and the bordered copy would be 4 million floats per channel.
TEST(PatternConvHostile, HugeDilationRunsWithoutAPaddedCopy) {
  std::mt19937 rng(11);
  for (int dilation : {1024, 1 << 20}) {
    ConvGeometry g = Geometry(8, 8, 2, 5, 1, dilation);
    g.batch = 2;
    std::string error;
    ASSERT_TRUE(ComputeConvGeometry(Padding::kSame, &g, &error)) << error;
    const PackedPatternWeights w = RandomWeights(5, 2, &rng);
    std::vector<float> input(2 * 8 * 8 * 2);
    for (float& v : input) v = std::uniform_real_distribution<float>(-1, 1)(rng);
    std::vector<float> expected(2 * 8 * 8 * 5), actual(expected.size(), -7.0f);
    PatternConvReference(g, w, input.data(), expected.data());
    // Only the centre cell (pattern cell 4, index 2 of the kept cells)
    // reaches the image: bias + centre weight x pixel.
    for (int co = 0; co < 5; ++co) {
      float centre = w.bias[co];
      for (int k = w.kernel_begin[co]; k < w.kernel_begin[co + 1]; ++k) {
        centre += w.weights[static_cast<size_t>(k) * 4 + 2] * input[w.in_channel[k]];
      }
      EXPECT_FLOAT_EQ(expected[co], centre) << "dilation " << dilation;
    }
    PatternConvScratch scratch;
    PatternConvSimd(g, w, input.data(), actual.data(), &scratch, nullptr);
    EXPECT_EQ(actual, expected) << "dilation " << dilation;
    EXPECT_LE(scratch.input_phases.capacity(), size_t{1} << 21);

    BlockConvScratch block_scratch;
    const BlockPackedWeights blocks = PackChannelBlocks(w, PreferredChannelBlock());
    std::vector<float> untouched(expected.size(), -7.0f);
    EXPECT_FALSE(PatternConvBlock(g, blocks, input.data(), untouched.data(),
                                  &block_scratch, nullptr));
    EXPECT_EQ(block_scratch.padded_input.capacity(), 0u);
    EXPECT_EQ(untouched[0], -7.0f);
  }
}

// A moderate dilation still runs the SIMD kernels, with the same answer.
TEST(PatternConvHostile, ModerateDilationKeepsTheSimdKernels) {
  std::mt19937 rng(12);
  ConvGeometry g = Geometry(64, 64, 2, 4, 1, 300);
  std::string error;
  ASSERT_TRUE(ComputeConvGeometry(Padding::kSame, &g, &error)) << error;
  ASSERT_TRUE(PaddedCopyFits(g));
  const PackedPatternWeights w = RandomWeights(4, 2, &rng);
  std::vector<float> input(64 * 64 * 2);
  for (float& v : input) v = std::uniform_real_distribution<float>(-1, 1)(rng);
  std::vector<float> expected(64 * 64 * 4), actual(expected.size());
  PatternConvReference(g, w, input.data(), expected.data());
  PatternConvScratch scratch;
  PatternConvSimd(g, w, input.data(), actual.data(), &scratch, nullptr);
  EXPECT_GT(scratch.input_phases.size(), 0u);  // the SIMD path ran
  for (size_t i = 0; i < expected.size(); ++i) {
    ASSERT_NEAR(actual[i], expected[i], 1e-5f) << i;
  }
}

}  // namespace
}  // namespace cocopie
