// Deciding whether a CONV_2D node may run on the delegate, and turning it
// into a ConvStep the partition kernel executes.
#ifndef COCOPIE_DELEGATE_GRAPH_CONV_NODE_H_
#define COCOPIE_DELEGATE_GRAPH_CONV_NODE_H_

#include <array>
#include <memory>
#include <string>
#include <vector>

#include "delegate/lr/lr_format.h"
#include "delegate/graph/partition_step.h"
#include "delegate/kernels/pattern_conv.h"
#include "delegate/abi/tflite_abi.h"

namespace cocopie {

// Tensor `index` of `context`, through the runtime's accessor when it has one
// so that we never depend on sizeof(TfLiteTensor).
TfLiteTensor* ContextTensor(TfLiteContext* context, int index);

// A fused activation as the clamp [*lo, *hi]; false for one we do not run.
bool ActivationRange(TfLiteFusedActivation act, float* lo, float* hi);

// Constant weights live in the model (kTfLiteMmapRo) or, after some runtime
// transformations, in kTfLitePersistentRo.
bool IsConstantTensor(const TfLiteTensor* t);
bool SameDims(const TfLiteIntArray* a, const TfLiteIntArray* b);
std::string DimsString(const TfLiteIntArray* dims);

// Empty when the node has no bias (input 2 absent or -1) or a constant
// float32 vector of `out_channels`; otherwise why not.
std::string CheckBias(TfLiteContext* context, const TfLiteNode* node, int out_channels);

// The bias values of a node that passed CheckBias, or null when it has none.
const float* NodeBias(TfLiteContext* context, const TfLiteNode* node);

// Empty, with *values set, when the node's filter values can be read: the
// constant `filter` itself, or the constant `sparse_filter` that a filter
// feed expands into it (into `storage`): a sparse float32 one (DENSIFY) or a
// uint8 PackedValues one (CocopiePackedFilter, whose values are `layer`'s
// kept weights); otherwise why not.
std::string ResolveFilterValues(const TfLiteTensor* filter,
                                const TfLiteTensor* sparse_filter, const LrLayer& layer,
                                std::vector<float>* storage, const float** values);

// The tensors of a CONV_2D or DEPTHWISE_CONV_2D node that passed
// CheckNodeTensors, and its filter's values (expanded from `sparse_filter`
// into `expanded` when the filter is a DENSIFY output).
struct NodeTensors {
  const TfLiteTensor* input = nullptr;
  const TfLiteTensor* filter = nullptr;
  const TfLiteTensor* output = nullptr;
  std::vector<float> expanded;
  const float* filter_values = nullptr;
};

// What a convolution kind expects of its operands, given its LR layer.
struct ExpectedOperands {
  std::array<int, 4> filter_dims;  // the filter's dims the LR implies
  int in_channels;                 // the input's channels
  const char* unsupported;         // why other input channel counts stay stock
};

// What CONV_2D and DEPTHWISE_CONV_2D nodes share before their own checks:
// 2-3 inputs and 1 output, a supported fused activation and padding, float32
// tensors that exist, the filter the LR names, readable filter values, the
// filter dims and input channels `expected`, a dense filter's byte size that
// matches its dims, and a bias of the layer's output channels. Empty when all
// hold (`tensors` filled in); otherwise why the node stays with stock kernels.
std::string CheckNodeTensors(TfLiteContext* context, const TfLiteNode* node,
                             const LrLayer& layer, TfLiteFusedActivation activation,
                             TfLitePadding padding, const TfLiteTensor* sparse_filter,
                             const ExpectedOperands& expected, NodeTensors* tensors);

// Empty when a dense filter's byte size is what its dims (checked against the
// LR first) say; a sparse filter's values come from its DENSIFY input.
std::string CheckFilterBytes(const TfLiteTensor* filter, const TfLiteTensor* sparse_filter);

// Empty when a convolution of these strides, dilations and kernel size is
// within the delegate's bounds (kMaxConvSpan, pattern_conv.h); otherwise why
// not. Computed in 64 bits: the file may hold any int.
std::string CheckStrideAndSpan(int stride_h, int stride_w, int dilation_h,
                               int dilation_w, int kernel_h, int kernel_w);

// Empty when `node` is a float32 CONV_2D that `layer` describes and whose
// constant weights obey the layer's patterns exactly (every pruned weight is
// zero), and whose geometry the SIMD kernels can run on the current input
// shape without a padded copy far larger than the image (PaddedCopyFits);
// otherwise the reason it must stay with the stock kernels.
// `sparse_filter` is the sparse constant a DENSIFY node expands into the
// node's filter (converter/compact.py), or null for a constant filter.
std::string CheckConvNode(TfLiteContext* context, const TfLiteNode* node,
                          const LrLayer& layer,
                          const TfLiteTensor* sparse_filter = nullptr);

// What the step of either convolution kind (CONV_2D, DEPTHWISE_CONV_2D)
// holds about its node: geometry refreshed whenever the runtime re-prepares
// (e.g. after an input resize).
struct ConvStepBase {
  int node_index = -1;
  int input_tensor = -1;
  int output_tensor = -1;
  Padding padding = Padding::kSame;
  ConvGeometry geometry;  // spatial sizes filled in at prepare time
};

// Sets the kernel size (the LR layer's), strides, dilations and fused
// activation range of `g` from a convolution's builtin parameters `Params`
// (TfLiteConvParams or TfLiteDepthwiseConvParams).
template <typename Params>
void SetKernelGeometry(const Params& params, const LrLayer& layer, ConvGeometry* g) {
  g->kernel_h = layer.kernel_h;
  g->kernel_w = layer.kernel_w;
  g->stride_h = params.stride_height;
  g->stride_w = params.stride_width;
  g->dilation_h = params.dilation_height_factor;
  g->dilation_w = params.dilation_width_factor;
  ActivationRange(params.activation, &g->act_min, &g->act_max);
}

// The step of a node that passed its kind's check (with the same
// `sparse_filter`), whose builtin parameters are `Params` (TfLiteConvParams
// or TfLiteDepthwiseConvParams), from the LR layer describing it, with
// `in_channels` input channels (they differ by kind) and its filter packed
// by `pack` (PackPatternWeights, PackDepthwiseWeights).
template <typename Step, typename Params, typename Pack>
Step MakeConvStep(TfLiteContext* context, int node_index, const TfLiteNode* node,
                  const LrLayer& layer, const TfLiteTensor* sparse_filter, int in_channels,
                  Pack pack) {
  Step step;
  const auto* params = static_cast<const Params*>(node->builtin_data);
  step.node_index = node_index;
  step.input_tensor = node->inputs->data[0];
  step.output_tensor = node->outputs->data[0];
  step.padding = params->padding == kTfLitePaddingSame ? Padding::kSame : Padding::kValid;
  SetKernelGeometry(*params, layer, &step.geometry);
  step.geometry.in_c = in_channels;
  step.geometry.out_c = layer.out_channels;
  // The node's check accepted both; the filter is expanded once more here.
  std::vector<float> expanded;
  const float* filter = nullptr;
  ResolveFilterValues(ContextTensor(context, node->inputs->data[1]), sparse_filter, layer,
                      &expanded, &filter);
  step.weights = pack(layer, filter, NodeBias(context, node));
  return step;
}

// The partition step of either convolution kind: Prepare computes the
// geometry from the input's shape; Invoke finds the input and output and
// hands them to Run, the one thing the kinds do differently.
template <typename S>
class ConvPartitionStepBase : public StepHolding<S> {
 public:
  using StepHolding<S>::StepHolding;

  TfLiteStatus Prepare(TfLiteContext* context, PartitionTensors* tensors,
                       const StepEnvironment&) override {
    S& s = this->step_;
    return tensors->PrepareGeometry(context, s.node_index, s.input_tensor, s.output_tensor,
                                    s.padding, &s.geometry);
  }

  TfLiteStatus Invoke(TfLiteContext* context, PartitionTensors* tensors,
                      const StepEnvironment& env, bool release_workers) final {
    const S& s = this->step_;
    const float* input = tensors->Data(context, s.input_tensor);
    float* output = tensors->Data(context, s.output_tensor);
    if (input == nullptr || output == nullptr) return ReportUnallocated(context, s.node_index);
    Run(env, input, output, release_workers);
    return kTfLiteOk;
  }

 protected:
  virtual void Run(const StepEnvironment& env, const float* input, float* output,
                   bool release_workers) = 0;
};

// One claimed convolution: constant parts fixed at delegation time.
struct ConvStep : ConvStepBase {
  PackedPatternWeights weights;
  PatternConvScratch scratch;
  // Set when the block kernel runs this layer (see ChooseKernel); its
  // tunables are block_scratch.params (kernel_tuning_search.h may change them).
  bool use_block = false;
  BlockPackedWeights blocks;
  BlockConvScratch block_scratch;
  // What ChooseKernel picked (the built-in choice tuning=off restores),
  // refreshed for the output size by RefreshBuiltInChoice.
  bool built_in_block = false;
  // Block-kernel taps run per kept tap (PackLeastPaddedBlocks): 1 for
  // weights grouped as the block kernel wants, about 6 for free patterns.
  double block_padding = 0.0;
  // The channel block PackLeastPaddedBlocks picked for these weights, the one
  // the built-in choice runs the block kernel with (0: kernel=rows or
  // reference, never packed).
  int least_padded_block = 0;
  // Signature and CPU key the kernel choice was last resolved for by
  // TuneConvStep (empty: not yet).
  std::string tuning_key;
};

// Whether the block kernel is expected to run a layer faster than the rows
// kernel, from its block padding and output size (out_h = 0: not known yet).
bool BlockExpectedFaster(double block_padding, const ConvGeometry& g);

// Picks the SIMD kernel for `step` (`choice` is the delegate's kernel option)
// and packs the weights it needs.
void ChooseKernel(int choice, ConvStep* step);

// Re-decides the built-in choice once the step's geometry is known (the
// tuner applies it when nothing else chose the kernel).
void RefreshBuiltInChoice(int choice, ConvStep* step);

// The partition step running a node that passed CheckConvNode (with the same
// `sparse_filter`); `kernel_choice` is the delegate's kernel option.
std::unique_ptr<PartitionStep> CreateConvPartitionStep(TfLiteContext* context, int node_index,
                                                       const TfLiteNode* node,
                                                       const LrLayer& layer,
                                                       const TfLiteTensor* sparse_filter,
                                                       int kernel_choice);

}  // namespace cocopie

#endif  // COCOPIE_DELEGATE_GRAPH_CONV_NODE_H_
