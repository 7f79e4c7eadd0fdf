#include "delegate/graph/dwconv_node.h"

#include <cfloat>
#include <sstream>
#include <utility>
#include <vector>

#include "delegate/cocopie_delegate.h"
#include "delegate/graph/conv_node.h"
#include "delegate/graph/delegate_state.h"
#include "delegate/lr/sparse_weights.h"

namespace cocopie {
namespace {

// The first weight of the (1, kh, kw, C) filter that the layer's patterns
// prune but that is not zero, as a message; empty when there is none.
std::string FindDepthwiseViolation(const LrLayer& layer, const float* filter) {
  const int cells = layer.kernel_h * layer.kernel_w;
  const int channels = layer.out_channels;
  for (int c = 0; c < channels; ++c) {
    const uint8_t id = layer.PatternOf(c, 0);
    const uint32_t kept = id == kRemovedKernel ? 0u : layer.pattern_masks[id];
    for (int cell = 0; cell < cells; ++cell) {
      if (kept & (1u << cell)) continue;
      const float v = filter[static_cast<size_t>(cell) * channels + c];
      if (v == 0.0f) continue;
      std::ostringstream s;
      s << "weight [row " << cell / layer.kernel_w << ", col " << cell % layer.kernel_w
        << ", channel " << c << "] = " << v << " is non-zero but the LR "
        << (id == kRemovedKernel ? "removes that kernel"
                                 : "prunes that cell (pattern " + std::to_string(id) + ")");
      return s.str();
    }
  }
  return "";
}

}  // namespace

std::string CheckDepthwiseNode(TfLiteContext* context, const TfLiteNode* node,
                               const LrLayer& layer, const TfLiteTensor* sparse_filter) {
  const auto* params = static_cast<const TfLiteDepthwiseConvParams*>(node->builtin_data);
  if (params == nullptr) return "missing DEPTHWISE_CONV_2D parameters";
  if (params->stride_width < 1 || params->stride_height < 1) return "invalid stride";
  if (params->dilation_width_factor != 1 || params->dilation_height_factor != 1) {
    return "dilated depthwise convolutions are not delegated";
  }
  const std::string span = CheckStrideAndSpan(params->stride_height, params->stride_width,
                                              1, 1, layer.kernel_h, layer.kernel_w);
  if (!span.empty()) return span;
  // The schema's default is 0; TFLite derives the multiplier from the shapes
  // (checked below), so anything else is a file we do not understand.
  if (params->depth_multiplier != 0 && params->depth_multiplier != 1) {
    return "depth multiplier " + std::to_string(params->depth_multiplier) +
           " is not delegated";
  }
  if (layer.in_channels != 1) {
    return "the LR gives each kernel " + std::to_string(layer.in_channels) +
           " input channels; a depthwise kernel has 1";
  }
  NodeTensors tensors;
  const ExpectedOperands expected{{1, layer.kernel_h, layer.kernel_w, layer.out_channels},
                                  layer.out_channels,
                                  "depth multipliers other than 1 are not delegated"};
  const std::string common = CheckNodeTensors(context, node, layer, params->activation,
                                              params->padding, sparse_filter, expected, &tensors);
  if (!common.empty()) return common;
  return FindDepthwiseViolation(layer, tensors.filter_values);
}

void RunDepthwiseStep(DepthwiseStep* step, const float* input, float* output,
                      pthreadpool_t pool, bool reference, bool release_workers) {
  if (reference) {
    DepthwiseConvReference(step->geometry, step->weights, input, output);
  } else {
    DepthwiseConvSimd(step->geometry, step->weights, input, output, &step->scratch,
                      pool, release_workers);
  }
}

namespace {

class DepthwisePartitionStep final : public ConvPartitionStepBase<DepthwiseStep> {
 public:
  using ConvPartitionStepBase::ConvPartitionStepBase;

 protected:
  void Run(const StepEnvironment& env, const float* input, float* output,
           bool release_workers) override {
    RunDepthwiseStep(&step_, input, output, env.pool,
                     env.state->options().kernel == kCocopieKernelReference, release_workers);
  }
};

}  // namespace

std::unique_ptr<PartitionStep> CreateDepthwisePartitionStep(TfLiteContext* context,
                                                            int node_index,
                                                            const TfLiteNode* node,
                                                            const LrLayer& layer,
                                                            const TfLiteTensor* sparse_filter) {
  return std::make_unique<DepthwisePartitionStep>(
      MakeConvStep<DepthwiseStep, TfLiteDepthwiseConvParams>(context, node_index, node, layer,
                                                              sparse_filter, layer.out_channels,
                                                              PackDepthwiseWeights));
}

}  // namespace cocopie
