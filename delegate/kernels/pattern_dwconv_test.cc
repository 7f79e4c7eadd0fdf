// The depthwise kernels (scalar reference and the SIMD kernel on every target
// this build compiled and this CPU runs) against a dense depthwise
// convolution over thousands of random configurations.
#include "delegate/kernels/pattern_dwconv.h"

#include <pthreadpool.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "delegate/kernels/conv_testing.h"
#include "gtest/gtest.h"
#include "hwy/targets.h"

namespace cocopie {
namespace {

// Every mask of `cells` bits with exactly `entries` set, in increasing order.
std::vector<uint32_t> AllMasks(int cells, int entries) {
  std::vector<uint32_t> masks;
  for (uint32_t m = 0; m < (1u << cells); ++m) {
    if (__builtin_popcount(m) == entries) masks.push_back(m);
  }
  return masks;
}

// Fluent description of one case; Test() checks every kernel.
class DepthwiseTester {
 public:
  DepthwiseTester& Batch(int n) { g_.batch = n; return *this; }
  DepthwiseTester& Input(int h, int w) { g_.in_h = h; g_.in_w = w; return *this; }
  DepthwiseTester& Channels(int c) { g_.in_c = g_.out_c = c; return *this; }
  DepthwiseTester& Kernel(int k) { kernel_ = k; return *this; }
  DepthwiseTester& Stride(int s) { g_.stride_h = g_.stride_w = s; return *this; }
  DepthwiseTester& Strides(int sh, int sw) { g_.stride_h = sh; g_.stride_w = sw; return *this; }
  DepthwiseTester& Valid() { padding_ = Padding::kValid; return *this; }
  DepthwiseTester& Clamp(float lo, float hi) { g_.act_min = lo; g_.act_max = hi; return *this; }
  DepthwiseTester& Removed(double rate) { removed_ = rate; return *this; }
  // 2 or more: run on a 2-thread pool.
  DepthwiseTester& Threads(int t) { threads_ = t; return *this; }
  DepthwiseTester& Entries(int e) { entries_ = e; return *this; }
  // Consecutive channels share one pattern (and removal) in groups of `n`.
  DepthwiseTester& SharedGroups(int n) { group_ = n; return *this; }
  // The pattern table is every mask with `entries` cells, used in turn.
  DepthwiseTester& EveryPattern() { every_pattern_ = true; return *this; }
  // After the first geometry, the same packed weights and scratch run this
  // input size and batch too (a runtime input resize).
  DepthwiseTester& ResizeTo(int n, int h, int w) { resize_ = {n, h, w}; return *this; }
  DepthwiseTester& Seed(unsigned seed) { seed_ = seed; return *this; }

  void Test() { Run(false); }
  void TestIfValid() { Run(true); }

 private:
  // An LR layer of `channels` depthwise kernels (no ids yet) with the
  // tester's pool: every mask of `entries` cells, or 1 to 8 random ones.
  LrLayer RandomPool(int channels, std::mt19937* rng) const {
    const int cells = kernel_ * kernel_;
    const int entries = std::min(entries_, cells);
    LrLayer layer;
    layer.out_channels = channels;
    layer.in_channels = 1;
    layer.kernel_h = layer.kernel_w = kernel_;
    layer.entries_per_pattern = entries;
    if (every_pattern_) {
      layer.pattern_masks = AllMasks(cells, entries);
      return layer;
    }
    // Repeated masks are harmless.
    std::vector<int> order(cells);
    for (int i = 0; i < cells; ++i) order[i] = i;
    for (size_t count = 1 + (*rng)() % 8; count > 0; --count) {
      std::shuffle(order.begin(), order.end(), *rng);
      uint32_t mask = 0;
      for (int i = 0; i < entries; ++i) mask |= 1u << order[i];
      layer.pattern_masks.push_back(mask);
    }
    return layer;
  }

  // Gives `layer` its pattern ids (one per group of channels, some removed)
  // and `filter` random kept weights; returns the kept cells.
  int64_t RandomFilter(LrLayer* layer, std::mt19937* rng, std::vector<float>* filter) const {
    const int cells = kernel_ * kernel_, channels = layer->out_channels;
    const int num_patterns = static_cast<int>(layer->pattern_masks.size());
    std::uniform_real_distribution<float> value(-1.0f, 1.0f);
    std::uniform_real_distribution<double> coin(0.0, 1.0);
    filter->assign(static_cast<size_t>(cells) * channels, 0.0f);
    uint8_t id = 0;
    int64_t kept_cells = 0;
    for (int c = 0; c < channels; ++c) {
      if (c % group_ == 0) {
        id = every_pattern_ ? static_cast<uint8_t>((c / group_) % num_patterns)
                            : static_cast<uint8_t>((*rng)() % num_patterns);
        if (coin(*rng) < removed_) id = kRemovedKernel;
      }
      layer->kernel_pattern.push_back(id);
      if (id == kRemovedKernel) continue;
      for (int cell = 0; cell < cells; ++cell) {
        if (layer->pattern_masks[id] & (1u << cell)) {
          (*filter)[static_cast<size_t>(cell) * channels + c] = value(*rng);
          ++kept_cells;
        }
      }
    }
    return kept_cells;
  }

  void Run(bool allow_empty) {
    ConvGeometry g;
    if (!SizeConvGeometryOrSkip(g_, kernel_, padding_, allow_empty, &g)) return;
    const int channels = g.in_c;
    std::mt19937 rng(seed_);
    std::uniform_real_distribution<float> value(-1.0f, 1.0f);
    LrLayer layer = RandomPool(channels, &rng);
    std::vector<float> filter;
    const int64_t kept_cells = RandomFilter(&layer, &rng, &filter);
    std::vector<float> bias(channels);
    for (float& b : bias) b = value(rng);

    const PackedDepthwiseWeights packed = PackDepthwiseWeights(layer, filter.data(), bias.data());
    ASSERT_EQ(packed.kept_taps(), kept_cells);
    ASSERT_GE(packed.padded_taps(), packed.kept_taps());
    if (group_ % kDepthwiseChannelBlock == 0 && channels % kDepthwiseChannelBlock == 0) {
      ASSERT_EQ(packed.padded_taps(), packed.kept_taps()) << "shared patterns need no zeros";
    }

    std::vector<ConvGeometry> shapes = {g};
    if (resize_[0] > 0) {
      ConvGeometry base = g_, resized;
      base.batch = resize_[0];
      base.in_h = resize_[1];
      base.in_w = resize_[2];
      if (SizeConvGeometryOrSkip(base, kernel_, padding_, /*allow_empty=*/true, &resized)) {
        shapes.push_back(resized);
      }
    }
    pthreadpool_t pool = threads_ > 1 ? SharedPool() : nullptr;
    std::vector<DepthwiseConvScratch> scratch(1);
    std::vector<int64_t> targets = EverySimdTarget();
    for (const ConvGeometry& shape : shapes) {
      std::vector<float> input(static_cast<size_t>(shape.batch) * shape.in_h * shape.in_w *
                               channels);
      for (float& x : input) x = value(rng);
      const std::vector<float> expected = DenseDepthwise(shape, filter, bias, input);
      // A guard zone after the output catches writes past its end.
      std::vector<float> output(expected.size() + kGuard);
      Fill(&output, expected.size());
      DepthwiseConvReference(shape, packed, input.data(), output.data());
      ExpectNear(expected, output, "reference");
      for (int64_t target : targets) {
        hwy::SetSupportedTargetsForTest(target);
        const std::string name = DepthwiseConvKernelName();
#if HWY_ARCH_X86
        // The forced target really runs (on Arm, SVE targets run NEON code).
        ASSERT_NE(name.find(hwy::TargetName(target)), std::string::npos) << name;
#endif
        for (int repeat = 0; repeat < 2; ++repeat) {
          Fill(&output, expected.size());
          DepthwiseConvSimd(shape, packed, input.data(), output.data(), &scratch[0],
                            repeat == 0 ? pool : nullptr, repeat == 0);
          ExpectNear(expected, output, name);
          if (::testing::Test::HasFatalFailure()) break;
        }
      }
      hwy::SetSupportedTargetsForTest(0);
      if (::testing::Test::HasFatalFailure()) break;
    }
  }

  // One 2-thread pool for every case: creating threads per case, thousands
  // of times, would dominate the test's time on a busy machine.
  static pthreadpool_t SharedPool() {
    static pthreadpool_t pool = pthreadpool_create(2);
    return pool;
  }

  static constexpr size_t kGuard = 64;
  static constexpr float kUnwritten = -12345.0f;

  static void Fill(std::vector<float>* output, size_t size) {
    std::fill(output->begin(), output->begin() + size, NAN);
    std::fill(output->begin() + size, output->end(), kUnwritten);
  }

  // Every cell of every channel's kernel, double accumulation: the
  // definition, not a kernel.
  static std::vector<float> DenseDepthwise(const ConvGeometry& g,
                                           const std::vector<float>& filter,
                                           const std::vector<float>& bias,
                                           const std::vector<float>& input) {
    const int channels = g.in_c;
    std::vector<float> out(static_cast<size_t>(g.batch) * g.out_h * g.out_w * channels);
    for (int n = 0; n < g.batch; ++n)
      for (int oh = 0; oh < g.out_h; ++oh)
        for (int ow = 0; ow < g.out_w; ++ow)
          for (int c = 0; c < channels; ++c) {
            double acc = bias[c];
            for (int r = 0; r < g.kernel_h; ++r)
              for (int k = 0; k < g.kernel_w; ++k) {
                const int ih = oh * g.stride_h - g.pad_top + r;
                const int iw = ow * g.stride_w - g.pad_left + k;
                if (ih < 0 || ih >= g.in_h || iw < 0 || iw >= g.in_w) continue;
                acc += static_cast<double>(
                           filter[static_cast<size_t>(r * g.kernel_w + k) * channels + c]) *
                       input[((static_cast<size_t>(n) * g.in_h + ih) * g.in_w + iw) * channels + c];
              }
            const float v = static_cast<float>(acc);
            out[((static_cast<size_t>(n) * g.out_h + oh) * g.out_w + ow) * channels + c] =
                std::min(std::max(v, g.act_min), g.act_max);
          }
    return out;
  }

  // 1e-5 relative (absolute below 1); and nothing written past the output.
  static void ExpectNear(const std::vector<float>& expected,
                         const std::vector<float>& actual, const std::string& who) {
    for (size_t i = 0; i < expected.size(); ++i) {
      const float tolerance = 1e-5f * std::max(1.0f, std::fabs(expected[i]));
      ASSERT_NEAR(expected[i], actual[i], tolerance) << who << " at " << i;
    }
    for (size_t i = expected.size(); i < actual.size(); ++i) {
      ASSERT_EQ(actual[i], kUnwritten) << who << " wrote past the output end";
    }
  }

  ConvGeometry g_;
  Padding padding_ = Padding::kSame;
  int kernel_ = 3;
  int entries_ = 4;
  int group_ = 1;
  double removed_ = 0.0;
  int threads_ = 1;
  bool every_pattern_ = false;
  std::array<int, 3> resize_ = {0, 0, 0};
  unsigned seed_ = 1234;
};

TEST(PatternDwconv, SameStride1) {
  DepthwiseTester().Input(9, 11).Channels(16).Test();
}
TEST(PatternDwconv, ValidStride2OddChannels) {
  DepthwiseTester().Input(12, 13).Channels(19).Stride(2).Valid().Test();
}
TEST(PatternDwconv, SameStride2Relu6Batch) {
  DepthwiseTester().Batch(3).Input(14, 15).Channels(33).Stride(2).Clamp(0.0f, 6.0f).Test();
}
TEST(PatternDwconv, SharedGroupsMultiplyNoZero) {
  DepthwiseTester().Input(10, 21).Channels(64).SharedGroups(16).Removed(0.25).Test();
  DepthwiseTester().Input(7, 9).Channels(96).SharedGroups(32).Stride(2).Test();
}
TEST(PatternDwconv, EveryPatternOfEverySize) {
  // Each channel its own pattern: all C(9, k) masks for k = 1..8 in turn.
  for (int entries = 1; entries <= 8; ++entries) {
    const int masks = static_cast<int>(AllMasks(9, entries).size());
    DepthwiseTester().Input(6, 7).Channels(masks).Entries(entries).EveryPattern()
        .Stride(1 + entries % 2).Test();
    if (HasFatalFailure()) return;
  }
}
TEST(PatternDwconv, AllKernelsRemovedGivesBias) {
  DepthwiseTester().Input(5, 6).Channels(21).Removed(1.0).Clamp(0.0f, 3.4e38f).Test();
}
TEST(PatternDwconv, TinyImagesAndOneChannel) {
  DepthwiseTester().Input(1, 1).Channels(1).Test();
  DepthwiseTester().Input(1, 2).Channels(3).Stride(2).Test();
  DepthwiseTester().Input(2, 1).Channels(17).Test();
  DepthwiseTester().Input(3, 3).Channels(5).Valid().Test();
}
TEST(PatternDwconv, LargerKernelUsesTheGenericLoop) {
  // 5x5 kernels keeping 12 cells: more taps than the specialized sweeps.
  DepthwiseTester().Input(11, 12).Channels(20).Kernel(5).Entries(12).Test();
  DepthwiseTester().Input(9, 14).Channels(32).Kernel(5).Entries(12).SharedGroups(16)
      .Stride(2).Valid().Test();
}
TEST(PatternDwconv, MobileNetShapesThreaded) {
  DepthwiseTester().Input(112, 112).Channels(96).Stride(2).SharedGroups(16)
      .Clamp(0.0f, 6.0f).Threads(2).Test();
  DepthwiseTester().Input(56, 56).Channels(144).Clamp(0.0f, 6.0f).Threads(2).Test();
}
TEST(PatternDwconv, ResizeReusesWeightsAndScratch) {
  DepthwiseTester().Input(6, 6).Channels(24).ResizeTo(2, 17, 23).Test();
  DepthwiseTester().Input(20, 31).Channels(7).Stride(2).ResizeTo(3, 3, 4).Test();
}

// Thousands of random configurations: every stride/padding/activation
// combination, odd and tiny sizes, every pattern size, empty kernels, batch
// > 1, shared and free patterns, resizes, threads.
TEST(PatternDwconv, RandomConfigurations) {
  std::mt19937 rng(99);
  auto pick = [&](int lo, int hi) { return lo + static_cast<int>(rng() % (hi - lo + 1)); };
  const float clamps[3][2] = {{-3.4e38f, 3.4e38f}, {0.0f, 3.4e38f}, {0.0f, 6.0f}};
  const int groups[] = {1, 1, 2, 3, 8, 16, 32};
  for (int i = 0; i < 2500; ++i) {
    DepthwiseTester t;
    const bool large = pick(0, 60) == 0;
    t.Seed(static_cast<unsigned>(i))
        .Batch(pick(1, 4) == 4 ? 2 : 1)
        .Input(large ? pick(24, 60) : pick(1, 12), large ? pick(24, 60) : pick(1, 15))
        .Channels(pick(1, 4) == 4 ? pick(1, 80) : pick(1, 40))
        .Strides(pick(1, 2), pick(1, 2))
        .Entries(pick(0, 3) == 0 ? pick(1, 8) : 4)
        .SharedGroups(groups[pick(0, 6)])
        .Removed(pick(0, 6) == 0 ? 1.0 : 0.1 * pick(0, 5))
        .Threads(pick(0, 5) == 0 ? 2 : 1);
    const int act = pick(0, 2);
    t.Clamp(clamps[act][0], clamps[act][1]);
    if (pick(0, 1)) t.Valid();
    if (pick(0, 9) == 0) t.Kernel(5).Entries(pick(1, 16));
    if (pick(0, 7) == 0) t.ResizeTo(pick(1, 3), pick(1, 20), pick(1, 20));
    t.TestIfValid();
    if (HasFatalFailure()) {
      ADD_FAILURE() << "random configuration " << i;
      return;
    }
  }
}

TEST(PatternDwconv, KernelNameSaysOpLayoutTileAndIsa) {
  const std::string name = DepthwiseConvKernelName();
  // e.g. f32_dwconv_nhwc_4x16_AVX3: 4 pixels x 16 channel lanes.
  EXPECT_EQ(name.rfind("f32_dwconv_nhwc_4x", 0), 0u) << name;
  EXPECT_GT(name.size(), std::string("f32_dwconv_nhwc_4x4_").size()) << name;
}

}  // namespace
}  // namespace cocopie
