#include "delegate/graph/node_handlers.h"

#include "delegate/graph/conv_node.h"
#include "delegate/graph/delegate_state.h"
#include "delegate/graph/dwconv_node.h"
#include "delegate/graph/fc_node.h"
#include "delegate/graph/simple_op_nodes.h"

namespace cocopie {
namespace {

std::string CheckConv(const NodeQuery& q) {
  return CheckConvNode(q.context, q.node, *q.layer, q.sparse_filter);
}

std::unique_ptr<PartitionStep> CreateConv(const NodeQuery& q, const DelegateState& state) {
  return CreateConvPartitionStep(q.context, q.node_index, q.node, *q.layer, q.sparse_filter,
                                 state.options().kernel);
}

std::string CheckDepthwise(const NodeQuery& q) {
  return CheckDepthwiseNode(q.context, q.node, *q.layer, q.sparse_filter);
}

std::unique_ptr<PartitionStep> CreateDepthwise(const NodeQuery& q, const DelegateState&) {
  return CreateDepthwisePartitionStep(q.context, q.node_index, q.node, *q.layer,
                                      q.sparse_filter);
}

std::string CheckFullyConnected(const NodeQuery& q) {
  return CheckFullyConnectedNode(q.context, q.node, *q.layer);
}

std::unique_ptr<PartitionStep> CreateFullyConnected(const NodeQuery& q, const DelegateState&) {
  return CreateFullyConnectedPartitionStep(q.context, q.node_index, q.node, *q.layer);
}

std::string CheckSimpleOp(const NodeQuery& q) {
  return CheckSimpleOpNode(q.context, q.node, q.builtin_code);
}

std::unique_ptr<PartitionStep> CreateSimpleOp(const NodeQuery& q, const DelegateState&) {
  return CreateSimpleOpPartitionStep(q.context, q.node_index, q.node, q.builtin_code);
}

// A depthwise layer is in the LR as C output channels of 1 input channel
// each, a fully connected one as a 1x1 convolution; the node's builtin code
// is what tells them apart.
constexpr NodeHandler kHandlers[] = {
    {kTfLiteBuiltinConv2d, "CONV_2D", true, CheckConv, CreateConv},
    {kTfLiteBuiltinDepthwiseConv2d, "DEPTHWISE_CONV_2D", true, CheckDepthwise,
     CreateDepthwise},
    {kTfLiteBuiltinFullyConnected, "FULLY_CONNECTED", true, CheckFullyConnected,
     CreateFullyConnected},
    {kTfLiteBuiltinAdd, "ADD", false, CheckSimpleOp, CreateSimpleOp},
    {kTfLiteBuiltinMaxPool2d, "MAX_POOL_2D", false, CheckSimpleOp, CreateSimpleOp},
    {kTfLiteBuiltinPad, "PAD", false, CheckSimpleOp, CreateSimpleOp},
};

}  // namespace

const NodeHandler* FindNodeHandler(int builtin_code) {
  for (const NodeHandler& handler : kHandlers) {
    if (handler.builtin_code == builtin_code) return &handler;
  }
  return nullptr;
}

}  // namespace cocopie
