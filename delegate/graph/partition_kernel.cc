#include "delegate/graph/partition_kernel.h"

#include <memory>
#include <new>
#include <stdexcept>
#include <string>
#include <vector>

#include "delegate/abi/c_boundary.h"
#include "delegate/graph/conv_node.h"
#include "delegate/graph/delegate_state.h"
#include "delegate/graph/graph_pass.h"
#include "delegate/graph/node_handlers.h"
#include "delegate/graph/partition_step.h"

namespace cocopie {
namespace {

// One connected group of claimed nodes, run step by step in execution order.
class PartitionKernel {
 public:
  PartitionKernel(TfLiteContext* context, const TfLiteDelegateParams& params)
      : state_(DelegateState::From(params.delegate)), lr_(state_->shared_lr()) {
    for (int i = 0; i < params.output_tensors->size; ++i) {
      partition_outputs_.push_back(params.output_tensors->data[i]);
    }
    for (int i = 0; i < params.nodes_to_replace->size; ++i) {
      NodeQuery query;
      query.context = context;
      query.node_index = params.nodes_to_replace->data[i];
      TfLiteNode* node;
      TfLiteRegistration* registration;
      context->GetNodeAndRegistration(context, query.node_index, &node, &registration);
      query.node = node;
      query.builtin_code = registration->builtin_code;
      if (IsFilterFeedNode(*registration)) {
        // Its convolution reads the constant itself (FindFilterFeeds); the
        // dense filter is never computed.
        if (IsPartitionOutput(node->outputs->data[0])) {
          unused_outputs_.push_back(node->outputs->data[0]);
        }
        continue;
      }
      // Every claimed node passed its handler's check in DelegatePrepare.
      const NodeHandler* handler = FindNodeHandler(query.builtin_code);
      if (handler == nullptr) {
        throw std::logic_error("node " + std::to_string(query.node_index) +
                               " was claimed without a handler");
      }
      if (handler->described_by_lr) {
        query.layer = lr_->FindByOp(query.node_index);
        const int sparse = state_->SparseFilterOf(query.node_index);
        query.sparse_filter = sparse >= 0 ? ContextTensor(context, sparse) : nullptr;
      }
      steps_.push_back(handler->create(query, *state_));
    }
    for (const auto& step : steps_) {
      if (!IsPartitionOutput(step->output_tensor())) tensors_.AddInternal(step->output_tensor());
    }
  }

  TfLiteStatus Prepare(TfLiteContext* context) {
    // The runtime may put a filter feed in an earlier partition than its
    // convolution; its dense output then crosses partitions but is read by
    // nobody (the convolution is ours and uses the sparse constant). Shrink it
    // so the arena does not reserve a dense filter for it.
    for (int tensor : unused_outputs_) {
      const int empty[1] = {0};
      if (ResizeTensorTo(context, tensor, empty, 1) != kTfLiteOk) return kTfLiteError;
    }
    pool_owner_ = state_->ThreadPool(context);
    const StepEnvironment env = Environment();
    // In execution order: a step's input may be an earlier step's internal
    // output, whose shape that step has just set.
    for (const auto& step : steps_) {
      const TfLiteStatus status = step->Prepare(context, &tensors_, env);
      if (status != kTfLiteOk) return status;
    }
    for (const auto& step : steps_) step->Tune(env);
    return kTfLiteOk;
  }

  TfLiteStatus Invoke(TfLiteContext* context) {
    const StepEnvironment env = Environment();
    for (size_t i = 0; i < steps_.size(); ++i) {
      // After the partition's last step the runtime's other kernels run on
      // their own pool: let ours sleep rather than spin against them.
      const bool last = i + 1 == steps_.size();
      const TfLiteStatus status = steps_[i]->Invoke(context, &tensors_, env, last);
      if (status != kTfLiteOk) return status;
    }
    return kTfLiteOk;
  }

 private:
  StepEnvironment Environment() const {
    StepEnvironment env;
    env.state = state_;
    env.lr = lr_.get();
    env.pool = pool_owner_.get();
    return env;
  }

  bool IsPartitionOutput(int tensor) const {
    for (int t : partition_outputs_) {
      if (t == tensor) return true;
    }
    return false;
  }

  DelegateState* state_;
  // The LR this partition was built from: the delegate's may be replaced
  // by another interpreter's Prepare (delegate_state.h).
  std::shared_ptr<const LayerwiseRepresentation> lr_;
  std::vector<int> partition_outputs_;
  std::vector<int> unused_outputs_;  // dense filters no one reads
  std::vector<std::unique_ptr<PartitionStep>> steps_;
  PartitionTensors tensors_;
  // Kept while this kernel lives, so that no other Prepare can free it.
  SharedThreadPool pool_owner_;
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
