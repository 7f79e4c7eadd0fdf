#include "delegate/partition_kernel.h"

#include <cstdlib>
#include <cstring>
#include <map>
#include <new>
#include <vector>

#include "delegate/conv_node.h"
#include "delegate/delegate_state.h"

namespace cocopie {
namespace {

// Shape of a tensor that only lives inside the partition (NHWC).
struct InternalTensor {
  int dims[4] = {0, 0, 0, 0};
  std::vector<float> data;
};

class PartitionKernel {
 public:
  PartitionKernel(TfLiteContext* context, const TfLiteDelegateParams& params)
      : state_(DelegateState::From(params.delegate)) {
    for (int i = 0; i < params.output_tensors->size; ++i) {
      partition_outputs_.push_back(params.output_tensors->data[i]);
    }
    for (int i = 0; i < params.nodes_to_replace->size; ++i) {
      const int node_index = params.nodes_to_replace->data[i];
      TfLiteNode* node;
      TfLiteRegistration* registration;
      context->GetNodeAndRegistration(context, node_index, &node, &registration);
      // Claimed nodes were checked against the LR in DelegatePrepare.
      const LrLayer* layer = state_->lr().FindByOp(node_index);
      steps_.push_back(MakeConvStep(context, node_index, node, *layer));
      ChooseKernel(state_->options().kernel, &steps_.back());
    }
    for (const ConvStep& step : steps_) {
      if (!IsPartitionOutput(step.output_tensor)) {
        internal_[step.output_tensor] = InternalTensor();
      }
    }
  }

  TfLiteStatus Prepare(TfLiteContext* context) {
    for (ConvStep& step : steps_) {
      int in_dims[4];
      if (!InputDims(context, step.input_tensor, in_dims)) {
        context->ReportError(context, "cocopie: input of node %d is not 4-D",
                             step.node_index);
        return kTfLiteError;
      }
      ConvGeometry& g = step.geometry;
      g.batch = in_dims[0];
      g.in_h = in_dims[1];
      g.in_w = in_dims[2];
      std::string error;
      if (in_dims[3] != g.in_c || !ComputeConvGeometry(step.padding, &g, &error)) {
        context->ReportError(context, "cocopie: node %d cannot run: %s",
                             step.node_index,
                             error.empty() ? "channel count changed" : error.c_str());
        return kTfLiteError;
      }
      const int out_dims[4] = {g.batch, g.out_h, g.out_w, g.out_c};
      auto internal = internal_.find(step.output_tensor);
      if (internal != internal_.end()) {
        std::memcpy(internal->second.dims, out_dims, sizeof(out_dims));
        internal->second.data.resize(static_cast<size_t>(g.batch) * g.out_h *
                                     g.out_w * g.out_c);
      } else if (ResizeOutput(context, step.output_tensor, out_dims) != kTfLiteOk) {
        return kTfLiteError;
      }
    }
    pool_ = state_->ThreadPool(context);
    return kTfLiteOk;
  }

  TfLiteStatus Invoke(TfLiteContext* context) {
    const bool reference = state_->options().kernel == kCocopieKernelReference;
    for (size_t i = 0; i < steps_.size(); ++i) {
      ConvStep& step = steps_[i];
      // After the partition's last convolution the runtime's other kernels
      // run on their own pool: let ours sleep rather than spin against them.
      const bool last = i + 1 == steps_.size();
      const float* input = Data(context, step.input_tensor);
      float* output = Data(context, step.output_tensor);
      if (input == nullptr || output == nullptr) {
        context->ReportError(context, "cocopie: node %d has unallocated tensors",
                             step.node_index);
        return kTfLiteError;
      }
      if (reference) {
        PatternConvReference(step.geometry, step.weights, input, output);
      } else if (step.use_block &&
                 PatternConvBlock(step.geometry, step.blocks, input, output,
                                  &step.block_scratch, pool_, last)) {
        // done
      } else {
        PatternConvSimd(step.geometry, step.weights, input, output,
                        &step.scratch, pool_, last);
      }
    }
    return kTfLiteOk;
  }

 private:
  bool IsPartitionOutput(int tensor) const {
    for (int t : partition_outputs_) {
      if (t == tensor) return true;
    }
    return false;
  }

  bool InputDims(TfLiteContext* context, int tensor, int dims[4]) const {
    auto internal = internal_.find(tensor);
    if (internal != internal_.end()) {
      std::memcpy(dims, internal->second.dims, 4 * sizeof(int));
      return true;
    }
    const TfLiteTensor* t = ContextTensor(context, tensor);
    if (t == nullptr || t->dims == nullptr || t->dims->size != 4) return false;
    std::memcpy(dims, t->dims->data, 4 * sizeof(int));
    return true;
  }

  float* Data(TfLiteContext* context, int tensor) {
    auto internal = internal_.find(tensor);
    if (internal != internal_.end()) return internal->second.data.data();
    TfLiteTensor* t = ContextTensor(context, tensor);
    return t == nullptr ? nullptr : t->data.f;
  }

  static TfLiteStatus ResizeOutput(TfLiteContext* context, int tensor,
                                   const int dims[4]) {
    TfLiteTensor* t = ContextTensor(context, tensor);
    if (t->dims != nullptr && t->dims->size == 4 &&
        std::memcmp(t->dims->data, dims, 4 * sizeof(int)) == 0) {
      return kTfLiteOk;
    }
    // ResizeTensor takes ownership and releases the array with free(), the
    // allocator the runtime's own TfLiteIntArrayCreate uses.
    auto* shape = static_cast<TfLiteIntArray*>(
        std::malloc(sizeof(TfLiteIntArray) + 4 * sizeof(int)));
    if (shape == nullptr) return kTfLiteError;
    shape->size = 4;
    std::memcpy(shape->data, dims, 4 * sizeof(int));
    return context->ResizeTensor(context, t, shape);
  }

  DelegateState* state_;
  std::vector<int> partition_outputs_;
  std::vector<ConvStep> steps_;
  std::map<int, InternalTensor> internal_;
  pthreadpool_t pool_ = nullptr;
};

void* Init(TfLiteContext* context, const char* buffer, size_t) {
  const auto* params = reinterpret_cast<const TfLiteDelegateParams*>(buffer);
  return new (std::nothrow) PartitionKernel(context, *params);
}

void Free(TfLiteContext*, void* kernel) {
  delete static_cast<PartitionKernel*>(kernel);
}

TfLiteStatus Prepare(TfLiteContext* context, TfLiteNode* node) {
  if (node->user_data == nullptr) return kTfLiteError;
  return static_cast<PartitionKernel*>(node->user_data)->Prepare(context);
}

TfLiteStatus Invoke(TfLiteContext* context, TfLiteNode* node) {
  return static_cast<PartitionKernel*>(node->user_data)->Invoke(context);
}

}  // namespace

TfLiteRegistration PartitionKernelRegistration() {
  TfLiteRegistration registration{};
  registration.init = Init;
  registration.free = Free;
  registration.prepare = Prepare;
  registration.invoke = Invoke;
  registration.builtin_code = kTfLiteBuiltinDelegate;
  registration.custom_name = "CocopiePatternConv";
  registration.version = 1;
  return registration;
}

}  // namespace cocopie
