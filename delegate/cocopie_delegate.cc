// The delegate: reads the LR from the model's metadata, claims the CONV_2D
// nodes it describes whose weights agree with it, and hands each connected
// group of them to a PartitionKernel.
#include "delegate/cocopie_delegate.h"

#include <cstdio>
#include <new>
#include <vector>

#include "delegate/conv_node.h"
#include "delegate/delegate_state.h"
#include "delegate/lr_from_weights.h"
#include "delegate/partition_kernel.h"
#include "delegate/pattern_conv.h"

namespace cocopie {

DelegateState::DelegateState(const CocopieDelegateOptions& options)
    : options_(options) {
  delegate_.data_ = this;
  delegate_.flags = kTfLiteDelegateFlagsAllowDynamicTensors;
}

DelegateState::~DelegateState() {
  if (pool_ != nullptr) pthreadpool_destroy(pool_);
}

pthreadpool_t DelegateState::ThreadPool(const TfLiteContext* context) {
  int threads = options_.num_threads;
  if (threads <= 0) threads = context->recommended_num_threads;
  if (threads <= 0) threads = 1;
  if (threads != pool_threads_ || (threads > 1 && pool_ == nullptr)) {
    if (pool_ != nullptr) pthreadpool_destroy(pool_);
    pool_ = threads > 1 ? pthreadpool_create(threads) : nullptr;
    pool_threads_ = threads;
  }
  return pool_;
}

void DelegateState::ReportOnce(const std::string& message) {
  if (reported_.insert(message).second) {
    std::fprintf(stderr, "cocopie delegate: %s\n", message.c_str());
  }
}

namespace {

// Reads and parses the LR; false when the model has none or it is unusable.
// A runtime that cannot give delegates the model's metadata (no
// GetModelMetadata, or a TfLiteContext too old to have one) is not a reason
// to give up: the patterns are then derived from the weights, which
// CheckConvNode verifies the same way as an LR read from the file.
bool LoadLr(TfLiteContext* context, DelegateState* state) {
  std::string unreachable;
  if (!ModelMetadataReachable(context, &unreachable)) {
    std::string summary;
    const bool derived = LrFromModelWeights(context, &state->lr(), &summary);
    state->ReportOnce(unreachable + "; " + summary +
                      (derived ? "" : "; no node delegated"));
    return derived;
  }
  const char* data = nullptr;
  size_t bytes = 0;
  if (context->GetModelMetadata(context, kLrMetadataName, &data, &bytes) !=
      kTfLiteOk) {
    if (state->options().verbose) {
      state->ReportOnce("model has no cocopie LR; no node delegated");
    }
    return false;
  }
  std::string error;
  if (!ParseLayerwiseRepresentation(reinterpret_cast<const uint8_t*>(data),
                                    bytes, &state->lr(), &error)) {
    state->ReportOnce("ignoring the model's LR: " + error);
    return false;
  }
  return true;
}

TfLiteStatus DelegatePrepare(TfLiteContext* context, TfLiteDelegate* delegate) {
  DelegateState* state = DelegateState::From(delegate);
  state->set_claimed_nodes(0);
  if (!LoadLr(context, state)) return kTfLiteOk;

  TfLiteIntArray* plan = nullptr;
  if (context->GetExecutionPlan(context, &plan) != kTfLiteOk) return kTfLiteError;
  std::vector<int> claimed;
  int described = 0;
  for (int i = 0; i < plan->size; ++i) {
    const int node_index = plan->data[i];
    TfLiteNode* node;
    TfLiteRegistration* registration;
    if (context->GetNodeAndRegistration(context, node_index, &node,
                                        &registration) != kTfLiteOk) {
      return kTfLiteError;
    }
    const LrLayer* layer = state->lr().FindByOp(node_index);
    if (layer == nullptr) continue;
    ++described;
    if (registration->builtin_code != kTfLiteBuiltinConv2d) {
      state->ReportOnce("node " + std::to_string(node_index) +
                        " is not a CONV_2D but the LR describes it; left to "
                        "stock kernels");
      continue;
    }
    const std::string reason = CheckConvNode(context, node, *layer);
    if (!reason.empty()) {
      state->ReportOnce("node " + std::to_string(node_index) +
                        " (CONV_2D) left to stock kernels: " + reason);
      continue;
    }
    claimed.push_back(node_index);
  }
  if (state->options().verbose) {
    state->ReportOnce("claimed " + std::to_string(claimed.size()) + " of " +
                      std::to_string(described) + " CONV_2D nodes in the LR (" +
                      PatternConvSimdTarget() + " kernels)");
  }
  if (claimed.empty()) return kTfLiteOk;
  state->set_claimed_nodes(static_cast<int>(claimed.size()));

  // The runtime copies the array's contents; build it on the heap because
  // TfLiteIntArray has a flexible member.
  std::vector<int> storage(1 + claimed.size());
  auto* nodes = reinterpret_cast<TfLiteIntArray*>(storage.data());
  nodes->size = static_cast<int>(claimed.size());
  for (size_t i = 0; i < claimed.size(); ++i) nodes->data[i] = claimed[i];
  return context->ReplaceNodeSubsetsWithDelegateKernels(
      context, PartitionKernelRegistration(), nodes, delegate);
}

}  // namespace
}  // namespace cocopie

extern "C" {

CocopieDelegateOptions CocopieDelegateOptionsDefault(void) {
  CocopieDelegateOptions options;
  options.num_threads = 0;
  options.kernel = kCocopieKernelAuto;
  options.verbose = 0;
  return options;
}

TfLiteDelegate* CocopieDelegateCreate(const CocopieDelegateOptions* options) {
  const CocopieDelegateOptions chosen =
      options != nullptr ? *options : CocopieDelegateOptionsDefault();
  if (chosen.num_threads < 0 || chosen.kernel < kCocopieKernelAuto ||
      chosen.kernel > kCocopieKernelBlock) {
    return nullptr;
  }
  auto* state = new (std::nothrow) cocopie::DelegateState(chosen);
  if (state == nullptr) return nullptr;
  state->delegate()->Prepare = cocopie::DelegatePrepare;
  return state->delegate();
}

void CocopieDelegateDelete(TfLiteDelegate* delegate) {
  if (delegate != nullptr) delete cocopie::DelegateState::From(delegate);
}

int CocopieDelegateClaimedNodes(const TfLiteDelegate* delegate) {
  if (delegate == nullptr) return -1;
  return cocopie::DelegateState::From(delegate)->claimed_nodes();
}

const char* CocopieDelegateSimdTarget(void) {
  return cocopie::PatternConvSimdTarget();
}

}  // extern "C"
