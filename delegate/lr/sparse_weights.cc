#include "delegate/lr/sparse_weights.h"

#include <algorithm>
#include <cstdint>
#include <cstring>

namespace cocopie {
namespace {

bool Fail(std::string* error, const std::string& message) {
  *error = "sparse weights: " + message;
  return false;
}

SparseProblem Malformed(std::string* error, const std::string& message) {
  Fail(error, message);
  return SparseProblem::kMalformed;
}

SparseProblem Unsupported(std::string* error, const std::string& message) {
  Fail(error, message);
  return SparseProblem::kUnsupported;
}

// One traversal level, resolved against the tensor's shape.
struct LevelView {
  int dim = 0;          // index into the traversal's dimensions
  bool dense = true;
  int size = 0;         // dense: children per parent
  const TfLiteIntArray* segments = nullptr;
  const TfLiteIntArray* indices = nullptr;
};

// Everything the traversal needs, checked against the shape.
struct Plan {
  int rank = 0;
  std::vector<LevelView> levels;
  std::vector<int> extent;      // per traversal dim
  std::vector<int> block_of;    // per original dim: its block dim or -1
  std::vector<int> block_size;  // per original dim: block size (1 if none)
  std::vector<int64_t> strides;
  int64_t total = 1;            // dense elements
  int64_t stored = 0;           // values plus index entries in the file
  const float* values = nullptr;
  int64_t num_values = 0;
};

// Visits every stored position of a checked plan; with `out`, stores each
// value at its dense offset, without, only checks the indices and the count.
class Expander {
 public:
  Expander(const Plan& plan, float* out)
      : plan_(plan), out_(out), coord_(plan.extent.size(), 0) {}

  bool Run(std::string* error) {
    if (!Visit(0, 0, error)) return false;
    if (next_value_ != plan_.num_values) {
      return Fail(error, std::to_string(plan_.num_values) + " values stored but " +
                             std::to_string(next_value_) + " positions visited");
    }
    return true;
  }

 private:
  bool Visit(size_t level, int64_t position, std::string* error) {
    if (level == plan_.levels.size()) return Store(error);
    const LevelView& l = plan_.levels[level];
    if (l.dense) {
      for (int i = 0; i < l.size; ++i) {
        coord_[l.dim] = i;
        if (!Visit(level + 1, position * l.size + i, error)) return false;
      }
      return true;
    }
    // Segments were checked to be sized for every parent position and
    // non-decreasing within [0, indices->size].
    const int begin = l.segments->data[position];
    const int end = l.segments->data[position + 1];
    for (int k = begin; k < end; ++k) {
      const int index = l.indices->data[k];
      if (index < 0 || index >= plan_.extent[l.dim]) {
        return Fail(error, "index " + std::to_string(index) + " of dim " +
                               std::to_string(l.dim) + " is out of range");
      }
      coord_[l.dim] = index;
      if (!Visit(level + 1, k, error)) return false;
    }
    return true;
  }

  bool Store(std::string* error) {
    if (next_value_ >= plan_.num_values) {
      return Fail(error, "more positions than the " +
                             std::to_string(plan_.num_values) + " stored values");
    }
    if (out_ != nullptr) {
      int64_t offset = 0;
      for (int d = 0; d < plan_.rank; ++d) {
        int64_t c = coord_[d];
        if (plan_.block_of[d] >= 0) {
          c = c * plan_.block_size[d] + coord_[plan_.block_of[d]];
        }
        offset += c * plan_.strides[d];
      }
      out_[offset] = plan_.values[next_value_];
    }
    ++next_value_;
    return true;
  }

  const Plan& plan_;
  float* out_;
  std::vector<int> coord_;
  int64_t next_value_ = 0;
};

int ArraySize(const TfLiteIntArray* a) { return a == nullptr ? 0 : a->size; }

// The format as stored: a hostile file can put any int there, and loading an
// out-of-range enum value is undefined behaviour.
int FormatOf(const TfLiteDimensionMetadata& m) {
  int format;
  std::memcpy(&format, &m.format, sizeof(format));
  return format;
}

// Traversal order, block map and the extent of every traversal dim.
SparseProblem PlanDims(const TfLiteTensor& tensor, Plan* plan, std::string* error) {
  const TfLiteSparsity* sp = tensor.sparsity;
  const TfLiteIntArray* dims = tensor.dims;
  const int rank = plan->rank;
  const int blocks = ArraySize(sp->block_map);
  const int levels = rank + blocks;
  if (ArraySize(sp->traversal_order) != levels || sp->dim_metadata == nullptr ||
      sp->dim_metadata_size != levels) {
    return Malformed(error, "traversal order and metadata do not cover the shape");
  }
  std::vector<int> seen(levels, 0);
  for (int i = 0; i < levels; ++i) {
    const int d = sp->traversal_order->data[i];
    if (d < 0 || d >= levels || seen[d]++) {
      return Malformed(error, "traversal order is not a permutation");
    }
  }
  std::vector<int> level_of(levels);
  for (int i = 0; i < levels; ++i) level_of[sp->traversal_order->data[i]] = i;
  plan->extent.assign(levels, 0);
  plan->block_of.assign(rank, -1);
  plan->block_size.assign(rank, 1);
  for (int d = 0; d < rank; ++d) {
    if (dims->data[d] < 0) return Malformed(error, "negative dimension");
    if (dims->data[d] == 0) return Unsupported(error, "empty dimension");
    plan->extent[d] = dims->data[d];
  }
  for (int k = 0; k < blocks; ++k) {
    const int d = sp->block_map->data[k];
    if (d < 0 || d >= rank || plan->block_of[d] >= 0) {
      return Malformed(error, "block map names an invalid or repeated dim");
    }
    const TfLiteDimensionMetadata& m = sp->dim_metadata[level_of[rank + k]];
    if (FormatOf(m) != kTfLiteDimDense || m.dense_size <= 0 ||
        dims->data[d] % m.dense_size != 0) {
      return Malformed(error, "block of dim " + std::to_string(d) +
                                  " is not a dense divisor of it");
    }
    plan->block_of[d] = rank + k;
    plan->block_size[d] = m.dense_size;
    plan->extent[d] = dims->data[d] / m.dense_size;
    plan->extent[rank + k] = m.dense_size;
  }
  return SparseProblem::kNone;
}

// The levels, in traversal order: dense sizes equal to the extents, index
// arrays sized for their parents. Counts the index entries into plan->stored.
SparseProblem PlanLevels(const TfLiteSparsity& sp, Plan* plan, std::string* error) {
  const int levels = sp.dim_metadata_size;
  plan->levels.assign(levels, LevelView());
  int64_t parents = 1;  // positions the current level's parents can take
  for (int i = 0; i < levels; ++i) {
    const TfLiteDimensionMetadata& m = sp.dim_metadata[i];
    LevelView& v = plan->levels[i];
    v.dim = sp.traversal_order->data[i];
    if (FormatOf(m) == kTfLiteDimDense) {
      if (m.dense_size != plan->extent[v.dim]) {
        return Malformed(error, "dense size of dim " + std::to_string(v.dim) +
                                    " does not match the shape");
      }
      v.size = m.dense_size;
      // Checked before multiplying: a dense size is below 2^31.
      if (parents > kMaxSparseDenseElements / v.size) {
        return Unsupported(error, "dense size beyond " +
                                      std::to_string(kMaxSparseDenseElements) + " elements");
      }
      parents *= v.size;
      continue;
    }
    if (FormatOf(m) != kTfLiteDimSparseCSR || m.array_segments == nullptr ||
        m.array_indices == nullptr) {
      return Malformed(error, "dim " + std::to_string(v.dim) +
                                  " has an unknown format or no index arrays");
    }
    v.dense = false;
    v.segments = m.array_segments;
    v.indices = m.array_indices;
    if (v.segments->size != parents + 1 || v.segments->data[0] != 0 ||
        v.segments->data[v.segments->size - 1] != v.indices->size) {
      return Malformed(error, "segments of dim " + std::to_string(v.dim) +
                                  " do not fit their parents and indices");
    }
    for (int s = 1; s < v.segments->size; ++s) {
      if (v.segments->data[s] < v.segments->data[s - 1]) {
        return Malformed(error, "segments of dim " + std::to_string(v.dim) + " decrease");
      }
    }
    plan->stored += int64_t{v.segments->size} + v.indices->size;
    parents = v.indices->size;
  }
  return SparseProblem::kNone;
}

// Dense size and strides, bounded by what the file stores (see the header).
SparseProblem PlanSize(const TfLiteTensor& tensor, Plan* plan, std::string* error) {
  plan->strides.assign(plan->rank, 1);
  plan->total = 1;
  for (int d = plan->rank - 1; d >= 0; --d) {
    plan->strides[d] = plan->total;
    if (plan->total > kMaxSparseDenseElements / tensor.dims->data[d]) {
      return Unsupported(error, "dense size beyond " +
                                    std::to_string(kMaxSparseDenseElements) + " elements");
    }
    plan->total *= tensor.dims->data[d];
  }
  plan->values = tensor.data.f;
  plan->num_values = static_cast<int64_t>(tensor.bytes / sizeof(float));
  plan->stored += plan->num_values;
  const int64_t allowed =
      std::max(kSparseDenseAllowance, kMaxSparseExpansion * plan->stored);
  if (plan->total > allowed) {
    return Unsupported(error, "a dense size of " + std::to_string(plan->total) +
                                  " elements from " + std::to_string(plan->stored) +
                                  " stored is more than the file can hold");
  }
  return SparseProblem::kNone;
}

SparseProblem MakePlan(const TfLiteTensor& tensor, Plan* plan, std::string* error) {
  const TfLiteSparsity* sp = tensor.sparsity;
  if (sp == nullptr) return Unsupported(error, "tensor has no sparsity parameters");
  if (tensor.type != kTfLiteFloat32 || tensor.data.raw == nullptr) {
    return Unsupported(error, "only constant float32 tensors are read");
  }
  plan->rank = ArraySize(tensor.dims);
  if (plan->rank < 1 || plan->rank > 8) return Unsupported(error, "unsupported rank");
  SparseProblem problem = PlanDims(tensor, plan, error);
  if (problem == SparseProblem::kNone) problem = PlanLevels(*sp, plan, error);
  if (problem == SparseProblem::kNone) problem = PlanSize(tensor, plan, error);
  return problem;
}

}  // namespace

SparseProblem CheckSparseFloatTensor(const TfLiteTensor& tensor, std::string* error) {
  Plan plan;
  const SparseProblem problem = MakePlan(tensor, &plan, error);
  if (problem != SparseProblem::kNone) return problem;
  Expander visit(plan, nullptr);
  return visit.Run(error) ? SparseProblem::kNone : SparseProblem::kMalformed;
}

bool DensifyFloatTensor(const TfLiteTensor& tensor, std::vector<float>* dense,
                        std::string* error) {
  Plan plan;
  if (MakePlan(tensor, &plan, error) != SparseProblem::kNone) return false;
  // Every index and the value count first: a malformed tensor allocates
  // nothing.
  Expander visit(plan, nullptr);
  if (!visit.Run(error)) return false;
  dense->assign(static_cast<size_t>(plan.total), 0.0f);
  Expander expander(plan, dense->data());
  return expander.Run(error);
}

}  // namespace cocopie
