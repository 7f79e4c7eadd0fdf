#include "delegate/kernels/simd_target.h"

#include <cstdint>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "hwy/targets.h"

namespace cocopie {
namespace {

// Stand-in targets, widest first (the choice only compares names).
const std::vector<int64_t> kCandidates = {HWY_AVX3, HWY_AVX2, HWY_SSE4};

TEST(ChooseSimdTarget, BestOrNothingKeepsTheWidest) {
  int64_t chosen = 0;
  EXPECT_EQ(ChooseSimdTarget("best", kCandidates, &chosen), "");
  EXPECT_EQ(chosen, HWY_AVX3);
  chosen = 0;
  EXPECT_EQ(ChooseSimdTarget("", kCandidates, &chosen), "");
  EXPECT_EQ(chosen, HWY_AVX3);
}

TEST(ChooseSimdTarget, ANamedTargetIsTaken) {
  int64_t chosen = 0;
  EXPECT_EQ(ChooseSimdTarget(hwy::TargetName(HWY_SSE4), kCandidates, &chosen), "");
  EXPECT_EQ(chosen, HWY_SSE4);
}

TEST(ChooseSimdTarget, AnUnsupportedNameIsRefusedWithTheChoices) {
  int64_t chosen = 0;
  const std::string error = ChooseSimdTarget("AVX9", kCandidates, &chosen);
  EXPECT_NE(error.find("Received: AVX9"), std::string::npos) << error;
  EXPECT_NE(error.find(hwy::TargetName(HWY_AVX2)), std::string::npos) << error;
  EXPECT_EQ(chosen, HWY_AVX3);  // the kernels keep running on the widest
  // A target this CPU lacks is refused the same way.
  EXPECT_NE(ChooseSimdTarget(hwy::TargetName(HWY_SSE4), {HWY_AVX2}, &chosen), "");
  EXPECT_EQ(chosen, HWY_AVX2);
}

}  // namespace
}  // namespace cocopie
