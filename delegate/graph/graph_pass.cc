#include "delegate/graph/graph_pass.h"

#include <cstring>
#include <set>
#include <string>

#include "delegate/graph/conv_node.h"
#include "delegate/graph/node_handlers.h"
#include "delegate/graph/partition_step.h"
#include "delegate/lr/packed_values.h"
#include "delegate/lr/sparse_weights.h"

namespace cocopie {
namespace {

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

bool IsPackedFilterNode(const TfLiteRegistration& registration) {
  return registration.builtin_code == kTfLiteBuiltinCustom && registration.custom_name != nullptr &&
         std::strcmp(registration.custom_name, kPackedFilterOpName) == 0;
}

// The filter shape an emptied feed output had: the sparse constant's dims
// for DENSIFY, the LR layer's (out, kh, kw, in) for a packed filter.
bool FeedOutputDims(const TfLiteRegistration& registration, const TfLiteTensor& source,
                    int output, const LayerwiseRepresentation& lr, std::vector<int>* dims) {
  if (!IsPackedFilterNode(registration)) {
    if (source.dims == nullptr) return false;
    dims->assign(source.dims->data, source.dims->data + source.dims->size);
    return true;
  }
  for (const LrLayer& layer : lr.layers) {
    if (static_cast<int>(layer.filter_tensor) == output) {
      *dims = {layer.out_channels, layer.kernel_h, layer.kernel_w, layer.in_channels};
      return true;
    }
  }
  return false;
}

}  // namespace

bool IsFilterFeedNode(const TfLiteRegistration& registration) {
  return registration.builtin_code == kTfLiteBuiltinDensify || IsPackedFilterNode(registration);
}

// A runtime may undo delegation and call Prepare again on the original graph
// (tflite-runtime 2.14 does after an input resize). What the earlier
// application left must not change the answer. Tensors still marked as ours
// are unmarked: the runtime marks the outputs of the partitions claimed now
// again, and one whose node is refused now would otherwise stay ours and
// make the next delegate's claim fail. The output of a filter feed that our
// kernel emptied (partition_kernel.cc) gets the filter's shape back, so its
// convolution is judged on it.
TfLiteStatus UndoEarlierDelegation(TfLiteContext* context, TfLiteDelegate* delegate,
                                   const TfLiteIntArray* plan,
                                   const LayerwiseRepresentation& lr) {
  for (size_t t = 0; t < context->tensors_size; ++t) {
    if (context->tensors[t].delegate == delegate) context->tensors[t].delegate = nullptr;
  }
  for (int i = 0; i < plan->size; ++i) {
    TfLiteNode* node;
    TfLiteRegistration* registration;
    if (context->GetNodeAndRegistration(context, plan->data[i], &node, &registration) !=
            kTfLiteOk ||
        !IsFilterFeedNode(*registration) || node->inputs == nullptr ||
        node->inputs->size != 1 || node->outputs == nullptr || node->outputs->size != 1) {
      continue;
    }
    const TfLiteTensor* source = ContextTensor(context, node->inputs->data[0]);
    TfLiteTensor* dense = ContextTensor(context, node->outputs->data[0]);
    const bool emptied = dense != nullptr && dense->dims != nullptr && dense->dims->size == 1 &&
                         dense->dims->data[0] == 0;
    std::vector<int> dims;
    if (!emptied || source == nullptr || !IsConstantTensor(source) ||
        !FeedOutputDims(*registration, *source, node->outputs->data[0], lr, &dims)) {
      continue;
    }
    if (ResizeTensorTo(context, node->outputs->data[0], dims.data(),
                       static_cast<int>(dims.size())) != kTfLiteOk) {
      return kTfLiteError;
    }
  }
  return kTfLiteOk;
}

TfLiteStatus FindFilterFeeds(TfLiteContext* context, const TfLiteIntArray* plan,
                             std::map<int, FilterFeed>* feeds) {
  feeds->clear();
  std::map<int, FilterFeed> feed_of_tensor;  // filter tensor -> the node writing it
  std::vector<int> consumers(context->tensors_size, 0);
  for (int i = 0; i < plan->size; ++i) {
    TfLiteNode* node;
    TfLiteRegistration* registration;
    if (context->GetNodeAndRegistration(context, plan->data[i], &node, &registration) !=
        kTfLiteOk) {
      return kTfLiteError;
    }
    for (int k = 0; node->inputs != nullptr && k < node->inputs->size; ++k) {
      const int t = node->inputs->data[k];
      if (t >= 0 && static_cast<size_t>(t) < context->tensors_size) ++consumers[t];
    }
    if (IsFilterFeedNode(*registration) && node->inputs != nullptr &&
        node->inputs->size == 1 && node->outputs != nullptr && node->outputs->size == 1) {
      const bool packed = IsPackedFilterNode(*registration);
      if (!packed && CheckDensifySource(context, plan->data[i], node) != kTfLiteOk) {
        return kTfLiteError;
      }
      feed_of_tensor[node->outputs->data[0]] = {plan->data[i], node->inputs->data[0], packed};
    }
  }
  for (const auto& [tensor, feed] : feed_of_tensor) {
    // A hostile file may name any output tensor: count only real ones.
    if (tensor >= 0 && static_cast<size_t>(tensor) < consumers.size() &&
        consumers[tensor] == 1) {
      (*feeds)[tensor] = feed;
    }
  }
  return kTfLiteOk;
}

std::vector<int> ConnectingSimpleOps(TfLiteContext* context, const TfLiteIntArray* plan,
                                     const std::vector<int>& claimed) {
  const std::set<int> taken(claimed.begin(), claimed.end());
  std::map<int, int> producer;                // tensor -> node
  std::map<int, std::vector<int>> readers;    // tensor -> nodes
  std::map<int, const TfLiteNode*> candidates;  // checked simple ops
  for (int i = 0; i < plan->size; ++i) {
    TfLiteNode* node;
    TfLiteRegistration* registration;
    if (context->GetNodeAndRegistration(context, plan->data[i], &node, &registration) !=
        kTfLiteOk) {
      return {};
    }
    for (int k = 0; node->outputs != nullptr && k < node->outputs->size; ++k) {
      producer[node->outputs->data[k]] = plan->data[i];
    }
    for (int k = 0; node->inputs != nullptr && k < node->inputs->size; ++k) {
      readers[node->inputs->data[k]].push_back(plan->data[i]);
    }
    const NodeHandler* handler = FindNodeHandler(registration->builtin_code);
    if (taken.count(plan->data[i]) || handler == nullptr || handler->described_by_lr) continue;
    NodeQuery query;
    query.context = context;
    query.node_index = plan->data[i];
    query.node = node;
    query.builtin_code = registration->builtin_code;
    if (handler->check(query).empty()) candidates[plan->data[i]] = node;
  }
  // Forward: candidates reachable from a claimed node through candidates.
  std::set<int> forward;
  bool grew = true;
  while (grew) {
    grew = false;
    for (const auto& [index, node] : candidates) {
      if (forward.count(index)) continue;
      for (int k = 0; k < node->inputs->size; ++k) {
        auto p = producer.find(node->inputs->data[k]);
        if (p != producer.end() && (taken.count(p->second) || forward.count(p->second))) {
          forward.insert(index);
          grew = true;
          break;
        }
      }
    }
  }
  // Backward: those of them from which a claimed node is reachable.
  std::set<int> both;
  grew = true;
  while (grew) {
    grew = false;
    for (int index : forward) {
      if (both.count(index)) continue;
      for (int reader : readers[candidates[index]->outputs->data[0]]) {
        if (taken.count(reader) || both.count(reader)) {
          both.insert(index);
          grew = true;
          break;
        }
      }
    }
  }
  return std::vector<int>(both.begin(), both.end());
}

}  // namespace cocopie
