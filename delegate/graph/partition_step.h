// What a partition kernel (partition_kernel.h) is made of: one PartitionStep
// per claimed node, in execution order, and the tensors that live only inside
// the partition. Each operator kind implements the interface in its own
// *_node.cc file; node_handlers.h says which kinds exist.
#ifndef COCOPIE_DELEGATE_GRAPH_PARTITION_STEP_H_
#define COCOPIE_DELEGATE_GRAPH_PARTITION_STEP_H_

#include <map>
#include <utility>
#include <vector>

#include "delegate/kernels/pattern_conv.h"
#include "delegate/abi/tflite_abi.h"

namespace cocopie {

class DelegateState;
struct LayerwiseRepresentation;

// The partition's view of its tensors: an output that no node outside the
// partition reads is an internal buffer (never handed to the runtime's
// arena); every other tensor is the runtime's.
class PartitionTensors {
 public:
  void AddInternal(int tensor) { internal_[tensor] = Internal(); }

  // NHWC dims of `tensor`; false when it is not 4-D.
  bool InputDims(TfLiteContext* context, int tensor, int dims[4]) const;
  // Dims of `tensor`, of any rank; false when it has none.
  bool Dims(TfLiteContext* context, int tensor, std::vector<int>* dims) const;
  // The tensor's float data, or null when the runtime has not allocated it.
  float* Data(TfLiteContext* context, int tensor);
  // Sizes an internal buffer, or resizes the runtime's tensor, to `dims`.
  TfLiteStatus SizeOutput(TfLiteContext* context, int tensor, const int dims[4]);
  TfLiteStatus SizeOutput(TfLiteContext* context, int tensor, const std::vector<int>& dims);
  // Sets `g`'s batch and spatial sizes from the input and sizes the output.
  TfLiteStatus PrepareGeometry(TfLiteContext* context, int node_index, int input_tensor,
                               int output_tensor, Padding padding, ConvGeometry* g);

 private:
  struct Internal {
    std::vector<int> dims;
    std::vector<float> data;
  };
  std::map<int, Internal> internal_;
};

// Resizes a runtime tensor to `dims` (`rank` of them) unless it has them.
TfLiteStatus ResizeTensorTo(TfLiteContext* context, int tensor, const int* dims, int rank);

// Reports that `node_index` met an unallocated tensor; returns kTfLiteError.
TfLiteStatus ReportUnallocated(TfLiteContext* context, int node_index);

// What steps share while they prepare and run.
struct StepEnvironment {
  DelegateState* state = nullptr;
  // The LR the partition was built from (it may no longer be the delegate's).
  const LayerwiseRepresentation* lr = nullptr;
  pthreadpool_t pool = nullptr;
};

class PartitionStep {
 public:
  virtual ~PartitionStep() = default;
  virtual int node_index() const = 0;
  virtual int output_tensor() const = 0;
  // Called in execution order whenever the runtime prepares: sizes the
  // output from the inputs' current shapes (earlier steps have sized theirs).
  virtual TfLiteStatus Prepare(TfLiteContext* context, PartitionTensors* tensors,
                               const StepEnvironment& env) = 0;
  // Called once every step of the partition is prepared (so that nothing is
  // timed for a partition that cannot run): a step whose kernel choice
  // depends on its geometry makes it here.
  virtual void Tune(const StepEnvironment& env) { (void)env; }
  // `release_workers`: this is the partition's last step, after which the
  // runtime's own kernels run (pattern_conv.h).
  virtual TfLiteStatus Invoke(TfLiteContext* context, PartitionTensors* tensors,
                              const StepEnvironment& env, bool release_workers) = 0;
};

// The part every operator's step shares: it holds the operator's own step
// struct `S`, which names the node and its output tensor.
template <typename S>
class StepHolding : public PartitionStep {
 public:
  explicit StepHolding(S step) : step_(std::move(step)) {}
  int node_index() const override { return step_.node_index; }
  int output_tensor() const override { return step_.output_tensor; }

 protected:
  S step_;
};

}  // namespace cocopie

#endif  // COCOPIE_DELEGATE_GRAPH_PARTITION_STEP_H_
