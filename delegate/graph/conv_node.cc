#include "delegate/graph/conv_node.h"

#include "delegate/cocopie_delegate.h"

#include <algorithm>
#include <cfloat>
#include <cstdint>
#include <sstream>
#include <utility>
#include <vector>

#include "delegate/graph/delegate_state.h"
#include "delegate/graph/kernel_tuning_search.h"
#include "delegate/lr/packed_values.h"
#include "delegate/lr/sparse_weights.h"

namespace cocopie {
namespace {

// The first weight the pattern prunes that is not zero, as a message.
std::string FindPatternViolation(const LrLayer& layer, const float* filter) {
  const int cells = layer.kernel_h * layer.kernel_w;
  for (int co = 0; co < layer.out_channels; ++co) {
    for (int ci = 0; ci < layer.in_channels; ++ci) {
      const uint8_t id = layer.PatternOf(co, ci);
      const uint32_t kept = id == kRemovedKernel ? 0u : layer.pattern_masks[id];
      for (int cell = 0; cell < cells; ++cell) {
        if (kept & (1u << cell)) continue;
        const float v =
            filter[(static_cast<size_t>(co) * cells + cell) * layer.in_channels + ci];
        if (v != 0.0f) {
          std::ostringstream s;
          s << "weight [out " << co << ", row " << cell / layer.kernel_w
            << ", col " << cell % layer.kernel_w << ", in " << ci << "] = " << v
            << " is non-zero but the LR "
            << (id == kRemovedKernel ? "removes that kernel"
                                     : "prunes that cell (pattern " +
                                           std::to_string(id) + ")");
          return s.str();
        }
      }
    }
  }
  return "";
}

// Empty unless the node's geometry on the input's current shape needs a
// padded copy far larger than the image (a huge dilation): the stock kernels
// run that better than our scalar fallback. A shape ComputeConvGeometry
// refuses is reported when the partition is prepared, as before.
std::string CheckPaddedCopy(const TfLiteConvParams& params, const LrLayer& layer,
                            const TfLiteIntArray* input_dims) {
  ConvGeometry g;
  g.batch = input_dims->data[0];
  g.in_h = input_dims->data[1];
  g.in_w = input_dims->data[2];
  g.in_c = layer.in_channels;
  g.out_c = layer.out_channels;
  SetKernelGeometry(params, layer, &g);
  std::string unused;
  const Padding padding =
      params.padding == kTfLitePaddingSame ? Padding::kSame : Padding::kValid;
  if (!ComputeConvGeometry(padding, &g, &unused) || PaddedCopyFits(g)) return "";
  return "dilation " + std::to_string(g.dilation_h) + "x" + std::to_string(g.dilation_w) +
         " on a " + std::to_string(g.in_h) + "x" + std::to_string(g.in_w) +
         " input would need a padded copy of " +
         std::to_string(PaddedCopyFloats(g) * sizeof(float) >> 20) + " MiB";
}

}  // namespace

std::string CheckStrideAndSpan(int stride_h, int stride_w, int dilation_h,
                               int dilation_w, int kernel_h, int kernel_w) {
  if (stride_h > kMaxConvSpan || stride_w > kMaxConvSpan) {
    return "stride " + std::to_string(stride_h) + "x" + std::to_string(stride_w) +
           " exceeds " + std::to_string(kMaxConvSpan);
  }
  const int64_t span_h = int64_t{kernel_h - 1} * dilation_h + 1;
  const int64_t span_w = int64_t{kernel_w - 1} * dilation_w + 1;
  if (span_h > kMaxConvSpan || span_w > kMaxConvSpan) {
    return "kernel " + std::to_string(kernel_h) + "x" + std::to_string(kernel_w) +
           " with dilation " + std::to_string(dilation_h) + "x" +
           std::to_string(dilation_w) + " spans " + std::to_string(span_h) + "x" +
           std::to_string(span_w) + " pixels, more than " + std::to_string(kMaxConvSpan);
  }
  return "";
}

bool ActivationRange(TfLiteFusedActivation act, float* lo, float* hi) {
  switch (act) {
    case kTfLiteActNone: *lo = -FLT_MAX; *hi = FLT_MAX; return true;
    case kTfLiteActRelu: *lo = 0.0f; *hi = FLT_MAX; return true;
    case kTfLiteActReluN1To1: *lo = -1.0f; *hi = 1.0f; return true;
    case kTfLiteActRelu6: *lo = 0.0f; *hi = 6.0f; return true;
    default: return false;
  }
}

bool IsConstantTensor(const TfLiteTensor* t) {
  return t->allocation_type == kTfLiteMmapRo ||
         t->allocation_type == kTfLitePersistentRo;
}

bool SameDims(const TfLiteIntArray* a, const TfLiteIntArray* b) {
  if (a == nullptr || b == nullptr || a->size != b->size) return false;
  for (int i = 0; i < a->size; ++i) {
    if (a->data[i] != b->data[i]) return false;
  }
  return true;
}

std::string DimsString(const TfLiteIntArray* dims) {
  std::ostringstream s;
  s << "[";
  for (int i = 0; dims != nullptr && i < dims->size; ++i) {
    s << (i ? ", " : "") << dims->data[i];
  }
  s << "]";
  return s.str();
}

std::string CheckBias(TfLiteContext* context, const TfLiteNode* node, int out_channels) {
  if (node->inputs->size < 3 || node->inputs->data[2] < 0) return "";
  const TfLiteTensor* bias = ContextTensor(context, node->inputs->data[2]);
  if (bias == nullptr || bias->type != kTfLiteFloat32 || !IsConstantTensor(bias) ||
      bias->data.raw == nullptr || bias->dims == nullptr || bias->dims->size != 1 ||
      bias->dims->data[0] != out_channels) {
    return "bias is not a constant float32 vector of the output channels";
  }
  return "";
}

namespace {

// The part of CheckNodeTensors after the tensors are found.
std::string CheckOperands(TfLiteContext* context, const TfLiteNode* node,
                          const NodeTensors& tensors, const TfLiteTensor* sparse_filter,
                          const std::array<int, 4>& filter_dims, int in_channels,
                          int out_channels, const char* unsupported) {
  const TfLiteIntArray* fd = tensors.filter->dims;
  if (fd == nullptr || fd->size != 4 || fd->data[0] != filter_dims[0] ||
      fd->data[1] != filter_dims[1] || fd->data[2] != filter_dims[2] ||
      fd->data[3] != filter_dims[3]) {
    return "filter shape " + DimsString(fd) + " differs from the LR's [" +
           std::to_string(filter_dims[0]) + ", " + std::to_string(filter_dims[1]) + ", " +
           std::to_string(filter_dims[2]) + ", " + std::to_string(filter_dims[3]) + "]";
  }
  const std::string bytes = CheckFilterBytes(tensors.filter, sparse_filter);
  if (!bytes.empty()) return bytes;
  const TfLiteIntArray* in_dims = tensors.input->dims;
  if (in_dims == nullptr || in_dims->size != 4 || in_dims->data[3] != in_channels) {
    return "input shape " + DimsString(in_dims) + " is not NHWC with the filter's " +
           std::to_string(in_channels) + " input channels (" + unsupported + ")";
  }
  return CheckBias(context, node, out_channels);
}

}  // namespace

const float* NodeBias(TfLiteContext* context, const TfLiteNode* node) {
  if (node->inputs->size < 3 || node->inputs->data[2] < 0) return nullptr;
  return ContextTensor(context, node->inputs->data[2])->data.f;
}

std::string ResolveFilterValues(const TfLiteTensor* filter,
                                const TfLiteTensor* sparse_filter, const LrLayer& layer,
                                std::vector<float>* storage, const float** values) {
  if (sparse_filter != nullptr && sparse_filter->type == kTfLiteUInt8) {
    // CocopiePackedFilter: the layer's kept weights in LR order.
    const TfLiteIntArray* fd = filter->dims;
    if (!IsConstantTensor(sparse_filter) || sparse_filter->data.raw == nullptr ||
        fd == nullptr || fd->size != 4 || fd->data[0] != layer.out_channels ||
        fd->data[1] != layer.kernel_h || fd->data[2] != layer.kernel_w ||
        fd->data[3] != layer.in_channels) {
      return "packed filter is not a constant of a CONV_2D filter the LR describes";
    }
    std::vector<float> kept;
    std::string error;
    if (!ParsePackedValues(reinterpret_cast<const uint8_t*>(sparse_filter->data.raw),
                           sparse_filter->bytes, &kept, &error) ||
        !ExpandPackedFilter(layer, kept, storage, &error)) {
      return error;
    }
    *values = storage->data();
    return "";
  }
  if (sparse_filter != nullptr) {
    // The node's filter is computed by DENSIFY; its source must be a sparse
    // constant of the same shape.
    std::string error;
    if (!IsConstantTensor(sparse_filter) || !SameDims(sparse_filter->dims, filter->dims) ||
        !DensifyFloatTensor(*sparse_filter, storage, &error)) {
      return error.empty() ? "DENSIFY source is not a constant of the filter's shape"
                           : error;
    }
    *values = storage->data();
    return "";
  }
  if (!IsConstantTensor(filter) || filter->data.raw == nullptr) {
    return "filter is not a constant tensor";
  }
  if (filter->sparsity != nullptr) return "filter is sparse without a DENSIFY";
  *values = filter->data.f;
  return "";
}

TfLiteTensor* ContextTensor(TfLiteContext* context, int index) {
  if (index < 0 || static_cast<size_t>(index) >= context->tensors_size) {
    return nullptr;
  }
  if (context->GetTensor != nullptr) return context->GetTensor(context, index);
  return &context->tensors[index];
}

std::string CheckNodeTensors(TfLiteContext* context, const TfLiteNode* node,
                             const LrLayer& layer, TfLiteFusedActivation activation,
                             TfLitePadding padding, const TfLiteTensor* sparse_filter,
                             const ExpectedOperands& expected, NodeTensors* tensors) {
  if (node->inputs == nullptr || node->inputs->size < 2 ||
      node->inputs->size > 3 || node->outputs == nullptr ||
      node->outputs->size != 1) {
    return "unexpected number of inputs/outputs";
  }
  float lo, hi;
  if (!ActivationRange(activation, &lo, &hi)) {
    return "fused activation " + std::to_string(activation) + " is not supported";
  }
  if (padding != kTfLitePaddingSame && padding != kTfLitePaddingValid) {
    return "unknown padding";
  }
  tensors->input = ContextTensor(context, node->inputs->data[0]);
  tensors->filter = ContextTensor(context, node->inputs->data[1]);
  tensors->output = ContextTensor(context, node->outputs->data[0]);
  if (tensors->input == nullptr || tensors->filter == nullptr ||
      tensors->output == nullptr) {
    return "tensor index out of range";
  }
  if (tensors->input->type != kTfLiteFloat32 || tensors->filter->type != kTfLiteFloat32 ||
      tensors->output->type != kTfLiteFloat32) {
    return "only float32 convolutions are delegated";
  }
  if (node->inputs->data[1] != static_cast<int>(layer.filter_tensor)) {
    return "filter is tensor " + std::to_string(node->inputs->data[1]) +
           " but the LR names tensor " + std::to_string(layer.filter_tensor);
  }
  const std::string values = ResolveFilterValues(tensors->filter, sparse_filter, layer,
                                                 &tensors->expanded, &tensors->filter_values);
  if (!values.empty()) return values;
  return CheckOperands(context, node, *tensors, sparse_filter, expected.filter_dims,
                       expected.in_channels, layer.out_channels, expected.unsupported);
}

std::string CheckFilterBytes(const TfLiteTensor* filter, const TfLiteTensor* sparse_filter) {
  if (sparse_filter != nullptr) return "";
  size_t count = 1;
  for (int i = 0; i < filter->dims->size; ++i) {
    count *= static_cast<size_t>(filter->dims->data[i]);
  }
  if (filter->bytes != sizeof(float) * count) return "filter byte size does not match its shape";
  return "";
}

std::string CheckConvNode(TfLiteContext* context, const TfLiteNode* node,
                          const LrLayer& layer,
                          const TfLiteTensor* sparse_filter) {
  const auto* params = static_cast<const TfLiteConvParams*>(node->builtin_data);
  if (params == nullptr) return "missing CONV_2D parameters";
  if (params->stride_width < 1 || params->stride_height < 1 ||
      params->dilation_width_factor < 1 || params->dilation_height_factor < 1) {
    return "invalid stride or dilation";
  }
  const std::string span = CheckStrideAndSpan(
      params->stride_height, params->stride_width, params->dilation_height_factor,
      params->dilation_width_factor, layer.kernel_h, layer.kernel_w);
  if (!span.empty()) return span;
  NodeTensors tensors;
  const ExpectedOperands expected{
      {layer.out_channels, layer.kernel_h, layer.kernel_w, layer.in_channels},
      layer.in_channels, "grouped convolutions are not delegated"};
  const std::string common = CheckNodeTensors(context, node, layer, params->activation,
                                              params->padding, sparse_filter, expected, &tensors);
  if (!common.empty()) return common;
  const std::string copy_problem = CheckPaddedCopy(*params, layer, tensors.input->dims);
  if (!copy_problem.empty()) return copy_problem;
  return FindPatternViolation(layer, tensors.filter_values);
}

bool BlockExpectedFaster(double padding, const ConvGeometry& g) {
  // Crossovers measured with out/pattern_conv_bench on AVX2 (block 16),
  // sweeping --group 1..16 on 256-channel layers: the rows kernel wins from
  // 3.2 block taps per kept tap on a 28x28 output, from 6.5 on 8x8, never on
  // 4x4, where its pixel tiles are mostly padding and the block kernel's
  // channel lanes are full. Unknown sizes (0) count as large.
  const int64_t pixels = int64_t{g.out_h} * g.out_w;
  const double limit = pixels >= 256 || pixels == 0 ? 2.5 : pixels >= 64 ? 5.0 : 12.0;
  return padding <= limit;
}

void ChooseKernel(int choice, ConvStep* step) {
  step->use_block = false;
  step->built_in_block = false;
  if (choice == kCocopieKernelRows || choice == kCocopieKernelReference) return;
  BlockPackedWeights blocks = PackLeastPaddedBlocks(step->weights);
  step->block_padding = static_cast<double>(blocks.padded_taps) /
                        static_cast<double>(std::max<int64_t>(1, blocks.kept_taps));
  step->least_padded_block = blocks.block;
  if (choice == kCocopieKernelBlock || BlockExpectedFaster(step->block_padding, step->geometry)) {
    step->blocks = std::move(blocks);
    step->use_block = true;
  }
  step->built_in_block = step->use_block;
}

void RefreshBuiltInChoice(int choice, ConvStep* step) {
  if (choice != kCocopieKernelAuto) return;
  step->built_in_block = BlockExpectedFaster(step->block_padding, step->geometry);
}

namespace {

// A claimed CONV_2D inside a partition: the kernel ChooseKernel / the tuner
// picked, or the scalar reference when the delegate's option asks for it.
class ConvPartitionStep final : public ConvPartitionStepBase<ConvStep> {
 public:
  using ConvPartitionStepBase::ConvPartitionStepBase;

  void Tune(const StepEnvironment& env) override {
    // Kernel tuning needs the geometry Prepare computed (kernel_tuning_search.h).
    RefreshBuiltInChoice(env.state->options().kernel, &step_);
    TuneConvStep(env.state, &step_, env.pool, env.lr);
  }

 protected:
  void Run(const StepEnvironment& env, const float* input, float* output,
           bool release_workers) override {
    if (env.state->options().kernel == kCocopieKernelReference) {
      PatternConvReference(step_.geometry, step_.weights, input, output);
    } else if (!step_.use_block ||
               !PatternConvBlock(step_.geometry, step_.blocks, input, output,
                                 &step_.block_scratch, env.pool, release_workers)) {
      PatternConvSimd(step_.geometry, step_.weights, input, output, &step_.scratch, env.pool,
                      release_workers);
    }
  }
};

}  // namespace

std::unique_ptr<PartitionStep> CreateConvPartitionStep(TfLiteContext* context, int node_index,
                                                       const TfLiteNode* node,
                                                       const LrLayer& layer,
                                                       const TfLiteTensor* sparse_filter,
                                                       int kernel_choice) {
  ConvStep step = MakeConvStep<ConvStep, TfLiteConvParams>(
      context, node_index, node, layer, sparse_filter, layer.in_channels, PackPatternWeights);
  ChooseKernel(kernel_choice, &step);
  return std::make_unique<ConvPartitionStep>(std::move(step));
}

}  // namespace cocopie
