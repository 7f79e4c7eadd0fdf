#include "delegate/graph/graph_pass.h"

#include <set>
#include <string>

#include "delegate/graph/conv_node.h"
#include "delegate/graph/node_handlers.h"
#include "delegate/graph/partition_step.h"
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

}  // namespace

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
    if (ResizeTensorTo(context, node->outputs->data[0], sparse->dims->data,
                       sparse->dims->size) != kTfLiteOk) {
      return kTfLiteError;
    }
  }
  return kTfLiteOk;
}

TfLiteStatus FindDensifyFeeds(TfLiteContext* context, const TfLiteIntArray* plan,
                              std::map<int, DensifyFeed>* feeds) {
  feeds->clear();
  std::map<int, DensifyFeed> densify_of_tensor;  // dense output -> its DENSIFY
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
    if (registration->builtin_code == kTfLiteBuiltinDensify && node->inputs != nullptr &&
        node->inputs->size == 1 && node->outputs != nullptr && node->outputs->size == 1) {
      if (CheckDensifySource(context, plan->data[i], node) != kTfLiteOk) return kTfLiteError;
      densify_of_tensor[node->outputs->data[0]] = {plan->data[i], node->inputs->data[0]};
    }
  }
  for (const auto& [tensor, feed] : densify_of_tensor) {
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
