// Constant weights stored in TFLite's sparse tensor format, as the converter
// writes pattern-pruned filters (converter/compact.py): a sparse constant
// feeds a DENSIFY node whose output is the convolution's filter.
#ifndef COCOPIE_DELEGATE_LR_SPARSE_WEIGHTS_H_
#define COCOPIE_DELEGATE_LR_SPARSE_WEIGHTS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "delegate/abi/tflite_abi.h"

namespace cocopie {

// A sparse constant's dense size may be at most kMaxSparseExpansion times
// the elements the file stores for it (values and index entries), or
// kSparseDenseAllowance elements for a small one, and never more than
// kMaxSparseDenseElements: a few bytes of file cannot make the delegate
// allocate gigabytes. Pattern pruning stores a filter in well under 1/10 of
// its dense size only when it removes over 95 % of its kernels.
inline constexpr int64_t kMaxSparseExpansion = 64;
inline constexpr int64_t kSparseDenseAllowance = int64_t{1} << 20;
inline constexpr int64_t kMaxSparseDenseElements = int64_t{1} << 28;

enum class SparseProblem {
  kNone,
  // Well formed, but not something the delegate expands (another type, rank
  // over 8, an empty dimension, a dense size beyond the bounds above).
  kUnsupported,
  // The arrays contradict each other or the shape: no reader can expand the
  // tensor safely, the runtime's own DENSIFY included.
  kMalformed,
};

// Checks a constant float32 tensor with `sparsity` against its shape and its
// stored values: traversal order and block map a permutation that fits the
// shape, segments non-decreasing and sized for their parents, indices in
// range, value count equal to the positions visited. Visits every stored
// position once and allocates nothing of the dense size. On a problem, sets
// *error to a one-line explanation.
SparseProblem CheckSparseFloatTensor(const TfLiteTensor& tensor, std::string* error);

// Expands such a tensor into its dense row-major contents, after
// CheckSparseFloatTensor accepted it (so a malformed or oversized tensor is
// an error before anything is allocated, never an out-of-bounds access).
bool DensifyFloatTensor(const TfLiteTensor& tensor, std::vector<float>* dense,
                        std::string* error);

}  // namespace cocopie

#endif  // COCOPIE_DELEGATE_LR_SPARSE_WEIGHTS_H_
