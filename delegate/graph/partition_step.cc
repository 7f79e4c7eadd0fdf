#include "delegate/graph/partition_step.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string>

#include "delegate/graph/conv_node.h"

namespace cocopie {

bool PartitionTensors::InputDims(TfLiteContext* context, int tensor, int dims[4]) const {
  std::vector<int> all;
  if (!Dims(context, tensor, &all) || all.size() != 4) return false;
  std::copy(all.begin(), all.end(), dims);
  return true;
}

bool PartitionTensors::Dims(TfLiteContext* context, int tensor, std::vector<int>* dims) const {
  auto internal = internal_.find(tensor);
  if (internal != internal_.end()) {
    *dims = internal->second.dims;
    return true;
  }
  const TfLiteTensor* t = ContextTensor(context, tensor);
  if (t == nullptr || t->dims == nullptr) return false;
  dims->assign(t->dims->data, t->dims->data + t->dims->size);
  return true;
}

float* PartitionTensors::Data(TfLiteContext* context, int tensor) {
  auto internal = internal_.find(tensor);
  if (internal != internal_.end()) return internal->second.data.data();
  TfLiteTensor* t = ContextTensor(context, tensor);
  return t == nullptr ? nullptr : t->data.f;
}

TfLiteStatus PartitionTensors::SizeOutput(TfLiteContext* context, int tensor,
                                          const int dims[4]) {
  return SizeOutput(context, tensor, std::vector<int>(dims, dims + 4));
}

TfLiteStatus PartitionTensors::SizeOutput(TfLiteContext* context, int tensor,
                                          const std::vector<int>& dims) {
  auto internal = internal_.find(tensor);
  if (internal == internal_.end()) {
    return ResizeTensorTo(context, tensor, dims.data(), static_cast<int>(dims.size()));
  }
  size_t elements = 1;
  for (int d : dims) elements *= static_cast<size_t>(d);
  internal->second.dims = dims;
  internal->second.data.resize(elements);
  return kTfLiteOk;
}

TfLiteStatus PartitionTensors::PrepareGeometry(TfLiteContext* context, int node_index,
                                               int input_tensor, int output_tensor,
                                               Padding padding, ConvGeometry* g) {
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

TfLiteStatus ResizeTensorTo(TfLiteContext* context, int tensor, const int* dims, int rank) {
  TfLiteTensor* t = ContextTensor(context, tensor);
  if (t == nullptr) return kTfLiteError;
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

TfLiteStatus ReportUnallocated(TfLiteContext* context, int node_index) {
  context->ReportError(context, "cocopie: node %d has unallocated tensors", node_index);
  return kTfLiteError;
}

}  // namespace cocopie
