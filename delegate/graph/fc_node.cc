#include "delegate/graph/fc_node.h"

#include <vector>

#include "delegate/graph/conv_node.h"
#include "delegate/kernels/sparse_fc.h"

namespace cocopie {
namespace {

// Below this many bytes of dense weights the stock kernels (XNNPACK's GEMV
// on weights that stay in cache) beat the sparse kernel: measured on 2
// threads at 28 % density (bench/results/fc_ratio.json), 0.4-0.6x at 5-8 MB
// (MobileNetV2's and ResNet-50's heads), 1.4-1.9x from 16 MB (VGG-16's).
constexpr size_t kMinDenseWeightBytes = size_t{12} << 20;

// The layer's kept (out, in) weights, 1 = kept.
std::vector<uint8_t> KeptWeights(const LrLayer& layer) {
  std::vector<uint8_t> kept(static_cast<size_t>(layer.out_channels) * layer.in_channels);
  for (int o = 0; o < layer.out_channels; ++o) {
    for (int i = 0; i < layer.in_channels; ++i) {
      kept[static_cast<size_t>(o) * layer.in_channels + i] =
          layer.PatternOf(o, i) != kRemovedKernel;
    }
  }
  return kept;
}

std::string CheckWeights(const TfLiteTensor* weights, const LrLayer& layer) {
  if (weights->type != kTfLiteFloat32 || !IsConstantTensor(weights) ||
      weights->data.raw == nullptr || weights->sparsity != nullptr) {
    return "weights are not a dense float32 constant";
  }
  const TfLiteIntArray* d = weights->dims;
  if (d == nullptr || d->size != 2 || d->data[0] != layer.out_channels ||
      d->data[1] != layer.in_channels) {
    return "weights shape " + DimsString(d) + " differs from the LR's [" +
           std::to_string(layer.out_channels) + ", " + std::to_string(layer.in_channels) + "]";
  }
  if (weights->bytes != sizeof(float) * layer.out_channels * layer.in_channels) {
    return "weights byte size does not match their shape";
  }
  if (weights->bytes < kMinDenseWeightBytes) {
    return "weights of " + std::to_string(weights->bytes >> 10) +
           " KiB: below 12 MiB the stock kernels run it faster";
  }
  for (int o = 0; o < layer.out_channels; ++o) {
    for (int i = 0; i < layer.in_channels; ++i) {
      const size_t k = static_cast<size_t>(o) * layer.in_channels + i;
      if (layer.PatternOf(o, i) == kRemovedKernel && weights->data.f[k] != 0.0f) {
        return "weight " + std::to_string(k) + " is non-zero but the LR removes it";
      }
    }
  }
  return "";
}

struct FcStep {
  int node_index = -1;
  int input_tensor = -1;
  int output_tensor = -1;
  bool keep_num_dims = false;
  int batch = 0;
  PackedSparseFc weights;
};

class FcPartitionStep : public StepHolding<FcStep> {
 public:
  using StepHolding<FcStep>::StepHolding;

  // TFLite's rule: the input is (batch, in) whatever its rank, batch = its
  // elements / in; the output is (batch, out), or the input's dims with the
  // last one replaced when keep_num_dims is set.
  TfLiteStatus Prepare(TfLiteContext* context, PartitionTensors* tensors,
                       const StepEnvironment&) override {
    FcStep& s = step_;
    std::vector<int> dims;
    if (!tensors->Dims(context, s.input_tensor, &dims) || dims.empty()) {
      context->ReportError(context, "cocopie: input of node %d has no shape", s.node_index);
      return kTfLiteError;
    }
    size_t elements = 1;
    for (int d : dims) elements *= static_cast<size_t>(d < 0 ? 0 : d);
    const size_t in = static_cast<size_t>(s.weights.in);
    if (elements % in != 0 || (s.keep_num_dims && dims.back() != s.weights.in)) {
      context->ReportError(context, "cocopie: node %d cannot run: its input does not hold rows "
                           "of %d values", s.node_index, s.weights.in);
      return kTfLiteError;
    }
    s.batch = static_cast<int>(elements / in);
    std::vector<int> out_dims = {s.batch, s.weights.out};
    if (s.keep_num_dims) {
      out_dims = dims;
      out_dims.back() = s.weights.out;
    }
    return tensors->SizeOutput(context, s.output_tensor, out_dims);
  }

  TfLiteStatus Invoke(TfLiteContext* context, PartitionTensors* tensors,
                      const StepEnvironment& env, bool) override {
    const FcStep& s = step_;
    const float* input = tensors->Data(context, s.input_tensor);
    float* output = tensors->Data(context, s.output_tensor);
    if (input == nullptr || output == nullptr) return ReportUnallocated(context, s.node_index);
    SparseFullyConnected(s.weights, input, s.batch, output, env.pool);
    return kTfLiteOk;
  }
};

}  // namespace

std::string CheckFullyConnectedNode(TfLiteContext* context, const TfLiteNode* node,
                                    const LrLayer& layer) {
  const auto* params = static_cast<const TfLiteFullyConnectedParams*>(node->builtin_data);
  if (params == nullptr) return "missing FULLY_CONNECTED parameters";
  if (params->weights_format != 0) return "shuffled weights are not delegated";
  float lo, hi;
  if (!ActivationRange(params->activation, &lo, &hi)) {
    return "fused activation " + std::to_string(params->activation) + " is not supported";
  }
  if (layer.kernel_h != 1 || layer.kernel_w != 1 || layer.pattern_masks.size() != 1) {
    return "the LR does not describe it as one 1x1 kept-or-removed weight per (out, in)";
  }
  if (node->inputs == nullptr || node->inputs->size < 2 || node->inputs->size > 3 ||
      node->outputs == nullptr || node->outputs->size != 1) {
    return "unexpected number of inputs/outputs";
  }
  const TfLiteTensor* input = ContextTensor(context, node->inputs->data[0]);
  const TfLiteTensor* weights = ContextTensor(context, node->inputs->data[1]);
  const TfLiteTensor* output = ContextTensor(context, node->outputs->data[0]);
  if (input == nullptr || weights == nullptr || output == nullptr) {
    return "tensor index out of range";
  }
  if (input->type != kTfLiteFloat32 || output->type != kTfLiteFloat32) {
    return "only float32 layers are delegated";
  }
  if (node->inputs->data[1] != static_cast<int>(layer.filter_tensor)) {
    return "weights are tensor " + std::to_string(node->inputs->data[1]) +
           " but the LR names tensor " + std::to_string(layer.filter_tensor);
  }
  const std::string problem = CheckWeights(weights, layer);
  if (!problem.empty()) return problem;
  return CheckBias(context, node, layer.out_channels);
}

std::unique_ptr<PartitionStep> CreateFullyConnectedPartitionStep(TfLiteContext* context,
                                                                 int node_index,
                                                                 const TfLiteNode* node,
                                                                 const LrLayer& layer) {
  const auto* params = static_cast<const TfLiteFullyConnectedParams*>(node->builtin_data);
  FcStep step;
  step.node_index = node_index;
  step.input_tensor = node->inputs->data[0];
  step.output_tensor = node->outputs->data[0];
  step.keep_num_dims = params->keep_num_dims;
  float lo, hi;
  ActivationRange(params->activation, &lo, &hi);
  step.weights = PackSparseFc(layer.out_channels, layer.in_channels,
                              ContextTensor(context, node->inputs->data[1])->data.f,
                              KeptWeights(layer), NodeBias(context, node), lo, hi);
  return std::make_unique<FcPartitionStep>(std::move(step));
}

}  // namespace cocopie
