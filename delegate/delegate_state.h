// What one delegate instance owns: its options, the LR read at Prepare, the
// thread pool its kernels share, and the messages already reported.
#ifndef COCOPIE_DELEGATE_DELEGATE_STATE_H_
#define COCOPIE_DELEGATE_DELEGATE_STATE_H_

#include <pthreadpool.h>

#include <set>
#include <string>

#include "delegate/cocopie_delegate.h"
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
  std::set<std::string> reported_;
};

}  // namespace cocopie

#endif  // COCOPIE_DELEGATE_DELEGATE_STATE_H_
