// The operator kinds the delegate runs, one handler each: whether a node of
// that kind may be claimed (check) and the step that runs it inside a
// partition (create). DelegatePrepare asks `check`, the partition kernel
// calls `create`; adding an operator kind means adding a row to the table in
// node_handlers.cc and its *_node.cc file, nothing else.
#ifndef COCOPIE_DELEGATE_GRAPH_NODE_HANDLERS_H_
#define COCOPIE_DELEGATE_GRAPH_NODE_HANDLERS_H_

#include <memory>
#include <string>

#include "delegate/graph/partition_step.h"
#include "delegate/abi/tflite_abi.h"

namespace cocopie {

struct LrLayer;

// One node, with what the graph pass found about it.
struct NodeQuery {
  TfLiteContext* context = nullptr;
  int node_index = -1;
  const TfLiteNode* node = nullptr;
  int builtin_code = -1;
  // The LR layer describing the node (convolutions only; null otherwise).
  const LrLayer* layer = nullptr;
  // The sparse constant a DENSIFY node expands into the filter, or null.
  const TfLiteTensor* sparse_filter = nullptr;
};

struct NodeHandler {
  int builtin_code;
  const char* op_name;
  // Convolutions are claimed where the LR describes them; the other kinds
  // only join partitions between claimed convolutions (graph_pass.h).
  bool described_by_lr;
  // Empty when the node may be claimed; otherwise why it stays with the
  // stock kernels.
  std::string (*check)(const NodeQuery& query);
  // The step for a node that passed `check` with the same query.
  std::unique_ptr<PartitionStep> (*create)(const NodeQuery& query, const DelegateState& state);
};

// The handler of `builtin_code`, or null when the delegate never runs it.
const NodeHandler* FindNodeHandler(int builtin_code);

}  // namespace cocopie

#endif  // COCOPIE_DELEGATE_GRAPH_NODE_HANDLERS_H_
