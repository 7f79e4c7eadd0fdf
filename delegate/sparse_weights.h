// Constant weights stored in TFLite's sparse tensor format, as the converter
// writes pattern-pruned filters (converter/compact.py): a sparse constant
// feeds a DENSIFY node whose output is the convolution's filter.
#ifndef COCOPIE_DELEGATE_SPARSE_WEIGHTS_H_
#define COCOPIE_DELEGATE_SPARSE_WEIGHTS_H_

#include <string>
#include <vector>

#include "delegate/tflite_abi.h"

namespace cocopie {

// Expands a constant float32 tensor with `sparsity` into its dense row-major
// contents. Every array is validated before use (traversal order and block
// map a permutation that fits the shape, segments non-decreasing and sized
// for their parents, indices in range, value count equal to the positions
// visited): a malformed tensor is an error, never an out-of-bounds access.
bool DensifyFloatTensor(const TfLiteTensor& tensor, std::vector<float>* dense,
                        std::string* error);

}  // namespace cocopie

#endif  // COCOPIE_DELEGATE_SPARSE_WEIGHTS_H_
