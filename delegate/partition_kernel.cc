#include "delegate/partition_kernel.h"

#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <new>
#include <vector>

#include "delegate/c_boundary.h"
#include "delegate/conv_node.h"
#include "delegate/delegate_state.h"
#include "delegate/dwconv_node.h"
#include "delegate/kernel_tuning.h"
#include "delegate/simple_op_nodes.h"

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
      : state_(DelegateState::From(params.delegate)), lr_(state_->shared_lr()) {
    for (int i = 0; i < params.output_tensors->size; ++i) {
      partition_outputs_.push_back(params.output_tensors->data[i]);
    }
    for (int i = 0; i < params.nodes_to_replace->size; ++i) {
      const int node_index = params.nodes_to_replace->data[i];
      TfLiteNode* node;
      TfLiteRegistration* registration;
      context->GetNodeAndRegistration(context, node_index, &node, &registration);
      if (registration->builtin_code == kTfLiteBuiltinDensify) {
        // Its convolution reads the sparse constant itself (see MakeConvStep);
        // the dense filter is never computed.
        if (IsPartitionOutput(node->outputs->data[0])) {
          unused_outputs_.push_back(node->outputs->data[0]);
        }
        continue;
      }
      if (IsSimpleOp(registration->builtin_code)) {
        // Checked by CheckSimpleOpNode in DelegatePrepare.
        order_.push_back({StepRef::kSimple, simple_steps_.size()});
        simple_steps_.push_back(
            MakeSimpleOpStep(context, node_index, node, registration->builtin_code));
        continue;
      }
      // Claimed nodes were checked against the LR in DelegatePrepare.
      const LrLayer* layer = lr_->FindByOp(node_index);
      const int sparse = state_->SparseFilterOf(node_index);
      const TfLiteTensor* sparse_filter =
          sparse >= 0 ? ContextTensor(context, sparse) : nullptr;
      if (registration->builtin_code == kTfLiteBuiltinDepthwiseConv2d) {
        order_.push_back({StepRef::kDepthwise, dw_steps_.size()});
        dw_steps_.push_back(
            MakeDepthwiseStep(context, node_index, node, *layer, sparse_filter));
        continue;
      }
      order_.push_back({StepRef::kConv, steps_.size()});
      steps_.push_back(MakeConvStep(context, node_index, node, *layer, sparse_filter));
      ChooseKernel(state_->options().kernel, &steps_.back());
    }
    for (const StepRef& ref : order_) {
      const int output = OutputOf(ref);
      if (!IsPartitionOutput(output)) internal_[output] = InternalTensor();
    }
  }

  TfLiteStatus Prepare(TfLiteContext* context) {
    // The runtime may put a DENSIFY in an earlier partition than its
    // convolution; its dense output then crosses partitions but is read by
    // nobody (the convolution is ours and uses the sparse constant). Shrink it
    // so the arena does not reserve a dense filter for it.
    for (int tensor : unused_outputs_) {
      const int empty[1] = {0};
      if (ResizeTensorTo(context, tensor, empty, 1) != kTfLiteOk) return kTfLiteError;
    }
    // In execution order: a step's input may be an earlier step's internal
    // output, whose shape that step has just set.
    for (const StepRef& ref : order_) {
      TfLiteStatus status;
      if (ref.kind == StepRef::kSimple) {
        status = PrepareSimpleStep(context, &simple_steps_[ref.index]);
      } else if (ref.kind == StepRef::kDepthwise) {
        DepthwiseStep& step = dw_steps_[ref.index];
        status = PrepareGeometry(context, step.node_index, step.input_tensor,
                                 step.output_tensor, step.padding, &step.geometry);
      } else {
        ConvStep& step = steps_[ref.index];
        status = PrepareGeometry(context, step.node_index, step.input_tensor,
                                 step.output_tensor, step.padding, &step.geometry);
      }
      if (status != kTfLiteOk) return status;
    }
    pool_owner_ = state_->ThreadPool(context);
    pool_ = pool_owner_.get();
    // Kernel tuning needs the geometry just computed (kernel_tuning.h).
    for (ConvStep& step : steps_) {
      RefreshBuiltInChoice(state_->options().kernel, &step);
      TuneConvStep(state_, &step, pool_, lr_.get());
    }
    return kTfLiteOk;
  }

  TfLiteStatus Invoke(TfLiteContext* context) {
    const bool reference = state_->options().kernel == kCocopieKernelReference;
    for (size_t i = 0; i < order_.size(); ++i) {
      // After the partition's last convolution the runtime's other kernels
      // run on their own pool: let ours sleep rather than spin against them.
      const bool last = i + 1 == order_.size();
      if (order_[i].kind == StepRef::kSimple) {
        const SimpleOpStep& step = simple_steps_[order_[i].index];
        std::vector<const float*> inputs;
        for (int tensor : step.inputs) inputs.push_back(Data(context, tensor));
        float* output = Data(context, step.output_tensor);
        for (const float* input : inputs) {
          if (input == nullptr) output = nullptr;
        }
        if (output == nullptr) {
          return Unallocated(context, step.node_index);
        }
        RunSimpleOp(step, inputs, output, pool_, last);
        continue;
      }
      if (order_[i].kind == StepRef::kDepthwise) {
        DepthwiseStep& step = dw_steps_[order_[i].index];
        const float* input = Data(context, step.input_tensor);
        float* output = Data(context, step.output_tensor);
        if (input == nullptr || output == nullptr) {
          return Unallocated(context, step.node_index);
        }
        RunDepthwiseStep(&step, input, output, pool_, reference, last);
        continue;
      }
      ConvStep& step = steps_[order_[i].index];
      const float* input = Data(context, step.input_tensor);
      float* output = Data(context, step.output_tensor);
      if (input == nullptr || output == nullptr) {
        return Unallocated(context, step.node_index);
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
  // The claimed nodes in execution order, each in the vector of its kind.
  struct StepRef {
    enum Kind { kConv, kDepthwise, kSimple } kind;
    size_t index;
  };

  static TfLiteStatus Unallocated(TfLiteContext* context, int node_index) {
    context->ReportError(context, "cocopie: node %d has unallocated tensors", node_index);
    return kTfLiteError;
  }

  bool IsPartitionOutput(int tensor) const {
    for (int t : partition_outputs_) {
      if (t == tensor) return true;
    }
    return false;
  }

  int OutputOf(const StepRef& ref) const {
    switch (ref.kind) {
      case StepRef::kSimple: return simple_steps_[ref.index].output_tensor;
      case StepRef::kDepthwise: return dw_steps_[ref.index].output_tensor;
      default: return steps_[ref.index].output_tensor;
    }
  }

  TfLiteStatus PrepareSimpleStep(TfLiteContext* context, SimpleOpStep* step) {
    std::vector<std::vector<int>> dims(step->inputs.size(), std::vector<int>(4));
    std::vector<const int*> views;
    for (size_t k = 0; k < step->inputs.size(); ++k) {
      if (!InputDims(context, step->inputs[k], dims[k].data())) {
        context->ReportError(context, "cocopie: input of node %d is not 4-D",
                             step->node_index);
        return kTfLiteError;
      }
      views.push_back(dims[k].data());
    }
    int out_dims[4];
    std::string error;
    if (!PrepareSimpleOp(step, views, out_dims, &error)) {
      context->ReportError(context, "cocopie: node %d cannot run: %s", step->node_index,
                           error.c_str());
      return kTfLiteError;
    }
    return SizeOutput(context, step->output_tensor, out_dims);
  }

  // An internal buffer, or the runtime's tensor, sized `dims` (NHWC).
  TfLiteStatus SizeOutput(TfLiteContext* context, int tensor, const int dims[4]) {
    auto internal = internal_.find(tensor);
    if (internal == internal_.end()) return ResizeOutput(context, tensor, dims);
    std::memcpy(internal->second.dims, dims, 4 * sizeof(int));
    internal->second.data.resize(static_cast<size_t>(dims[0]) * dims[1] * dims[2] * dims[3]);
    return kTfLiteOk;
  }

  // Sets `g`'s batch and spatial sizes from the step's input and sizes its
  // output (an internal buffer, or the runtime's tensor).
  TfLiteStatus PrepareGeometry(TfLiteContext* context, int node_index, int input_tensor,
                               int output_tensor, Padding padding, ConvGeometry* g) {
    int in_dims[4];
    if (!InputDims(context, input_tensor, in_dims)) {
      context->ReportError(context, "cocopie: input of node %d is not 4-D", node_index);
      return kTfLiteError;
    }
    g->batch = in_dims[0];
    g->in_h = in_dims[1];
    g->in_w = in_dims[2];
    std::string error;
    if (in_dims[3] != g->in_c || !ComputeConvGeometry(padding, g, &error)) {
      context->ReportError(context, "cocopie: node %d cannot run: %s", node_index,
                           error.empty() ? "channel count changed" : error.c_str());
      return kTfLiteError;
    }
    const int out_dims[4] = {g->batch, g->out_h, g->out_w, g->out_c};
    return SizeOutput(context, output_tensor, out_dims);
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
    return ResizeTensorTo(context, tensor, dims, 4);
  }

  static TfLiteStatus ResizeTensorTo(TfLiteContext* context, int tensor,
                                     const int* dims, int rank) {
    TfLiteTensor* t = ContextTensor(context, tensor);
    if (t->dims != nullptr && t->dims->size == rank &&
        std::memcmp(t->dims->data, dims, rank * sizeof(int)) == 0) {
      return kTfLiteOk;
    }
    // ResizeTensor takes ownership and releases the array with free(), the
    // allocator the runtime's own TfLiteIntArrayCreate uses.
    auto* shape = static_cast<TfLiteIntArray*>(
        std::malloc(sizeof(TfLiteIntArray) + rank * sizeof(int)));
    if (shape == nullptr) return kTfLiteError;
    shape->size = rank;
    std::memcpy(shape->data, dims, rank * sizeof(int));
    return context->ResizeTensor(context, t, shape);
  }

  DelegateState* state_;
  // The LR this partition was built from: the delegate's may be replaced
  // by another interpreter's Prepare (delegate_state.h).
  std::shared_ptr<const LayerwiseRepresentation> lr_;
  std::vector<int> partition_outputs_;
  std::vector<int> unused_outputs_;  // dense filters no one reads
  std::vector<StepRef> order_;
  std::vector<ConvStep> steps_;
  std::vector<DepthwiseStep> dw_steps_;
  std::vector<SimpleOpStep> simple_steps_;
  std::map<int, InternalTensor> internal_;
  // Kept while this kernel lives, so that no other Prepare can free it.
  SharedThreadPool pool_owner_;
  pthreadpool_t pool_ = nullptr;
};

// The runtime's entry points: no exception may unwind into it (c_boundary.h).
void* Init(TfLiteContext* context, const char* buffer, size_t) {
  const auto* params = reinterpret_cast<const TfLiteDelegateParams*>(buffer);
  void* kernel = GuardValue<void*>(nullptr, [&]() -> void* {
    return new PartitionKernel(context, *params);
  });
  // Prepare then fails on the null kernel; say why here.
  if (kernel == nullptr) ReportFailure(context, "Init", "could not build the kernel");
  return kernel;
}

void Free(TfLiteContext*, void* kernel) {
  GuardValue(0, [&] {
    delete static_cast<PartitionKernel*>(kernel);
    return 0;
  });
}

TfLiteStatus Prepare(TfLiteContext* context, TfLiteNode* node) {
  if (node->user_data == nullptr) return kTfLiteError;
  return GuardStatus(context, "Prepare", [&] {
    return static_cast<PartitionKernel*>(node->user_data)->Prepare(context);
  });
}

TfLiteStatus Invoke(TfLiteContext* context, TfLiteNode* node) {
  if (node->user_data == nullptr) return kTfLiteError;
  return GuardStatus(context, "Invoke", [&] {
    return static_cast<PartitionKernel*>(node->user_data)->Invoke(context);
  });
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
