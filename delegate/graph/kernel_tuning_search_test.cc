// The kernel-tuning search with fixed costs instead of timings: which
// candidate it keeps at every stage, the margin a candidate must win by, the
// confirmation round against the built-in choice, block_only, the budget.
#include <functional>
#include <vector>

#include "delegate/graph/conv_node.h"
#include "delegate/graph/kernel_tuning_search.h"
#include "gtest/gtest.h"

namespace cocopie {
namespace {

// Costs from a function of the candidate; records every measurement, and
// reports the budget spent after `budget` measurements (-1: never).
class FakeCosts : public CandidateCosts {
 public:
  explicit FakeCosts(std::function<double(const KernelTuning&)> cost) : cost_(std::move(cost)) {}

  double Time(const KernelTuning& tuning) override {
    timed.push_back(tuning);
    return cost_(tuning);
  }
  bool OverBudget() const override {
    return budget >= 0 && static_cast<int>(timed.size()) >= budget;
  }

  int budget = -1;
  std::vector<KernelTuning> timed;

 private:
  std::function<double(const KernelTuning&)> cost_;
};

ConvStep StepWithBuiltIn(bool block) {
  ConvStep step;
  step.built_in_block = block;
  return step;
}

// What the delegate runs when nothing is tuned (see ChooseKernel).
KernelTuning BuiltInBlock() {
  KernelTuning t;
  t.channel_block = PreferredChannelBlock();
  t.block.tile_pixels = BlockKernelTilePixels(t.channel_block).front();
  return t;
}

KernelTuning Rows() {
  KernelTuning t;
  t.kernel = KernelKind::kRows;
  return t;
}

// A stage-1 candidate other than the built-in block variant; the built-in
// one when this CPU compiles a single variant.
KernelTuning OtherBlockVariant() {
  KernelTuning other = BuiltInBlock();
  for (int block : BlockKernelChannelBlocks()) {
    for (int tile : BlockKernelTilePixels(block)) {
      KernelTuning t;
      t.channel_block = block;
      t.block.tile_pixels = tile;
      if (!(t == BuiltInBlock())) other = t;
    }
  }
  return other;
}

bool SameVariant(const KernelTuning& a, const KernelTuning& b) {
  return a.kernel == KernelKind::kBlock && b.kernel == KernelKind::kBlock &&
         a.channel_block == b.channel_block && a.block.tile_pixels == b.block.tile_pixels;
}

TEST(KernelTuningSearch, KeepsTheCheapestCandidateOfEveryStage) {
  // A non-default variant wins stage 1, then each later stage improves it by
  // one tunable: 8 tiles per task, 48 KiB chunks, pixels outer.
  const KernelTuning variant = OtherBlockVariant();
  FakeCosts costs([&](const KernelTuning& t) {
    if (t.kernel == KernelKind::kRows) return 90.0;
    double us = SameVariant(t, variant) ? 50.0 : 100.0;
    if (t.block.tiles_per_task == 8) us *= 0.6;
    if (t.block.chunk_bytes == 48 * 1024) us *= 0.6;
    if (t.block.loop_order == BlockLoopOrder::kPixelsOuter) us *= 0.6;
    return us;
  });
  std::vector<TunedCandidate> timings;
  const KernelTuning best =
      SearchKernelCandidates(StepWithBuiltIn(true), false, &costs, &timings);
  KernelTuning expected = variant;
  expected.block.tiles_per_task = 8;
  expected.block.chunk_bytes = 48 * 1024;
  expected.block.loop_order = BlockLoopOrder::kPixelsOuter;
  EXPECT_TRUE(best == expected) << "chose channel block " << best.channel_block << " tile "
                                << best.block.tile_pixels << " tiles/task "
                                << best.block.tiles_per_task << " chunk "
                                << best.block.chunk_bytes;
  // The table: the built-in choice first, every entry its measured cost, and
  // the choice the cheapest entry of all.
  ASSERT_EQ(timings.size(), costs.timed.size() - 4) << "the confirmation keeps its best of 3";
  EXPECT_TRUE(timings.front().tuning == BuiltInBlock());
  double cheapest = 1e300;
  for (const TunedCandidate& c : timings) cheapest = std::min(cheapest, c.microseconds);
  EXPECT_DOUBLE_EQ(timings.back().microseconds, cheapest);
  EXPECT_TRUE(timings.back().tuning == best);
  // The rows kernel was a candidate (and lost).
  int rows_timed = 0;
  for (const KernelTuning& t : costs.timed) rows_timed += t.kernel == KernelKind::kRows;
  EXPECT_EQ(rows_timed, 1);
}

TEST(KernelTuningSearch, KeepsTheBuiltInChoiceUnlessClearlyFaster) {
  // Everything else within the 3 % margin: noise, the built-in choice stays
  // and no confirmation round is needed.
  FakeCosts costs([](const KernelTuning& t) { return t == BuiltInBlock() ? 100.0 : 98.0; });
  std::vector<TunedCandidate> timings;
  const KernelTuning best =
      SearchKernelCandidates(StepWithBuiltIn(true), false, &costs, &timings);
  EXPECT_TRUE(best == BuiltInBlock());
  EXPECT_EQ(timings.size(), costs.timed.size());
  for (size_t i = 1; i < timings.size(); ++i) {
    EXPECT_FALSE(timings[i].tuning == BuiltInBlock()) << "timed once: " << i;
  }
}

TEST(KernelTuningSearch, ConfirmationRevertsAWinnerThatDoesNotRepeat) {
  // The rows kernel looks 2x faster once, then is as fast as the built-in
  // choice when timed alternately with it: the built-in choice is kept.
  int rows_runs = 0;
  FakeCosts costs([&](const KernelTuning& t) {
    if (t.kernel == KernelKind::kRows) return ++rows_runs == 1 ? 50.0 : 100.0;
    return 100.0;
  });
  std::vector<TunedCandidate> timings;
  const KernelTuning best =
      SearchKernelCandidates(StepWithBuiltIn(true), false, &costs, &timings);
  EXPECT_TRUE(best == BuiltInBlock());
  EXPECT_EQ(rows_runs, 4) << "once in stage 1, three times in the confirmation";
  ASSERT_GE(timings.size(), 2u);
  EXPECT_TRUE(timings[timings.size() - 2].tuning == BuiltInBlock());
  EXPECT_TRUE(timings.back().tuning == Rows());
  EXPECT_DOUBLE_EQ(timings.back().microseconds, 100.0);
}

TEST(KernelTuningSearch, RowsWinsWhenCheapestButNeverUnderBlockOnly) {
  auto rows_cheapest = [](const KernelTuning& t) {
    return t.kernel == KernelKind::kRows ? 10.0 : 100.0;
  };
  FakeCosts costs(rows_cheapest);
  std::vector<TunedCandidate> timings;
  EXPECT_TRUE(SearchKernelCandidates(StepWithBuiltIn(true), false, &costs, &timings) == Rows());
  // Block tunables are searched only for a block winner.
  for (const KernelTuning& t : costs.timed) {
    BlockKernelParams defaults;
    defaults.tile_pixels = t.block.tile_pixels;
    EXPECT_TRUE(t.kernel == KernelKind::kRows || t.block == defaults);
  }
  // block_only: the rows kernel is not timed even where it is the built-in
  // choice; the search starts from the preferred block variant.
  FakeCosts block_only(rows_cheapest);
  timings.clear();
  const KernelTuning best =
      SearchKernelCandidates(StepWithBuiltIn(false), true, &block_only, &timings);
  EXPECT_EQ(best.kernel, KernelKind::kBlock);
  for (const KernelTuning& t : block_only.timed) EXPECT_EQ(t.kernel, KernelKind::kBlock);
  EXPECT_TRUE(timings.front().tuning == BuiltInBlock());
}

TEST(KernelTuningSearch, StopsWhenTheBudgetIsSpent) {
  FakeCosts costs([](const KernelTuning& t) { return t == BuiltInBlock() ? 100.0 : 1.0; });
  costs.budget = 1;  // spent by timing the built-in choice
  std::vector<TunedCandidate> timings;
  const KernelTuning best =
      SearchKernelCandidates(StepWithBuiltIn(true), false, &costs, &timings);
  EXPECT_TRUE(best == BuiltInBlock());
  EXPECT_EQ(costs.timed.size(), 1u);
  EXPECT_EQ(timings.size(), 1u);
}

}  // namespace
}  // namespace cocopie
