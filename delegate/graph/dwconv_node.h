// Deciding whether a DEPTHWISE_CONV_2D node may run on the delegate, and
// turning it into a DepthwiseStep the partition kernel executes.
//
// The LR describes such a node as a layer with out_channels = C (the
// filter's last dimension) and in_channels = 1, one pattern id per channel.
#ifndef COCOPIE_DELEGATE_GRAPH_DWCONV_NODE_H_
#define COCOPIE_DELEGATE_GRAPH_DWCONV_NODE_H_

#include <memory>
#include <string>

#include "delegate/graph/conv_node.h"
#include "delegate/lr/lr_format.h"
#include "delegate/graph/partition_step.h"
#include "delegate/kernels/pattern_dwconv.h"
#include "delegate/abi/tflite_abi.h"

namespace cocopie {

// Empty when `node` is a float32 DEPTHWISE_CONV_2D with depth multiplier 1
// and dilation 1 that `layer` describes, whose constant (1, kh, kw, C) filter
// obeys the layer's patterns exactly (every pruned weight is zero) and whose
// bias, if any, is a constant vector of C values; otherwise the reason it
// must stay with the stock kernels. `sparse_filter` is the sparse constant a
// DENSIFY node expands into the filter, or null for a constant filter.
std::string CheckDepthwiseNode(TfLiteContext* context, const TfLiteNode* node,
                               const LrLayer& layer,
                               const TfLiteTensor* sparse_filter = nullptr);

// One claimed depthwise convolution: weights packed at delegation time,
// geometry refreshed whenever the runtime re-prepares.
struct DepthwiseStep : ConvStepBase {
  PackedDepthwiseWeights weights;
  DepthwiseConvScratch scratch;
};

// Runs `step` on its current geometry: the scalar reference when
// `reference`, else the SIMD kernel on `pool` (`release_workers` as for
// PatternConvSimd).
void RunDepthwiseStep(DepthwiseStep* step, const float* input, float* output,
                      pthreadpool_t pool, bool reference, bool release_workers);

// The partition step running a node that passed CheckDepthwiseNode (with the
// same `sparse_filter`).
std::unique_ptr<PartitionStep> CreateDepthwisePartitionStep(TfLiteContext* context,
                                                            int node_index,
                                                            const TfLiteNode* node,
                                                            const LrLayer& layer,
                                                            const TfLiteTensor* sparse_filter);

}  // namespace cocopie

#endif  // COCOPIE_DELEGATE_GRAPH_DWCONV_NODE_H_
