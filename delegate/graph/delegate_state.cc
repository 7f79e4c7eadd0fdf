#include "delegate/graph/delegate_state.h"

#include <cstdio>
#include <iterator>

namespace cocopie {

DelegateState::DelegateState(const CocopieDelegateOptions& options)
    : options_(options) {
  delegate_.data_ = this;
  delegate_.flags = kTfLiteDelegateFlagsAllowDynamicTensors;
}

// Pools still held by kernels are theirs to free.
DelegateState::~DelegateState() = default;

SharedThreadPool DelegateState::ThreadPool(const TfLiteContext* context) {
  int threads = options_.num_threads;
  if (threads <= 0) threads = context->recommended_num_threads;
  if (threads <= 1) return nullptr;
  std::lock_guard<std::mutex> lock(pools_mutex_);
  auto& slot = pools_[{context, threads}];
  SharedThreadPool pool = slot.lock();
  if (pool != nullptr) return pool;
  for (auto it = pools_.begin(); it != pools_.end();) {
    it = it->second.expired() && &it->second != &slot ? pools_.erase(it) : std::next(it);
  }
  pthreadpool_t created = pthreadpool_create(threads);
  if (created == nullptr) return nullptr;  // the kernels then run on the caller
  pool = SharedThreadPool(created, [](pthreadpool_t p) { pthreadpool_destroy(p); });
  slot = pool;
  return pool;
}

void DelegateState::ReportOnce(const std::string& message) {
  std::lock_guard<std::mutex> lock(reported_mutex_);
  if (reported_.insert(message).second) {
    std::fprintf(stderr, "cocopie delegate: %s\n", message.c_str());
  }
}

}  // namespace cocopie
