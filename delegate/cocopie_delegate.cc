// The delegate: reads the LR from the model's metadata, claims the CONV_2D
// and DEPTHWISE_CONV_2D nodes it describes whose weights agree with it (their
// handlers decide: node_handlers.h), joins the simple ops between them
// (graph_pass.h), and hands each connected group to a PartitionKernel.
#include "delegate/cocopie_delegate.h"

#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <new>
#include <vector>

#include "delegate/abi/c_boundary.h"
#include "delegate/graph/conv_node.h"
#include "delegate/graph/delegate_state.h"
#include "delegate/graph/graph_pass.h"
#include "delegate/graph/kernel_tuning_search.h"
#include "delegate/graph/lr_from_weights.h"
#include "delegate/graph/node_handlers.h"
#include "delegate/graph/partition_kernel.h"
#include "delegate/kernels/pattern_conv.h"
#include "delegate/kernels/pattern_dwconv.h"
#include "delegate/kernels/simd_target.h"

namespace cocopie {
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

// The nodes the LR describes that may run here, each filter feed (DENSIFY,
// CocopiePackedFilter) of one of them right after it (see FindFilterFeeds).
struct Claim {
  std::vector<int> nodes;
  int convolutions = 0;
  int described = 0;
};

// Asks each described node's handler whether it may be claimed; a refused
// node is reported once and left to the stock kernels.
TfLiteStatus ClaimDescribedNodes(TfLiteContext* context, DelegateState* state,
                                 const TfLiteIntArray* plan,
                                 const std::map<int, FilterFeed>& feeds, Claim* claim) {
  state->sparse_filters().clear();
  for (int i = 0; i < plan->size; ++i) {
    NodeQuery query;
    query.context = context;
    query.node_index = plan->data[i];
    TfLiteNode* node;
    TfLiteRegistration* registration;
    if (context->GetNodeAndRegistration(context, query.node_index, &node, &registration) !=
        kTfLiteOk) {
      return kTfLiteError;
    }
    query.node = node;
    query.builtin_code = registration->builtin_code;
    query.layer = state->lr().FindByOp(query.node_index);
    if (query.layer == nullptr) continue;
    ++claim->described;
    const std::string where = "node " + std::to_string(query.node_index);
    const NodeHandler* handler = FindNodeHandler(query.builtin_code);
    if (handler == nullptr || !handler->described_by_lr) {
      state->ReportOnce(where + " is not a CONV_2D, DEPTHWISE_CONV_2D or FULLY_CONNECTED but "
                        "the LR describes it; left to stock kernels");
      continue;
    }
    const std::string kind = std::string(" (") + handler->op_name + ")";
    const FilterFeed* feed = nullptr;
    if (node->inputs != nullptr && node->inputs->size >= 2) {
      auto found = feeds.find(node->inputs->data[1]);
      if (found != feeds.end()) feed = &found->second;
    }
    // A packed filter exists only for the delegate: the stock kernels could
    // not read it, so a stored preference for them does not apply.
    const bool delegate_only = feed != nullptr && feed->packed;
    if (!delegate_only && StockPreferredByLr(state, *query.layer, query.node_index)) continue;
    const std::string refused = delegate_only
        ? " cannot run (its filter is stored for the cocopie delegate only): "
        : " left to stock kernels: ";
    if (feed != nullptr) {
      query.sparse_filter = ContextTensor(context, feed->sparse_tensor);
      if (query.sparse_filter == nullptr) {
        state->ReportOnce(where + kind + refused + "filter feed input out of range");
        continue;
      }
    }
    const std::string reason = handler->check(query);
    if (!reason.empty()) {
      state->ReportOnce(where + kind + refused + reason);
      continue;
    }
    claim->nodes.push_back(query.node_index);
    ++claim->convolutions;
    if (feed != nullptr) {
      claim->nodes.push_back(feed->feed_node);
      state->sparse_filters()[query.node_index] = feed->sparse_tensor;
    }
  }
  return kTfLiteOk;
}

TfLiteStatus DelegatePrepareUnguarded(TfLiteContext* context, TfLiteDelegate* delegate) {
  DelegateState* state = DelegateState::From(delegate);
  // Another interpreter sharing this delegate may be prepared at the same
  // time; the kernels built below take their own reference to this LR.
  std::lock_guard<std::mutex> lock(state->mutex());
  state->ResetLr();
  state->set_claimed_nodes(0);
  state->node_tunings().clear();
  if (!LoadLr(context, state)) return kTfLiteOk;

  TfLiteIntArray* plan = nullptr;
  if (context->GetExecutionPlan(context, &plan) != kTfLiteOk) return kTfLiteError;
  if (UndoEarlierDelegation(context, delegate, plan, state->lr()) != kTfLiteOk) {
    return kTfLiteError;
  }
  std::map<int, FilterFeed> feeds;
  if (FindFilterFeeds(context, plan, &feeds) != kTfLiteOk) return kTfLiteError;
  Claim claim;
  if (ClaimDescribedNodes(context, state, plan, feeds, &claim) != kTfLiteOk) {
    return kTfLiteError;
  }
  if (state->options().verbose) {
    state->ReportOnce("claimed " + std::to_string(claim.convolutions) + " of " +
                      std::to_string(claim.described) +
                      " convolution nodes in the LR (" + PatternConvSimdTarget() +
                      " kernels; depthwise " + DepthwiseConvKernelName() + ")");
  }
  if (claim.nodes.empty()) return kTfLiteOk;
  state->set_claimed_nodes(claim.convolutions);
  const std::vector<int> joining = ConnectingSimpleOps(context, plan, claim.nodes);
  std::vector<int> claimed = claim.nodes;
  claimed.insert(claimed.end(), joining.begin(), joining.end());
  if (state->options().verbose && !joining.empty()) {
    state->ReportOnce("also running " + std::to_string(joining.size()) +
                      " ADD / MAX_POOL_2D / PAD nodes between them");
  }
  // The runtime copies the array's contents; build it on the heap because
  // TfLiteIntArray has a flexible member.
  std::vector<int> storage(1 + claimed.size());
  auto* nodes = reinterpret_cast<TfLiteIntArray*>(storage.data());
  nodes->size = static_cast<int>(claimed.size());
  for (size_t i = 0; i < claimed.size(); ++i) nodes->data[i] = claimed[i];
  return context->ReplaceNodeSubsetsWithDelegateKernels(
      context, PartitionKernelRegistration(), nodes, delegate);
}

TfLiteStatus DelegatePrepare(TfLiteContext* context, TfLiteDelegate* delegate) {
  return GuardStatus(context, "Prepare",
                     [&] { return DelegatePrepareUnguarded(context, delegate); });
}

}  // namespace
}  // namespace cocopie

extern "C" {

CocopieDelegateOptions CocopieDelegateOptionsDefault(void) {
  CocopieDelegateOptions options;
  options.num_threads = 0;
  options.kernel = kCocopieKernelAuto;
  options.verbose = 0;
  options.tuning = kCocopieTuningCache;
  options.tuning_cache = nullptr;
  return options;
}

TfLiteDelegate* CocopieDelegateCreate(const CocopieDelegateOptions* options) {
  const CocopieDelegateOptions chosen =
      options != nullptr ? *options : CocopieDelegateOptionsDefault();
  // Before any weights are packed for a target (simd_target.h).
  if (*CocopieDelegateSimdTargetError() != '\0') return nullptr;
  if (chosen.num_threads < 0 || chosen.kernel < kCocopieKernelAuto ||
      chosen.kernel > kCocopieKernelBlock || chosen.tuning < kCocopieTuningCache ||
      chosen.tuning > kCocopieTuningRetune) {
    return nullptr;
  }
  return cocopie::GuardValue<TfLiteDelegate*>(nullptr, [&]() -> TfLiteDelegate* {
    auto* state = new cocopie::DelegateState(chosen);
    state->delegate()->Prepare = cocopie::DelegatePrepare;
    return state->delegate();
  });
}

void CocopieDelegateDelete(TfLiteDelegate* delegate) {
  if (delegate == nullptr) return;
  cocopie::GuardValue(0, [&] {
    delete cocopie::DelegateState::From(delegate);
    return 0;
  });
}

int CocopieDelegateClaimedNodes(const TfLiteDelegate* delegate) {
  if (delegate == nullptr) return -1;
  return cocopie::DelegateState::From(delegate)->claimed_nodes();
}

const char* CocopieDelegateSimdTarget(void) {
  CocopieDelegateSimdTargetError();  // the choice is made on the first call
  return cocopie::PatternConvSimdTarget();
}

const char* CocopieDelegateSimdTargetError(void) {
  return cocopie::GuardValue<const char*>("could not choose the SIMD target", [] {
    return cocopie::SelectSimdTarget().c_str();
  });
}

int CocopieDelegatePreferredChannelBlock(void) {
  CocopieDelegateSimdTargetError();  // the block follows the chosen target
  return cocopie::PreferredChannelBlock();
}

}  // extern "C"
