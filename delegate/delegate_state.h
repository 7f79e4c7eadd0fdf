// What one delegate instance owns: its options, the LR read at Prepare, the
// thread pool its kernels share, and the messages already reported.
#ifndef COCOPIE_DELEGATE_DELEGATE_STATE_H_
#define COCOPIE_DELEGATE_DELEGATE_STATE_H_

#include <pthreadpool.h>

#include <map>
#include <set>
#include <string>

#include "delegate/cocopie_delegate.h"
#include "delegate/kernel_tuning.h"
#include "delegate/lr_format.h"

namespace cocopie {

class DelegateState {
 public:
  explicit DelegateState(const CocopieDelegateOptions& options);
  ~DelegateState();
  DelegateState(const DelegateState&) = delete;
  DelegateState& operator=(const DelegateState&) = delete;

  TfLiteDelegate* delegate() { return &delegate_; }
  static DelegateState* From(const TfLiteDelegate* delegate) {
    return static_cast<DelegateState*>(delegate->data_);
  }

  const CocopieDelegateOptions& options() const { return options_; }
  LayerwiseRepresentation& lr() { return lr_; }
  int claimed_nodes() const { return claimed_nodes_; }
  void set_claimed_nodes(int n) { claimed_nodes_ = n; }

  // Claimed convolutions whose filter a claimed DENSIFY node expands: conv
  // node -> tensor index of the sparse constant (read directly at Init).
  std::map<int, int>& sparse_filters() { return sparse_filters_; }
  int SparseFilterOf(int node) const {
    auto it = sparse_filters_.find(node);
    return it == sparse_filters_.end() ? -1 : it->second;
  }

  // Kernel tuning (kernel_tuning.h): choices timed or read per layer
  // signature, and what each claimed node runs (latest Prepare).
  TuningCache& tuning_cache() { return tuning_cache_; }
  std::map<int, NodeTuning>& node_tunings() { return node_tunings_; }
  // Buffer behind CocopieDelegateKernelTunings' returned text.
  std::string& tuning_report() { return tuning_report_; }

  // A pool of the configured size (null means "run on the caller").
  pthreadpool_t ThreadPool(const TfLiteContext* context);

  // Prints `message` to stderr the first time it is seen.
  void ReportOnce(const std::string& message);

 private:
  TfLiteDelegate delegate_{};
  CocopieDelegateOptions options_;
  LayerwiseRepresentation lr_;
  pthreadpool_t pool_ = nullptr;
  int pool_threads_ = 1;
  int claimed_nodes_ = 0;
  std::map<int, int> sparse_filters_;
  std::set<std::string> reported_;
  // Initialized from options_, which is declared earlier: the option's
  // string belongs to the caller only while the delegate is created, so
  // options_.tuning_cache must not be read later.
  TuningCache tuning_cache_{options_.tuning_cache != nullptr ? options_.tuning_cache : ""};
  std::map<int, NodeTuning> node_tunings_;
  std::string tuning_report_;
};

}  // namespace cocopie

#endif  // COCOPIE_DELEGATE_DELEGATE_STATE_H_
