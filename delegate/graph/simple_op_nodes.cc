#include "delegate/graph/simple_op_nodes.h"

#include <cstdint>
#include <cstring>
#include <utility>

#include "delegate/graph/conv_node.h"

namespace cocopie {
namespace {

bool IsFloat4d(const TfLiteTensor* t) {
  return t != nullptr && t->type == kTfLiteFloat32 && t->dims != nullptr &&
         t->dims->size == 4;
}

// PAD's paddings: a constant [4, 2] int32 or int64 tensor; false otherwise.
bool ReadPaddings(const TfLiteTensor* t, int64_t pads[8]) {
  if (t == nullptr || !IsConstantTensor(t) || t->data.raw == nullptr ||
      t->dims == nullptr || t->dims->size != 2 || t->dims->data[0] != 4 ||
      t->dims->data[1] != 2) {
    return false;
  }
  for (int i = 0; i < 8; ++i) {
    if (t->type == kTfLiteInt32 && t->bytes >= 8 * sizeof(int32_t)) {
      int32_t v;
      std::memcpy(&v, t->data.raw + i * sizeof(v), sizeof(v));
      pads[i] = v;
    } else if (t->type == kTfLiteInt64 && t->bytes >= 8 * sizeof(int64_t)) {
      std::memcpy(&pads[i], t->data.raw + i * sizeof(int64_t), sizeof(int64_t));
    } else {
      return false;
    }
  }
  return true;
}

}  // namespace

std::string CheckSimpleOpNode(TfLiteContext* context, const TfLiteNode* node,
                              int builtin_code) {
  if (node->inputs == nullptr || node->outputs == nullptr || node->outputs->size != 1) {
    return "unexpected number of inputs/outputs";
  }
  const TfLiteTensor* output = ContextTensor(context, node->outputs->data[0]);
  if (!IsFloat4d(output)) return "output is not a float32 4-D tensor";
  float lo, hi;
  if (builtin_code == kTfLiteBuiltinAdd) {
    if (node->inputs->size != 2) return "ADD without two inputs";
    const TfLiteTensor* a = ContextTensor(context, node->inputs->data[0]);
    const TfLiteTensor* b = ContextTensor(context, node->inputs->data[1]);
    if (!IsFloat4d(a) || !IsFloat4d(b)) return "ADD inputs are not float32 4-D";
    if (std::memcmp(a->dims->data, b->dims->data, 4 * sizeof(int)) != 0) {
      return "ADD broadcasts";
    }
    const auto* params = static_cast<const TfLiteAddParams*>(node->builtin_data);
    if (params == nullptr || !ActivationRange(params->activation, &lo, &hi)) {
      return "ADD activation not supported";
    }
    return "";
  }
  if (node->inputs->size < 1) return "no input";
  const TfLiteTensor* input = ContextTensor(context, node->inputs->data[0]);
  if (!IsFloat4d(input)) return "input is not float32 4-D";
  if (builtin_code == kTfLiteBuiltinMaxPool2d) {
    const auto* params = static_cast<const TfLitePoolParams*>(node->builtin_data);
    if (params == nullptr || !ActivationRange(params->activation, &lo, &hi) ||
        (params->padding != kTfLitePaddingSame && params->padding != kTfLitePaddingValid)) {
      return "MAX_POOL_2D parameters not supported";
    }
    PoolGeometry g;
    g.in_h = input->dims->data[1];
    g.in_w = input->dims->data[2];
    g.channels = input->dims->data[3];
    g.filter_h = params->filter_height;
    g.filter_w = params->filter_width;
    g.stride_h = params->stride_height;
    g.stride_w = params->stride_width;
    if (!ComputePoolGeometry(params->padding == kTfLitePaddingSame, &g)) {
      return "MAX_POOL_2D window does not fit the input";
    }
    return "";
  }
  if (builtin_code == kTfLiteBuiltinPad) {
    int64_t pads[8];
    if (node->inputs->size != 2 ||
        !ReadPaddings(ContextTensor(context, node->inputs->data[1]), pads)) {
      return "PAD paddings are not a constant [4, 2] tensor";
    }
    if (pads[0] != 0 || pads[1] != 0 || pads[6] != 0 || pads[7] != 0) {
      return "PAD of the batch or channel dimension";
    }
    for (int i = 2; i < 6; ++i) {
      if (pads[i] < 0 || pads[i] > 1024) return "PAD amounts out of range";
    }
    return "";
  }
  return "not an operator run here";
}

SimpleOpStep MakeSimpleOpStep(TfLiteContext* context, int node_index,
                              const TfLiteNode* node, int builtin_code) {
  SimpleOpStep step;
  step.node_index = node_index;
  step.builtin_code = builtin_code;
  step.output_tensor = node->outputs->data[0];
  if (builtin_code == kTfLiteBuiltinAdd) {
    step.inputs = {node->inputs->data[0], node->inputs->data[1]};
    ActivationRange(static_cast<const TfLiteAddParams*>(node->builtin_data)->activation,
                    &step.act_min, &step.act_max);
  } else if (builtin_code == kTfLiteBuiltinMaxPool2d) {
    const auto* params = static_cast<const TfLitePoolParams*>(node->builtin_data);
    step.inputs = {node->inputs->data[0]};
    step.same_padding = params->padding == kTfLitePaddingSame;
    step.pool.filter_h = params->filter_height;
    step.pool.filter_w = params->filter_width;
    step.pool.stride_h = params->stride_height;
    step.pool.stride_w = params->stride_width;
    ActivationRange(params->activation, &step.pool.act_min, &step.pool.act_max);
  } else {  // PAD, checked by CheckSimpleOpNode
    step.inputs = {node->inputs->data[0]};
    int64_t pads[8];
    ReadPaddings(ContextTensor(context, node->inputs->data[1]), pads);
    step.pad.top = static_cast<int>(pads[2]);
    step.pad.bottom = static_cast<int>(pads[3]);
    step.pad.left = static_cast<int>(pads[4]);
    step.pad.right = static_cast<int>(pads[5]);
  }
  return step;
}

bool PrepareSimpleOp(SimpleOpStep* step, const std::vector<const int*>& input_dims,
                     int out_dims[4], std::string* error) {
  const int* in = input_dims[0];
  if (step->builtin_code == kTfLiteBuiltinAdd) {
    if (std::memcmp(input_dims[0], input_dims[1], 4 * sizeof(int)) != 0) {
      *error = "ADD inputs have different shapes";
      return false;
    }
    std::memcpy(out_dims, in, 4 * sizeof(int));
    step->elements = static_cast<int64_t>(in[0]) * in[1] * in[2] * in[3];
    return true;
  }
  if (step->builtin_code == kTfLiteBuiltinMaxPool2d) {
    PoolGeometry& g = step->pool;
    g.batch = in[0];
    g.in_h = in[1];
    g.in_w = in[2];
    g.channels = in[3];
    if (!ComputePoolGeometry(step->same_padding, &g)) {
      *error = "MAX_POOL_2D window does not fit the input";
      return false;
    }
    const int dims[4] = {g.batch, g.out_h, g.out_w, g.channels};
    std::memcpy(out_dims, dims, sizeof(dims));
    return true;
  }
  PadGeometry& p = step->pad;
  p.batch = in[0];
  p.in_h = in[1];
  p.in_w = in[2];
  p.channels = in[3];
  const int dims[4] = {p.batch, p.in_h + p.top + p.bottom, p.in_w + p.left + p.right,
                       p.channels};
  std::memcpy(out_dims, dims, sizeof(dims));
  return true;
}

void RunSimpleOp(const SimpleOpStep& step, const std::vector<const float*>& inputs,
                 float* output, pthreadpool_t pool, bool release_workers) {
  if (step.builtin_code == kTfLiteBuiltinAdd) {
    AddF32(inputs[0], inputs[1], output, step.elements, step.act_min, step.act_max, pool,
           release_workers);
  } else if (step.builtin_code == kTfLiteBuiltinMaxPool2d) {
    MaxPoolF32(step.pool, inputs[0], output, pool, release_workers);
  } else {
    PadF32(step.pad, inputs[0], output, pool, release_workers);
  }
}

namespace {

class SimpleOpPartitionStep final : public StepHolding<SimpleOpStep> {
 public:
  using StepHolding::StepHolding;

  TfLiteStatus Prepare(TfLiteContext* context, PartitionTensors* tensors,
                       const StepEnvironment&) override {
    std::vector<std::vector<int>> dims(step_.inputs.size(), std::vector<int>(4));
    std::vector<const int*> views;
    for (size_t k = 0; k < step_.inputs.size(); ++k) {
      if (!tensors->InputDims(context, step_.inputs[k], dims[k].data())) {
        context->ReportError(context, "cocopie: input of node %d is not 4-D",
                             step_.node_index);
        return kTfLiteError;
      }
      views.push_back(dims[k].data());
    }
    int out_dims[4];
    std::string error;
    if (!PrepareSimpleOp(&step_, views, out_dims, &error)) {
      context->ReportError(context, "cocopie: node %d cannot run: %s", step_.node_index,
                           error.c_str());
      return kTfLiteError;
    }
    return tensors->SizeOutput(context, step_.output_tensor, out_dims);
  }

  TfLiteStatus Invoke(TfLiteContext* context, PartitionTensors* tensors,
                      const StepEnvironment& env, bool release_workers) override {
    std::vector<const float*> inputs;
    bool allocated = true;
    for (int tensor : step_.inputs) {
      inputs.push_back(tensors->Data(context, tensor));
      allocated = allocated && inputs.back() != nullptr;
    }
    float* output = tensors->Data(context, step_.output_tensor);
    if (!allocated || output == nullptr) return ReportUnallocated(context, step_.node_index);
    RunSimpleOp(step_, inputs, output, env.pool, release_workers);
    return kTfLiteOk;
  }
};

}  // namespace

std::unique_ptr<PartitionStep> CreateSimpleOpPartitionStep(TfLiteContext* context,
                                                           int node_index,
                                                           const TfLiteNode* node,
                                                           int builtin_code) {
  return std::make_unique<SimpleOpPartitionStep>(
      MakeSimpleOpStep(context, node_index, node, builtin_code));
}

}  // namespace cocopie
