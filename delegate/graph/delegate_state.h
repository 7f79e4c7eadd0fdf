// What one delegate instance owns: its options, the LR read at Prepare, the
// thread pools its kernels share, and the messages already reported.
//
// One delegate may serve several interpreters (TFLite lets a delegate be
// passed to more than one), each prepared and invoked from its own thread.
// So nothing a kernel still uses may be replaced under it: a kernel keeps
// its own reference to the LR it was built from and to its thread pool
// (freed with the last kernel holding it), and the state a Prepare changes
// is guarded by mutex().
#ifndef COCOPIE_DELEGATE_GRAPH_DELEGATE_STATE_H_
#define COCOPIE_DELEGATE_GRAPH_DELEGATE_STATE_H_

#include <pthreadpool.h>

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <type_traits>
#include <utility>

#include "delegate/cocopie_delegate.h"
#include "delegate/graph/kernel_tuning_search.h"
#include "delegate/lr/lr_format.h"

namespace cocopie {

// A pthreadpool owned by every kernel that runs on it; null means "run on
// the caller".
using SharedThreadPool = std::shared_ptr<std::remove_pointer_t<pthreadpool_t>>;

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

  // Held by the delegate's Prepare, by kernels while they resolve their
  // tuning, and by CocopieDelegateKernelTunings: everything below but
  // ThreadPool and ReportOnce (which lock on their own) is read and written
  // under it.
  std::mutex& mutex() { return mutex_; }

  // The LR of the model being prepared. ResetLr starts a fresh one (each
  // Prepare), leaving the one earlier kernels hold (shared_lr) untouched.
  LayerwiseRepresentation& lr() { return *lr_; }
  std::shared_ptr<const LayerwiseRepresentation> shared_lr() const { return lr_; }
  void ResetLr() { lr_ = std::make_shared<LayerwiseRepresentation>(); }

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
  // signature, and what each claimed node runs (latest Prepare of any
  // interpreter using this delegate).
  TuningCache& tuning_cache() { return tuning_cache_; }
  std::map<int, NodeTuning>& node_tunings() { return node_tunings_; }
  // Buffer behind CocopieDelegateKernelTunings' returned text.
  std::string& tuning_report() { return tuning_report_; }

  // A pool of the configured size for the kernels of `context` (one
  // interpreter's graph): kernels of one interpreter share it, two
  // interpreters never do, so each may run while the other does. Null when
  // one thread is asked for (or no pool can be made).
  SharedThreadPool ThreadPool(const TfLiteContext* context);

  // Prints `message` to stderr the first time it is seen.
  void ReportOnce(const std::string& message);

 private:
  TfLiteDelegate delegate_{};
  CocopieDelegateOptions options_;
  std::mutex mutex_;
  std::shared_ptr<LayerwiseRepresentation> lr_ = std::make_shared<LayerwiseRepresentation>();
  std::atomic<int> claimed_nodes_{0};
  std::map<int, int> sparse_filters_;
  // Pools by (graph, thread count); expired entries are dropped when a new
  // pool is made.
  std::mutex pools_mutex_;
  std::map<std::pair<const TfLiteContext*, int>, std::weak_ptr<SharedThreadPool::element_type>>
      pools_;
  std::mutex reported_mutex_;
  std::set<std::string> reported_;
  // Initialized from options_, which is declared earlier: the option's
  // string belongs to the caller only while the delegate is created, so
  // options_.tuning_cache must not be read later.
  TuningCache tuning_cache_{options_.tuning_cache != nullptr ? options_.tuning_cache : ""};
  std::map<int, NodeTuning> node_tunings_;
  std::string tuning_report_;
};

}  // namespace cocopie

#endif  // COCOPIE_DELEGATE_GRAPH_DELEGATE_STATE_H_
