// Every pattern-convolution kernel against a dense scalar convolution, for
// shapes like those of real CNN layers and every SIMD target this CPU runs.
#include "delegate/pattern_conv.h"

#include <pthreadpool.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "hwy/targets.h"

namespace cocopie {
namespace {

// The 8 default 3x3 patterns of the Python package (centre always kept).
std::vector<uint32_t> DefaultPatterns() {
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

  void Test() {
    ConvGeometry g = g_;
    g.kernel_h = g.kernel_w = 3;
    std::string error;
    ASSERT_TRUE(ComputeConvGeometry(padding_, &g, &error)) << error;

    std::mt19937 rng(1234);
    std::uniform_real_distribution<float> value(-1.0f, 1.0f);
    std::uniform_real_distribution<double> coin(0.0, 1.0);
    LrLayer layer;
    layer.out_channels = g.out_c;
    layer.in_channels = g.in_c;
    layer.kernel_h = layer.kernel_w = 3;
    layer.entries_per_pattern = 4;
    layer.pattern_masks = DefaultPatterns();
    std::vector<float> filter(static_cast<size_t>(g.out_c) * 9 * g.in_c, 0.0f);
    for (int co = 0; co < g.out_c; ++co) {
      for (int ci = 0; ci < g.in_c; ++ci) {
        const bool removed = coin(rng) < removed_;
        const uint8_t id = removed ? kRemovedKernel : rng() % 8;
        layer.kernel_pattern.push_back(id);
        if (removed) continue;
        for (int cell = 0; cell < 9; ++cell) {
          if (layer.pattern_masks[id] & (1u << cell)) {
            filter[(static_cast<size_t>(co) * 9 + cell) * g.in_c + ci] = value(rng);
          }
        }
      }
    }
    std::vector<float> bias(g.out_c);
    for (float& b : bias) b = value(rng);
    std::vector<float> input(static_cast<size_t>(g.batch) * g.in_h * g.in_w * g.in_c);
    for (float& x : input) x = value(rng);
    const size_t out_size = static_cast<size_t>(g.batch) * g.out_h * g.out_w * g.out_c;

    const std::vector<float> expected = DenseConv(g, filter, bias, input);
    const PackedPatternWeights packed = PackPatternWeights(layer, filter.data(), bias.data());
    ASSERT_EQ(packed.kept_kernels() * 4, static_cast<int64_t>(packed.weights.size()));

    std::vector<float> output(out_size, NAN);
    PatternConvReference(g, packed, input.data(), output.data());
    ExpectNear(expected, output, "reference");

    pthreadpool_t pool = threads_ > 1 ? pthreadpool_create(threads_) : nullptr;
    for (int64_t target : hwy::SupportedAndGeneratedTargets()) {
      hwy::SetSupportedTargetsForTest(target);
      PatternConvScratch scratch;
      for (int repeat = 0; repeat < 2; ++repeat) {  // scratch reuse
        std::fill(output.begin(), output.end(), NAN);
        PatternConvSimd(g, packed, input.data(), output.data(), &scratch, pool);
        ExpectNear(expected, output, hwy::TargetName(target));
      }
    }
    hwy::SetSupportedTargetsForTest(0);
    if (pool != nullptr) pthreadpool_destroy(pool);
  }

 private:
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
            for (int r = 0; r < 3; ++r)
              for (int c = 0; c < 3; ++c) {
                const int ih = oh * g.stride_h - g.pad_top + r * g.dilation_h;
                const int iw = ow * g.stride_w - g.pad_left + c * g.dilation_w;
                if (ih < 0 || ih >= g.in_h || iw < 0 || iw >= g.in_w) continue;
                for (int ci = 0; ci < g.in_c; ++ci) {
                  acc += static_cast<double>(filter[((co * 3 + r) * 3 + c) * g.in_c + ci]) *
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
};

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
TEST(PatternConv, SinglePixel) {
  PatternConvTester().Input(1, 1).Channels(1, 1).Test();
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
