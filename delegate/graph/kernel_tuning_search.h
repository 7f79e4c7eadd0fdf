// Kernel tuning applied to a claimed convolution: resolving a step's choice
// (from the LR, the cache, timing, or the built-in default; the order is
// described in tuning/kernel_tuning.h), timing candidates on the step's real
// geometry, and the record of what each node runs (CocopieDelegateKernelTunings).
#ifndef COCOPIE_DELEGATE_GRAPH_KERNEL_TUNING_SEARCH_H_
#define COCOPIE_DELEGATE_GRAPH_KERNEL_TUNING_SEARCH_H_

#include <pthreadpool.h>

#include <string>
#include <vector>

#include "delegate/tuning/kernel_tuning.h"

namespace cocopie {

class DelegateState;
struct ConvStep;
struct LayerwiseRepresentation;
struct LrLayer;

// Where a node's kernel choice came from, and what it is.
struct NodeTuning {
  int node_index = -1;
  // "lr" | "cache" | "timed" | "default" | "off" | "forced"
  std::string source;
  std::string signature;
  int threads = 1;
  KernelTuning tuning;   // what runs (rows or block + params)
  double default_us = 0;  // timed runs only: built-in choice, best run
  double tuned_us = 0;    // timed runs only: chosen candidate, best run
  int candidates = 0;     // timed runs only
};

// One timed candidate.
struct TunedCandidate {
  KernelTuning tuning;
  double microseconds = 0;
};

// Times the candidates for `step`'s current geometry (one image) on `pool`
// and returns the fastest; `block_only` leaves the rows kernel out. A
// candidate must beat the best so far by a small margin to replace it, so
// that noise does not move the choice away from the default.
KernelTuning TimeKernelCandidates(const ConvStep& step, pthreadpool_t pool,
                                  bool block_only, std::vector<TunedCandidate>* timings);

// How the search measures a candidate: TimeKernelCandidates times it on the
// layer's geometry; tests give fixed costs to check which candidate it keeps.
class CandidateCosts {
 public:
  virtual ~CandidateCosts() = default;
  // Microseconds for one image; 1e300 when the candidate cannot run.
  virtual double Time(const KernelTuning& tuning) = 0;
  // True once the layer's time budget is spent: no further candidates.
  virtual bool OverBudget() const = 0;
};

// The search of TimeKernelCandidates, measuring with `costs`; every
// measurement is appended to *timings, the built-in choice first.
KernelTuning SearchKernelCandidates(const ConvStep& step, bool block_only,
                                    CandidateCosts* costs,
                                    std::vector<TunedCandidate>* timings);

// Makes `step` run `tuning`: repacks the weights when the channel block
// changes, sets the block kernel's params. False (step unchanged) when this
// CPU cannot run it; *error says why.
bool ApplyKernelTuning(const KernelTuning& tuning, ConvStep* step, std::string* error);

// True when the LR's tuning record for this CPU's SIMD target says `stock`
// (`cocopie tune-kernels` timed the stock runtime faster on this layer) and
// the options let the record decide (kernel=auto, tuning=cache|on): the
// delegate then does not claim the node. Such a node is recorded in the
// delegate's state with source "lr" and kernel stock, so that
// CocopieDelegateKernelTunings reports it.
bool StockPreferredByLr(DelegateState* state, const LrLayer& layer, int node_index);

// The partition kernel calls this for every step once its geometry is known
// (every Prepare; a step whose layer signature did not change is left as it
// is). Resolves the choice as described at the top and records it in the
// delegate's state for CocopieDelegateKernelTunings. `lr` is the LR the
// step's kernel was built from (null: the state's latest). Locks the state:
// interpreters sharing the delegate may prepare at once.
void TuneConvStep(DelegateState* state, ConvStep* step, pthreadpool_t pool,
                  const LayerwiseRepresentation* lr = nullptr);

}  // namespace cocopie

#endif  // COCOPIE_DELEGATE_GRAPH_KERNEL_TUNING_SEARCH_H_
