// Kernel tuning at run time: timing the candidates of one layer, applying a
// choice to a ConvStep, the per-Prepare hook that resolves each layer's
// choice (LR, cache, timing, built-in), and CocopieDelegateKernelTunings.
#include <pthreadpool.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <mutex>
#include <sstream>

#include "delegate/abi/c_boundary.h"
#include "delegate/cocopie_delegate.h"
#include "delegate/graph/conv_node.h"
#include "delegate/graph/delegate_state.h"
#include "delegate/graph/kernel_tuning_search.h"

namespace cocopie {
namespace {

// A candidate must be this much faster than the best so far to replace it:
// on a busy machine, smaller gaps are mostly noise.
constexpr double kRequiredGain = 0.97;
// Per-layer wall-clock budget; once spent, the remaining stages are skipped
// and the best so far is kept.
constexpr double kLayerBudgetMicros = 3e6;

double NowMicros() {
  return std::chrono::duration<double, std::micro>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

void NoOp(void*, size_t) {}

// Runs every candidate of one layer on one synthetic image.
class CandidateTimer : public CandidateCosts {
 public:
  CandidateTimer(const ConvStep& step, pthreadpool_t pool) : step_(step), pool_(pool) {
    g_ = step.geometry;
    g_.batch = 1;
    input_.resize(static_cast<size_t>(g_.in_h) * g_.in_w * g_.in_c);
    // Values in [0, 1): no denormals, which would slow every candidate.
    uint32_t state = 12345;
    for (float& x : input_) {
      state = state * 1664525u + 1013904223u;
      x = static_cast<float>(state >> 8) / static_cast<float>(1u << 24);
    }
    output_.resize(static_cast<size_t>(g_.out_h) * g_.out_w * g_.out_c);
    started_ = NowMicros();
  }

  bool OverBudget() const override { return NowMicros() - started_ > kLayerBudgetMicros; }

  // Best time of a few runs after a warm-up run, in microseconds.
  double Time(const KernelTuning& tuning) override {
    if (tuning.kernel == KernelKind::kRows) {
      return BestOf([&] {
        PatternConvSimd(g_, step_.weights, input_.data(), output_.data(), &rows_scratch_, pool_);
      });
    }
    const BlockPackedWeights& w = Packed(tuning.channel_block);
    BlockConvScratch scratch;
    scratch.params = tuning.block;
    return BlockTime(w, &scratch);
  }

 private:
  template <typename Run>
  double BestOf(Run run) {
    run();  // warm-up: plans, sizes scratch, touches the weights
    double best = 1e300, total = 0;
    // At least 3 runs and 3 ms, at most 30 runs; slow layers stop after 2
    // runs (the budget is per layer). The minimum is the least disturbed run.
    for (int rep = 0; rep < 30; ++rep) {
      const double start = NowMicros();
      run();
      const double elapsed = NowMicros() - start;
      best = std::min(best, elapsed);
      total += elapsed;
      if (rep >= 1 && elapsed > 20000) break;
      if (rep >= 2 && total > 3000) break;
    }
    return best;
  }

  double BlockTime(const BlockPackedWeights& w, BlockConvScratch* scratch) {
    bool ran = true;
    const double t = BestOf([&] {
      ran = ran && PatternConvBlock(g_, w, input_.data(), output_.data(), scratch, pool_);
    });
    return ran ? t : 1e300;
  }

  const BlockPackedWeights& Packed(int block) {
    auto it = packed_.find(block);
    if (it == packed_.end()) {
      if (step_.use_block && step_.blocks.block == block && !step_.blocks.block_begin.empty()) {
        return step_.blocks;
      }
      it = packed_.emplace(block, PackChannelBlocks(step_.weights, block)).first;
    }
    return it->second;
  }

  const ConvStep& step_;
  pthreadpool_t pool_;
  ConvGeometry g_;
  std::vector<float> input_, output_;
  PatternConvScratch rows_scratch_;
  std::map<int, BlockPackedWeights> packed_;
  double started_ = 0;
};

KernelTuning BuiltInTuning(const ConvStep& step) {
  KernelTuning t;
  if (!step.built_in_block) {
    t.kernel = KernelKind::kRows;
    return t;
  }
  t.kernel = KernelKind::kBlock;
  t.channel_block =
      step.least_padded_block != 0 ? step.least_padded_block : PreferredChannelBlock();
  t.block.tile_pixels = BlockKernelTilePixels(t.channel_block).front();
  return t;
}

// Fills the defaults a record leaves implicit (0 = preferred/default).
KernelTuning Resolved(KernelTuning t) {
  if (t.kernel == KernelKind::kBlock) {
    if (t.channel_block == 0) t.channel_block = PreferredChannelBlock();
    if (t.block.tile_pixels == 0) {
      const std::vector<int> tiles = BlockKernelTilePixels(t.channel_block);
      if (!tiles.empty()) t.block.tile_pixels = tiles.front();
    }
  }
  return t;
}

std::string Describe(const KernelTuning& t) {
  if (t.kernel == KernelKind::kRows) return "rows";
  if (t.kernel == KernelKind::kStock) return "stock";
  std::ostringstream s;
  s << "block " << t.block.tile_pixels << "x" << t.channel_block << " tiles/task "
    << t.block.tiles_per_task << " chunk " << t.block.chunk_bytes / 1024 << "KiB "
    << (t.block.loop_order == BlockLoopOrder::kPixelsOuter ? "pixels-outer"
                                                           : "blocks-outer");
  return s.str();
}

}  // namespace

KernelTuning TimeKernelCandidates(const ConvStep& step, pthreadpool_t pool,
                                  bool block_only, std::vector<TunedCandidate>* timings) {
  CandidateTimer timer(step, pool);
  const KernelTuning best = SearchKernelCandidates(step, block_only, &timer, timings);
  // Let the workers sleep: the runtime's other kernels may run next.
  pthreadpool_parallelize_1d(pool, NoOp, nullptr, 1, PTHREADPOOL_FLAG_YIELD_WORKERS);
  return best;
}

KernelTuning SearchKernelCandidates(const ConvStep& step, bool block_only,
                                    CandidateCosts* costs,
                                    std::vector<TunedCandidate>* timings) {
  KernelTuning best = BuiltInTuning(step);
  if (block_only && best.kernel == KernelKind::kRows) {
    best = Resolved(KernelTuning());
  }
  const KernelTuning built_in = best;
  double best_us = costs->Time(best);
  timings->push_back({best, best_us});
  auto consider = [&](const KernelTuning& candidate) {
    if (candidate == best || costs->OverBudget()) return;
    const double us = costs->Time(candidate);
    timings->push_back({candidate, us});
    if (us < best_us * kRequiredGain) {
      best = candidate;
      best_us = us;
    }
  };
  // Stage 1: the kernel, channel block and tile size, other tunables default.
  if (!block_only) {
    KernelTuning rows;
    rows.kernel = KernelKind::kRows;
    consider(rows);
  }
  for (int block : BlockKernelChannelBlocks()) {
    for (int tile : BlockKernelTilePixels(block)) {
      KernelTuning t;
      t.channel_block = block;
      t.block.tile_pixels = tile;
      consider(t);
    }
  }
  // Stages 2-4, for the block kernel: one tunable at a time.
  if (best.kernel == KernelKind::kBlock) {
    const KernelTuning base = best;
    for (int tiles : {1, 2, 8, 16}) {
      KernelTuning t = base;
      t.block.tiles_per_task = tiles;
      consider(t);
    }
    const KernelTuning with_tasks = best;
    for (int kib : {0, 12, 48}) {
      KernelTuning t = with_tasks;
      t.block.chunk_bytes = kib * 1024;
      consider(t);
    }
    KernelTuning other_order = best;
    other_order.block.loop_order = best.block.loop_order == BlockLoopOrder::kBlocksOuter
                                       ? BlockLoopOrder::kPixelsOuter
                                       : BlockLoopOrder::kBlocksOuter;
    consider(other_order);
  }
  // Confirm against the built-in choice, timed alternately with the winner so
  // that a busy spell on the machine cannot favour either.
  if (!(best == built_in)) {
    double built_in_us = 1e300, winner_us = 1e300;
    for (int round = 0; round < 3; ++round) {
      built_in_us = std::min(built_in_us, costs->Time(built_in));
      winner_us = std::min(winner_us, costs->Time(best));
    }
    timings->push_back({built_in, built_in_us});
    timings->push_back({best, winner_us});
    if (!(winner_us < built_in_us * kRequiredGain)) best = built_in;
  }
  return best;
}

bool ApplyKernelTuning(const KernelTuning& requested, ConvStep* step, std::string* error) {
  const KernelTuning tuning = Resolved(requested);
  if (tuning.kernel == KernelKind::kStock) {
    // Only reachable when the node was claimed anyway (a forced kernel, or
    // tuning=retune|off): the claim step is where a stock entry counts.
    *error = "the stock runtime was timed faster; the delegate has no stock kernel";
    return false;
  }
  if (tuning.kernel == KernelKind::kRows) {
    step->use_block = false;
    step->blocks = BlockPackedWeights();
    step->block_scratch = BlockConvScratch();
    return true;
  }
  const std::string problem = CheckBlockKernelParams(tuning.channel_block, tuning.block);
  if (!problem.empty()) {
    *error = problem;
    return false;
  }
  if (step->blocks.block != tuning.channel_block || step->blocks.block_begin.empty()) {
    step->blocks = PackChannelBlocks(step->weights, tuning.channel_block);
    step->block_scratch = BlockConvScratch();
  }
  step->block_scratch.params = tuning.block;
  step->use_block = true;
  return true;
}

namespace {

// The LR's entry for this CPU's target, if the layer has a well-formed one.
bool TuningFromLr(DelegateState* state, const LrLayer* layer, int node_index,
                  TuningRecordEntry* entry) {
  if (layer == nullptr || layer->tuning.empty()) return false;
  std::vector<TuningRecordEntry> entries;
  std::string error;
  const std::string node = "node " + std::to_string(node_index);
  if (!DecodeTuningRecord(layer->tuning.data(), layer->tuning.size(), &entries, &error)) {
    state->ReportOnce(node + ": ignoring the LR's kernel tuning record: " + error);
    return false;
  }
  const std::string target = PatternConvSimdTarget();
  for (const TuningRecordEntry& e : entries) {
    if (e.target == target) {
      *entry = e;
      return true;
    }
  }
  return false;
}

void Report(DelegateState* state, const std::vector<std::string>& warnings) {
  for (const std::string& w : warnings) state->ReportOnce(w);
}

}  // namespace

bool StockPreferredByLr(DelegateState* state, const LrLayer& layer, int node_index) {
  const CocopieDelegateOptions& options = state->options();
  if (options.kernel != kCocopieKernelAuto) return false;
  if (options.tuning != kCocopieTuningCache && options.tuning != kCocopieTuningOn) return false;
  TuningRecordEntry entry;
  if (!TuningFromLr(state, &layer, node_index, &entry) ||
      entry.tuning.kernel != KernelKind::kStock) {
    return false;
  }
  NodeTuning report;
  report.node_index = node_index;
  report.source = "lr";
  report.tuning = entry.tuning;
  report.threads = entry.threads;
  state->node_tunings()[node_index] = report;
  return true;
}

void TuneConvStep(DelegateState* state, ConvStep* step, pthreadpool_t pool,
                  const LayerwiseRepresentation* lr) {
  // Held while timing too: an interpreter sharing the delegate then finds
  // the choice in the cache instead of timing the same layer at once.
  std::lock_guard<std::mutex> lock(state->mutex());
  if (lr == nullptr) lr = &state->lr();
  const CocopieDelegateOptions& options = state->options();
  NodeTuning report;
  report.node_index = step->node_index;
  report.threads = pool != nullptr ? static_cast<int>(pthreadpool_get_threads_count(pool)) : 1;
  report.signature = LayerSignature(step->geometry, step->weights);
  const std::string key =
      report.signature + "|" + CpuIdentity() + "|t" + std::to_string(report.threads);
  if (key == step->tuning_key) return;  // resolved for this geometry already
  step->tuning_key = key;
  const std::string node = "node " + std::to_string(step->node_index);
  std::string error;

  auto finish = [&](const char* source, const KernelTuning& tuning) {
    report.source = source;
    report.tuning = Resolved(tuning);
    state->node_tunings()[step->node_index] = report;
  };
  auto built_in = [&](const char* source) {
    const KernelTuning t = BuiltInTuning(*step);
    ApplyKernelTuning(t, step, &error);  // always runnable: the default variant
    finish(source, t);
  };

  if (options.kernel == kCocopieKernelRows || options.kernel == kCocopieKernelReference) {
    KernelTuning rows;
    rows.kernel = KernelKind::kRows;
    finish("forced", rows);
    return;
  }
  const int mode = options.tuning;
  if (mode != kCocopieTuningCache && mode != kCocopieTuningOn && mode != kCocopieTuningRetune) {
    built_in("off");
    return;
  }
  const bool block_only = options.kernel == kCocopieKernelBlock;
  auto usable = [&](const KernelTuning& t, const char* where) {
    if (block_only && t.kernel == KernelKind::kRows) return false;
    if (ApplyKernelTuning(t, step, &error)) return true;
    state->ReportOnce(node + ": ignoring the " + where + "'s kernel tuning for " +
                      PatternConvSimdTarget() + ": " + error);
    return false;
  };
  if (mode != kCocopieTuningRetune) {
    TuningRecordEntry stored;
    if (TuningFromLr(state, lr->FindByOp(step->node_index), step->node_index, &stored) &&
        usable(stored.tuning, "LR")) {
      finish("lr", stored.tuning);
      return;
    }
    KernelTuning t;
    std::vector<std::string> warnings;
    const bool cached = state->tuning_cache().Lookup(key, &t, &warnings);
    Report(state, warnings);
    if (cached && usable(t, "cache")) {
      finish("cache", t);
      return;
    }
  }
  if (mode == kCocopieTuningCache) {
    built_in("default");
    return;
  }
  std::vector<TunedCandidate> timings;
  const double start = NowMicros();
  const KernelTuning best = TimeKernelCandidates(*step, pool, block_only, &timings);
  if (!ApplyKernelTuning(best, step, &error)) {
    built_in("default");
    return;
  }
  std::vector<std::string> warnings;
  state->tuning_cache().Store(key, Resolved(best), report.threads, &warnings);
  Report(state, warnings);
  // The latest timings of each (the confirmation round, when there was one).
  for (const TunedCandidate& c : timings) {
    if (c.tuning == timings.front().tuning) report.default_us = c.microseconds;
    if (c.tuning == best) report.tuned_us = c.microseconds;
  }
  report.candidates = static_cast<int>(timings.size());
  finish("timed", best);
  if (options.verbose) {
    char line[256];
    std::snprintf(line, sizeof(line),
                  ": tuned in %.0f ms over %d candidates: %.1f us (built-in) -> %.1f us, ",
                  (NowMicros() - start) / 1000, report.candidates, report.default_us,
                  report.tuned_us);
    state->ReportOnce(node + line + Describe(report.tuning));
  }
}

// The JSON report behind CocopieDelegateKernelTunings (unguarded).
const char* KernelTuningsReport(TfLiteDelegate* delegate) {
  using cocopie::BlockLoopOrder;
  using cocopie::KernelKind;
  if (delegate == nullptr) return nullptr;
  cocopie::DelegateState* state = cocopie::DelegateState::From(delegate);
  std::lock_guard<std::mutex> lock(state->mutex());
  std::ostringstream s;
  s << "[";
  bool first = true;
  for (const auto& item : state->node_tunings()) {
    const cocopie::NodeTuning& n = item.second;
    const cocopie::KernelTuning& t = n.tuning;
    cocopie::TuningRecordEntry entry;
    entry.target = cocopie::PatternConvSimdTarget();
    entry.tuning = t;
    entry.threads = n.threads;
    s << (first ? "" : ",") << "\n {\"node\": " << n.node_index << ", \"source\": \""
      << n.source << "\", \"signature\": \"" << n.signature << "\", \"target\": \""
      << entry.target << "\", \"threads\": " << n.threads << ", \"kernel\": \""
      << (t.kernel == KernelKind::kBlock   ? "block"
          : t.kernel == KernelKind::kStock ? "stock"
          : state->options().kernel == kCocopieKernelReference && n.source == "forced"
              ? "reference"
              : "rows")
      << "\"";
    if (t.kernel == KernelKind::kBlock) {
      s << ", \"channel_block\": " << t.channel_block
        << ", \"tile_pixels\": " << t.block.tile_pixels
        << ", \"tiles_per_task\": " << t.block.tiles_per_task
        << ", \"chunk_bytes\": " << t.block.chunk_bytes << ", \"loop_order\": \""
        << (t.block.loop_order == BlockLoopOrder::kPixelsOuter ? "pixels" : "blocks")
        << "\"";
    }
    if (n.source != "forced") s << ", \"record\": \"" << cocopie::TuningRecordHex({entry}) << "\"";
    if (n.source == "timed") {
      s << ", \"default_us\": " << n.default_us << ", \"tuned_us\": " << n.tuned_us
        << ", \"candidates\": " << n.candidates;
    }
    s << "}";
    first = false;
  }
  s << "\n]";
  state->tuning_report() = s.str();
  return state->tuning_report().c_str();
}

}  // namespace cocopie

extern "C" {

const char* CocopieDelegateKernelTunings(TfLiteDelegate* delegate) {
  return cocopie::GuardValue<const char*>(
      nullptr, [&] { return cocopie::KernelTuningsReport(delegate); });
}

}  // extern "C"
