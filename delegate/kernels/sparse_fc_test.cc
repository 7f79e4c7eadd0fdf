#include "delegate/kernels/sparse_fc.h"

#include <pthreadpool.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "gtest/gtest.h"

namespace cocopie {
namespace {

// A fluent description of one layer, checked against a dense scalar
// reference of the same masked weights.
class SparseFcTester {
 public:
  SparseFcTester& Shape(int out, int in) { out_ = out, in_ = in; return *this; }
  // Rows that share their kept columns (1 = every row its own).
  SparseFcTester& SharedRows(int rows) { shared_ = rows; return *this; }
  SparseFcTester& KeptFraction(double f) { kept_fraction_ = f; return *this; }
  SparseFcTester& Batch(int batch) { batch_ = batch; return *this; }
  SparseFcTester& Bias(bool bias) { bias_ = bias; return *this; }
  SparseFcTester& Clamp(float lo, float hi) { lo_ = lo, hi_ = hi; return *this; }
  SparseFcTester& Threads(int threads) { threads_ = threads; return *this; }

  // Builds, runs and compares; returns the packing's rows per group.
  int Test(uint32_t seed = 1) const {
    std::mt19937 rng(seed);
    std::normal_distribution<float> normal;
    std::bernoulli_distribution keep(kept_fraction_);
    std::vector<uint8_t> kept(static_cast<size_t>(out_) * in_);
    for (int leader = 0; leader < out_; leader += shared_) {
      for (int i = 0; i < in_; ++i) {
        const uint8_t k = keep(rng);
        for (int o = leader; o < std::min(out_, leader + shared_); ++o) {
          kept[static_cast<size_t>(o) * in_ + i] = k;
        }
      }
    }
    std::vector<float> weights(kept.size()), bias(out_), input(static_cast<size_t>(batch_) * in_);
    for (size_t k = 0; k < weights.size(); ++k) weights[k] = kept[k] ? normal(rng) : 0.0f;
    for (float& b : bias) b = normal(rng);
    for (float& x : input) x = normal(rng);
    const PackedSparseFc packed = PackSparseFc(out_, in_, weights.data(), kept,
                                               bias_ ? bias.data() : nullptr, lo_, hi_);
    std::vector<float> output(static_cast<size_t>(batch_) * out_, std::nanf(""));
    pthreadpool_t pool = threads_ > 1 ? pthreadpool_create(threads_) : nullptr;
    SparseFullyConnected(packed, input.data(), batch_, output.data(), pool);
    if (pool != nullptr) pthreadpool_destroy(pool);
    for (int b = 0; b < batch_; ++b) {
      for (int o = 0; o < out_; ++o) {
        double sum = bias_ ? bias[o] : 0.0, magnitude = std::fabs(sum);
        for (int i = 0; i < in_; ++i) {
          const double term = static_cast<double>(weights[static_cast<size_t>(o) * in_ + i]) *
                              input[static_cast<size_t>(b) * in_ + i];
          sum += term;
          magnitude += std::fabs(term);
        }
        const double expected = std::min<double>(std::max<double>(sum, lo_), hi_);
        EXPECT_NEAR(output[static_cast<size_t>(b) * out_ + o], expected, 1e-5 * (1 + magnitude))
            << "batch " << b << " row " << o;
      }
    }
    return packed.rows_per_group;
  }

 private:
  int out_ = 8, in_ = 16, shared_ = 1, batch_ = 1, threads_ = 1;
  double kept_fraction_ = 0.28;
  bool bias_ = true;
  float lo_ = -std::numeric_limits<float>::infinity();
  float hi_ = std::numeric_limits<float>::infinity();
};

TEST(F32SpmmRows, GroupsRowsThatShareTheirColumns) {
  EXPECT_EQ(SparseFcTester().Shape(64, 100).SharedRows(8).Test(), 8);
  EXPECT_EQ(SparseFcTester().Shape(64, 100).SharedRows(4).Test(), 4);
  EXPECT_EQ(SparseFcTester().Shape(64, 100).SharedRows(1).Test(), 1);
  EXPECT_EQ(SparseFcTester().Shape(64, 100).SharedRows(16).Test(), 8);
}

TEST(F32SpmmRows, OddShapesAndPartialGroups) {
  for (int out : {1, 3, 7, 9, 13, 33}) {
    for (int shared : {1, 4, 8}) {
      SparseFcTester().Shape(out, 37).SharedRows(shared).Batch(2).Test(out * 10 + shared);
    }
  }
}

TEST(F32SpmmRows, DensitiesBatchesBiasAndActivation) {
  for (double kept : {0.0, 0.05, 0.28, 1.0}) {
    SparseFcTester().Shape(24, 50).SharedRows(4).KeptFraction(kept).Batch(3).Test();
  }
  SparseFcTester().Shape(24, 50).Bias(false).Test();
  SparseFcTester().Shape(24, 50).SharedRows(8).Clamp(0.0f, 6.0f).Batch(4).Test();
  SparseFcTester().Shape(24, 50).Clamp(-1.0f, 1.0f).Test();
}

TEST(F32SpmmRows, ThreadsGiveTheSameResult) {
  for (int threads : {2, 3}) {
    SparseFcTester().Shape(1000, 300).SharedRows(4).Batch(2).Threads(threads).Test();
    SparseFcTester().Shape(257, 129).Threads(threads).Test();
  }
}

}  // namespace
}  // namespace cocopie
