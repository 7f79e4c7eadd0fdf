#include "delegate/kernels/simple_ops.h"

#include <pthreadpool.h>

#include <algorithm>
#include <cfloat>
#include <random>
#include <vector>

#include "gtest/gtest.h"

namespace cocopie {
namespace {

std::vector<float> Random(size_t n, std::mt19937* rng) {
  std::normal_distribution<float> d;
  std::vector<float> v(n);
  for (float& x : v) x = d(*rng);
  return v;
}

class SimpleOps : public ::testing::TestWithParam<int> {
 protected:
  void SetUp() override {
    pool_ = GetParam() > 1 ? pthreadpool_create(GetParam()) : nullptr;
  }
  void TearDown() override {
    if (pool_ != nullptr) pthreadpool_destroy(pool_);
  }
  pthreadpool_t pool_ = nullptr;
};

TEST_P(SimpleOps, AddMatchesReferenceWithEveryClamp) {
  std::mt19937 rng(1);
  const float clamps[][2] = {{-FLT_MAX, FLT_MAX}, {0.0f, FLT_MAX}, {0.0f, 6.0f}, {-1.0f, 1.0f}};
  for (int64_t count : {1, 7, 4096, 4097, 50000}) {
    for (const auto& clamp : clamps) {
      const std::vector<float> a = Random(count, &rng), b = Random(count, &rng);
      std::vector<float> out(count, -7.0f);
      AddF32(a.data(), b.data(), out.data(), count, clamp[0], clamp[1], pool_);
      for (int64_t i = 0; i < count; ++i) {
        ASSERT_EQ(out[i], std::min(std::max(a[i] + b[i], clamp[0]), clamp[1])) << i;
      }
    }
  }
}

// Max over the real cells of each window, computed the obvious way.
std::vector<float> MaxPoolReference(const PoolGeometry& g, const std::vector<float>& in) {
  std::vector<float> out(static_cast<size_t>(g.batch) * g.out_h * g.out_w * g.channels);
  for (int n = 0; n < g.batch; ++n)
    for (int y = 0; y < g.out_h; ++y)
      for (int x = 0; x < g.out_w; ++x)
        for (int c = 0; c < g.channels; ++c) {
          float best = -FLT_MAX;
          bool any = false;
          for (int r = 0; r < g.filter_h; ++r)
            for (int s = 0; s < g.filter_w; ++s) {
              const int iy = y * g.stride_h - g.pad_top + r, ix = x * g.stride_w - g.pad_left + s;
              if (iy < 0 || iy >= g.in_h || ix < 0 || ix >= g.in_w) continue;
              best = std::max(best, in[((static_cast<size_t>(n) * g.in_h + iy) * g.in_w + ix) *
                                           g.channels + c]);
              any = true;
            }
          EXPECT_TRUE(any);
          out[((static_cast<size_t>(n) * g.out_h + y) * g.out_w + x) * g.channels + c] =
              std::min(std::max(best, g.act_min), g.act_max);
        }
  return out;
}

// A random input shape: batch 1 or 2, sides 1..max_side, 1..max_channels.
template <typename Geometry>
void RandomInputShape(std::mt19937* rng, int max_side, int max_channels, Geometry* g) {
  g->batch = 1 + (*rng)() % 2;
  g->in_h = 1 + (*rng)() % max_side;
  g->in_w = 1 + (*rng)() % max_side;
  g->channels = 1 + (*rng)() % max_channels;
}

TEST_P(SimpleOps, MaxPoolMatchesReferenceOverRandomConfigurations) {
  std::mt19937 rng(2);
  int checked = 0;
  for (int iteration = 0; iteration < 400; ++iteration) {
    PoolGeometry g;
    RandomInputShape(&rng, 13, 19, &g);
    g.filter_h = 1 + rng() % 3;
    g.filter_w = 1 + rng() % 3;
    g.stride_h = 1 + rng() % 3;
    g.stride_w = 1 + rng() % 3;
    if (rng() % 3 == 0) g.act_min = 0.0f;
    if (rng() % 4 == 0) g.act_max = 0.5f;
    if (!ComputePoolGeometry(rng() % 2 == 0, &g)) continue;
    const std::vector<float> in =
        Random(static_cast<size_t>(g.batch) * g.in_h * g.in_w * g.channels, &rng);
    std::vector<float> out(static_cast<size_t>(g.batch) * g.out_h * g.out_w * g.channels);
    MaxPoolF32(g, in.data(), out.data(), pool_);
    ASSERT_EQ(out, MaxPoolReference(g, in)) << "iteration " << iteration;
    ++checked;
  }
  EXPECT_GT(checked, 300);
}

TEST(SimpleOpsGeometry, FollowsTfliteSizes) {
  PoolGeometry g;
  g.in_h = g.in_w = 112;
  g.channels = 64;
  g.filter_h = g.filter_w = 3;
  g.stride_h = g.stride_w = 2;
  ASSERT_TRUE(ComputePoolGeometry(true, &g));
  EXPECT_EQ(g.out_h, 56);
  EXPECT_EQ(g.pad_top, 0);  // total padding 1 goes to the bottom
  ASSERT_TRUE(ComputePoolGeometry(false, &g));
  EXPECT_EQ(g.out_h, 55);
  g.in_h = 2;  // VALID window larger than the input
  EXPECT_FALSE(ComputePoolGeometry(false, &g));
  g.in_h = 4;
  g.filter_h = 0;
  EXPECT_FALSE(ComputePoolGeometry(true, &g));
}

TEST_P(SimpleOps, PadMatchesReference) {
  std::mt19937 rng(3);
  for (int iteration = 0; iteration < 200; ++iteration) {
    PadGeometry g;
    RandomInputShape(&rng, 9, 11, &g);
    g.top = rng() % 3;
    g.bottom = rng() % 3;
    g.left = rng() % 3;
    g.right = rng() % 3;
    const int out_h = g.in_h + g.top + g.bottom, out_w = g.in_w + g.left + g.right;
    const std::vector<float> in =
        Random(static_cast<size_t>(g.batch) * g.in_h * g.in_w * g.channels, &rng);
    std::vector<float> out(static_cast<size_t>(g.batch) * out_h * out_w * g.channels, 9.0f);
    PadF32(g, in.data(), out.data(), pool_);
    for (int n = 0; n < g.batch; ++n)
      for (int y = 0; y < out_h; ++y)
        for (int x = 0; x < out_w; ++x)
          for (int c = 0; c < g.channels; ++c) {
            const int iy = y - g.top, ix = x - g.left;
            const bool inside = iy >= 0 && iy < g.in_h && ix >= 0 && ix < g.in_w;
            const float expected =
                inside ? in[((static_cast<size_t>(n) * g.in_h + iy) * g.in_w + ix) * g.channels + c]
                       : 0.0f;
            ASSERT_EQ(out[((static_cast<size_t>(n) * out_h + y) * out_w + x) * g.channels + c],
                      expected);
          }
  }
}

INSTANTIATE_TEST_SUITE_P(Threads, SimpleOps, ::testing::Values(1, 2, 3));

}  // namespace
}  // namespace cocopie
