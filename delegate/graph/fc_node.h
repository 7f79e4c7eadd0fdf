// FULLY_CONNECTED nodes whose weights connectivity pruning thinned: the LR
// describes such a layer as a 1x1 convolution (out x in weights, each kept
// or removed), and the delegate runs it with the sparse kernel
// (kernels/sparse_fc.h), reading only the kept weights.
#ifndef COCOPIE_DELEGATE_GRAPH_FC_NODE_H_
#define COCOPIE_DELEGATE_GRAPH_FC_NODE_H_

#include <memory>
#include <string>

#include "delegate/abi/tflite_abi.h"
#include "delegate/graph/partition_step.h"
#include "delegate/lr/lr_format.h"

namespace cocopie {

// Empty when `node` is a float32 FULLY_CONNECTED that `layer` describes,
// with constant (out, in) weights that are zero wherever the layer removes
// them and large enough for the sparse kernel to win (12 MiB dense: smaller
// ones stay in cache, where the stock GEMV is faster), the default weights
// format, a supported fused activation and no or a constant float32 bias;
// otherwise why it stays with the stock kernels.
std::string CheckFullyConnectedNode(TfLiteContext* context, const TfLiteNode* node,
                                    const LrLayer& layer);

// The step running a node that passed CheckFullyConnectedNode.
std::unique_ptr<PartitionStep> CreateFullyConnectedPartitionStep(TfLiteContext* context,
                                                                 int node_index,
                                                                 const TfLiteNode* node,
                                                                 const LrLayer& layer);

}  // namespace cocopie

#endif  // COCOPIE_DELEGATE_GRAPH_FC_NODE_H_
