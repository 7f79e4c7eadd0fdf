// ADD, MAX_POOL_2D and PAD nodes the delegate runs between its convolutions
// (see simple_ops.h for why): which ones it may take, and the step the
// partition kernel executes for each.
#ifndef COCOPIE_DELEGATE_GRAPH_SIMPLE_OP_NODES_H_
#define COCOPIE_DELEGATE_GRAPH_SIMPLE_OP_NODES_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "delegate/graph/partition_step.h"
#include "delegate/kernels/simple_ops.h"
#include "delegate/abi/tflite_abi.h"

namespace cocopie {

// Empty when the node is a float32 NHWC ADD (same shapes, no broadcasting),
// MAX_POOL_2D, or PAD of H and W only with constant paddings, each with a
// fused activation we support; otherwise why not.
std::string CheckSimpleOpNode(TfLiteContext* context, const TfLiteNode* node,
                              int builtin_code);

struct SimpleOpStep {
  int node_index = -1;
  int builtin_code = -1;
  std::vector<int> inputs;  // activation tensors (2 for ADD, else 1)
  int output_tensor = -1;
  float act_min = -3.402823466e+38f, act_max = 3.402823466e+38f;  // ADD
  int64_t elements = 0;           // ADD, set at prepare
  bool same_padding = false;      // MAX_POOL_2D
  PoolGeometry pool;              // MAX_POOL_2D, sizes set at prepare
  PadGeometry pad;                // PAD, sizes set at prepare
};

// The step for a node that passed CheckSimpleOpNode.
SimpleOpStep MakeSimpleOpStep(TfLiteContext* context, int node_index,
                              const TfLiteNode* node, int builtin_code);

// Sets the step's geometry from its inputs' NHWC dims and writes the output
// dims; false (with *error) when they do not fit the operator.
bool PrepareSimpleOp(SimpleOpStep* step, const std::vector<const int*>& input_dims,
                     int out_dims[4], std::string* error);

// `release_workers`: as for the convolution kernels (pattern_conv.h).
void RunSimpleOp(const SimpleOpStep& step, const std::vector<const float*>& inputs,
                 float* output, pthreadpool_t pool, bool release_workers);

// The partition step running a node that passed CheckSimpleOpNode.
std::unique_ptr<PartitionStep> CreateSimpleOpPartitionStep(TfLiteContext* context,
                                                           int node_index,
                                                           const TfLiteNode* node,
                                                           int builtin_code);

}  // namespace cocopie

#endif  // COCOPIE_DELEGATE_GRAPH_SIMPLE_OP_NODES_H_
