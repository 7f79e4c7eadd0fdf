#include "delegate/kernels/simd_target.h"

#include <cstdint>
#include <string>
#include <vector>

#include "delegate/kernels/conv_testing.h"
#include "gtest/gtest.h"
#include "hwy/targets.h"

namespace cocopie {
namespace {

// This CPU's native targets, widest first (names are only known for the
// build's own architecture, so no other architecture's targets stand in).
std::vector<int64_t> Candidates() {
  std::vector<int64_t> native;
  for (int64_t target : EverySimdTarget()) {
    if (target != HWY_SCALAR && target != HWY_EMU128) native.push_back(target);
  }
  return native;
}

TEST(ChooseSimdTarget, BestOrNothingKeepsTheWidest) {
  const std::vector<int64_t> candidates = Candidates();
  ASSERT_FALSE(candidates.empty());
  int64_t chosen = 0;
  EXPECT_EQ(ChooseSimdTarget("best", candidates, &chosen), "");
  EXPECT_EQ(chosen, candidates.front());
  chosen = 0;
  EXPECT_EQ(ChooseSimdTarget("", candidates, &chosen), "");
  EXPECT_EQ(chosen, candidates.front());
}

TEST(ChooseSimdTarget, ANamedTargetIsTaken) {
  const std::vector<int64_t> candidates = Candidates();
  for (int64_t target : candidates) {
    int64_t chosen = 0;
    EXPECT_EQ(ChooseSimdTarget(hwy::TargetName(target), candidates, &chosen), "");
    EXPECT_EQ(chosen, target) << hwy::TargetName(target);
  }
}

TEST(ChooseSimdTarget, AnUnsupportedNameIsRefusedWithTheChoices) {
  const std::vector<int64_t> candidates = Candidates();
  ASSERT_FALSE(candidates.empty());
  int64_t chosen = 0;
  const std::string error = ChooseSimdTarget("AVX9", candidates, &chosen);
  EXPECT_NE(error.find("Received: AVX9"), std::string::npos) << error;
  EXPECT_NE(error.find(hwy::TargetName(candidates.front())), std::string::npos) << error;
  EXPECT_EQ(chosen, candidates.front());  // the kernels keep running on the widest
  if (candidates.size() < 2) return;
  // A real target the candidates lack (here: the CPU) is refused the same way.
  const std::string missing = hwy::TargetName(candidates.back());
  EXPECT_NE(ChooseSimdTarget(missing, {candidates.front()}, &chosen), "");
  EXPECT_EQ(chosen, candidates.front());
}

}  // namespace
}  // namespace cocopie
