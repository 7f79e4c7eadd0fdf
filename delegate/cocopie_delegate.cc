// The delegate: reads the LR from the model's metadata, claims the CONV_2D
// and DEPTHWISE_CONV_2D nodes it describes whose weights agree with it, and
// hands each connected group of them to a PartitionKernel.
#include "delegate/cocopie_delegate.h"

#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <new>
#include <vector>

#include "delegate/c_boundary.h"
#include "delegate/conv_node.h"
#include "delegate/delegate_state.h"
#include "delegate/dwconv_node.h"
#include "delegate/lr_from_weights.h"
#include "delegate/partition_kernel.h"
#include "delegate/simple_op_nodes.h"
#include "delegate/sparse_weights.h"
#include "delegate/pattern_conv.h"

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

// A runtime may undo delegation and call Prepare again on the original graph
// (tflite-runtime 2.14 does after an input resize). What the earlier
// application left must not change the answer. Tensors still marked as ours
// are unmarked: the runtime marks the outputs of the partitions claimed now
// again, and one whose node is refused now would otherwise stay ours and
// make the next delegate's claim fail. The dense output of a DENSIFY that
// our kernel emptied (partition_kernel.cc) gets the filter's shape back
// (the sparse constant's dims), so its convolution is judged on it.
TfLiteStatus UndoEarlierDelegation(TfLiteContext* context, TfLiteDelegate* delegate,
                                   const TfLiteIntArray* plan) {
  for (size_t t = 0; t < context->tensors_size; ++t) {
    if (context->tensors[t].delegate == delegate) context->tensors[t].delegate = nullptr;
  }
  for (int i = 0; i < plan->size; ++i) {
    TfLiteNode* node;
    TfLiteRegistration* registration;
    if (context->GetNodeAndRegistration(context, plan->data[i], &node, &registration) !=
            kTfLiteOk ||
        registration->builtin_code != kTfLiteBuiltinDensify || node->inputs == nullptr ||
        node->inputs->size != 1 || node->outputs == nullptr || node->outputs->size != 1) {
      continue;
    }
    const TfLiteTensor* sparse = ContextTensor(context, node->inputs->data[0]);
    TfLiteTensor* dense = ContextTensor(context, node->outputs->data[0]);
    const bool emptied = dense != nullptr && dense->dims != nullptr && dense->dims->size == 1 &&
                         dense->dims->data[0] == 0;
    if (!emptied || sparse == nullptr || !IsConstantTensor(sparse) || sparse->dims == nullptr) {
      continue;
    }
    const int rank = sparse->dims->size;
    // ResizeTensor takes ownership and frees with free().
    auto* shape = static_cast<TfLiteIntArray*>(
        std::malloc(sizeof(TfLiteIntArray) + rank * sizeof(int)));
    if (shape == nullptr) return kTfLiteError;
    shape->size = rank;
    for (int k = 0; k < rank; ++k) shape->data[k] = sparse->dims->data[k];
    if (context->ResizeTensor(context, dense, shape) != kTfLiteOk) return kTfLiteError;
  }
  return kTfLiteOk;
}

// A DENSIFY whose sparse constant our reader finds malformed: the runtime's
// own DENSIFY would read the same arrays out of bounds, so the model cannot
// run; say why and fail instead of leaving the node to it.
TfLiteStatus CheckDensifySource(TfLiteContext* context, int node_index,
                                const TfLiteNode* node) {
  const int source = node->inputs->data[0];
  const TfLiteTensor* sparse = ContextTensor(context, source);
  if (sparse == nullptr || sparse->sparsity == nullptr || !IsConstantTensor(sparse) ||
      sparse->type != kTfLiteFloat32) {
    return kTfLiteOk;
  }
  std::string error;
  if (CheckSparseFloatTensor(*sparse, &error) != SparseProblem::kMalformed) return kTfLiteOk;
  context->ReportError(context,
                       "cocopie delegate: DENSIFY node %d reads a malformed sparse "
                       "tensor %d (%s); the model cannot run",
                       node_index, source, error.c_str());
  return kTfLiteError;
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
  if (UndoEarlierDelegation(context, delegate, plan) != kTfLiteOk) return kTfLiteError;
  // Compact files feed pattern convolutions through DENSIFY nodes of sparse
  // constants (converter/compact.py). Such a node is claimed together with
  // its convolution when the convolution is its only consumer, so the dense
  // filter is never materialized.
  std::map<int, int> densify_of_tensor;  // dense output -> DENSIFY node
  std::vector<int> consumers(context->tensors_size, 0);
  for (int i = 0; i < plan->size; ++i) {
    TfLiteNode* node;
    TfLiteRegistration* registration;
    if (context->GetNodeAndRegistration(context, plan->data[i], &node,
                                        &registration) != kTfLiteOk) {
      return kTfLiteError;
    }
    for (int k = 0; node->inputs != nullptr && k < node->inputs->size; ++k) {
      const int t = node->inputs->data[k];
      if (t >= 0 && static_cast<size_t>(t) < context->tensors_size) ++consumers[t];
    }
    if (registration->builtin_code == kTfLiteBuiltinDensify &&
        node->inputs != nullptr && node->inputs->size == 1 &&
        node->outputs != nullptr && node->outputs->size == 1) {
      densify_of_tensor[node->outputs->data[0]] = plan->data[i];
      if (CheckDensifySource(context, plan->data[i], node) != kTfLiteOk) {
        return kTfLiteError;
      }
    }
  }
  state->sparse_filters().clear();
  std::vector<int> claimed;
  int claimed_convs = 0;
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
    // A depthwise layer is in the LR as C output channels of 1 input
    // channel each; the node's builtin code tells the two kinds apart.
    const bool depthwise = registration->builtin_code == kTfLiteBuiltinDepthwiseConv2d;
    if (registration->builtin_code != kTfLiteBuiltinConv2d && !depthwise) {
      state->ReportOnce("node " + std::to_string(node_index) +
                        " is not a CONV_2D or DEPTHWISE_CONV_2D but the LR "
                        "describes it; left to stock kernels");
      continue;
    }
    const std::string kind = depthwise ? " (DEPTHWISE_CONV_2D)" : " (CONV_2D)";
    const TfLiteTensor* sparse_filter = nullptr;
    int densify_node = -1, sparse_index = -1;
    if (node->inputs != nullptr && node->inputs->size >= 2) {
      const int filter = node->inputs->data[1];
      auto densify = densify_of_tensor.find(filter);
      if (densify != densify_of_tensor.end() && filter >= 0 &&
          consumers[filter] == 1) {
        TfLiteNode* unpack;
        TfLiteRegistration* unused;
        if (context->GetNodeAndRegistration(context, densify->second, &unpack,
                                            &unused) != kTfLiteOk) {
          return kTfLiteError;
        }
        densify_node = densify->second;
        sparse_index = unpack->inputs->data[0];
        sparse_filter = ContextTensor(context, sparse_index);
        if (sparse_filter == nullptr) {
          state->ReportOnce("node " + std::to_string(node_index) + kind +
                            " left to stock kernels: DENSIFY input out of range");
          continue;
        }
      }
    }
    const std::string reason =
        depthwise ? CheckDepthwiseNode(context, node, *layer, sparse_filter)
                  : CheckConvNode(context, node, *layer, sparse_filter);
    if (!reason.empty()) {
      state->ReportOnce("node " + std::to_string(node_index) + kind +
                        " left to stock kernels: " + reason);
      continue;
    }
    claimed.push_back(node_index);
    ++claimed_convs;
    if (densify_node >= 0) {
      claimed.push_back(densify_node);
      state->sparse_filters()[node_index] = sparse_index;
    }
  }
  if (state->options().verbose) {
    state->ReportOnce("claimed " + std::to_string(claimed_convs) + " of " +
                      std::to_string(described) +
                      " convolution nodes in the LR (" + PatternConvSimdTarget() +
                      " kernels; depthwise " + DepthwiseConvKernelName() + ")");
  }
  if (claimed.empty()) return kTfLiteOk;
  state->set_claimed_nodes(claimed_convs);
  // ADD / MAX_POOL_2D / PAD between claimed nodes join their partitions.
  const std::vector<int> joining = ConnectingSimpleOps(context, plan, claimed);
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
  return cocopie::PatternConvSimdTarget();
}

int CocopieDelegatePreferredChannelBlock(void) {
  return cocopie::PreferredChannelBlock();
}

}  // extern "C"
