#include "delegate/sparse_weights.h"

#include <cstdint>
#include <cstring>

namespace cocopie {
namespace {

bool Fail(std::string* error, const std::string& message) {
  *error = "sparse weights: " + message;
  return false;
}

// One traversal level, resolved against the tensor's shape.
struct LevelView {
  int dim = 0;          // index into the traversal's dimensions
  bool dense = true;
  int size = 0;         // dense: children per parent
  const TfLiteIntArray* segments = nullptr;
  const TfLiteIntArray* indices = nullptr;
};

class Expander {
 public:
  Expander(std::vector<LevelView> levels, std::vector<int> extent, int rank,
           std::vector<int> block_of, std::vector<int> block_size,
           std::vector<int64_t> strides, const float* values, int64_t num_values,
           float* out)
      : levels_(std::move(levels)), extent_(std::move(extent)), rank_(rank),
        block_of_(std::move(block_of)), block_size_(std::move(block_size)),
        strides_(std::move(strides)), values_(values), num_values_(num_values),
        out_(out), coord_(extent_.size(), 0) {}

  bool Run(std::string* error) {
    if (!Visit(0, 0, error)) return false;
    if (next_value_ != num_values_) {
      return Fail(error, std::to_string(num_values_) + " values stored but " +
                             std::to_string(next_value_) + " positions visited");
    }
    return true;
  }

 private:
  bool Visit(size_t level, int64_t position, std::string* error) {
    if (level == levels_.size()) return Store(error);
    const LevelView& l = levels_[level];
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
      if (index < 0 || index >= extent_[l.dim]) {
        return Fail(error, "index " + std::to_string(index) + " of dim " +
                               std::to_string(l.dim) + " is out of range");
      }
      coord_[l.dim] = index;
      if (!Visit(level + 1, k, error)) return false;
    }
    return true;
  }

  bool Store(std::string* error) {
    if (next_value_ >= num_values_) {
      return Fail(error, "more positions than the " +
                             std::to_string(num_values_) + " stored values");
    }
    int64_t offset = 0;
    for (int d = 0; d < rank_; ++d) {
      int64_t c = coord_[d];
      if (block_of_[d] >= 0) c = c * block_size_[d] + coord_[block_of_[d]];
      offset += c * strides_[d];
    }
    out_[offset] = values_[next_value_++];
    return true;
  }

  std::vector<LevelView> levels_;
  std::vector<int> extent_;
  int rank_;
  std::vector<int> block_of_;    // per original dim: its block dim or -1
  std::vector<int> block_size_;  // per original dim: block size (1 if none)
  std::vector<int64_t> strides_;
  const float* values_;
  int64_t num_values_;
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

}  // namespace

bool DensifyFloatTensor(const TfLiteTensor& tensor, std::vector<float>* dense,
                        std::string* error) {
  const TfLiteSparsity* sp = tensor.sparsity;
  if (sp == nullptr) return Fail(error, "tensor has no sparsity parameters");
  if (tensor.type != kTfLiteFloat32 || tensor.data.raw == nullptr) {
    return Fail(error, "only constant float32 tensors are read");
  }
  const TfLiteIntArray* dims = tensor.dims;
  const int rank = ArraySize(dims);
  if (rank < 1 || rank > 8) return Fail(error, "unsupported rank");
  const int blocks = ArraySize(sp->block_map);
  const int levels = rank + blocks;
  if (ArraySize(sp->traversal_order) != levels || sp->dim_metadata == nullptr ||
      sp->dim_metadata_size != levels) {
    return Fail(error, "traversal order and metadata do not cover the shape");
  }
  std::vector<int> seen(levels, 0), block_of(rank, -1), block_size(rank, 1);
  for (int i = 0; i < levels; ++i) {
    const int d = sp->traversal_order->data[i];
    if (d < 0 || d >= levels || seen[d]++) {
      return Fail(error, "traversal order is not a permutation");
    }
  }
  std::vector<int> level_of(levels);
  for (int i = 0; i < levels; ++i) level_of[sp->traversal_order->data[i]] = i;
  std::vector<int> extent(levels, 0);
  for (int d = 0; d < rank; ++d) {
    if (dims->data[d] <= 0) return Fail(error, "empty or negative dimension");
    extent[d] = dims->data[d];
  }
  for (int k = 0; k < blocks; ++k) {
    const int d = sp->block_map->data[k];
    if (d < 0 || d >= rank || block_of[d] >= 0) {
      return Fail(error, "block map names an invalid or repeated dim");
    }
    const TfLiteDimensionMetadata& m = sp->dim_metadata[level_of[rank + k]];
    if (FormatOf(m) != kTfLiteDimDense || m.dense_size <= 0 ||
        dims->data[d] % m.dense_size != 0) {
      return Fail(error, "block of dim " + std::to_string(d) +
                             " is not a dense divisor of it");
    }
    block_of[d] = rank + k;
    block_size[d] = m.dense_size;
    extent[d] = dims->data[d] / m.dense_size;
    extent[rank + k] = m.dense_size;
  }
  std::vector<LevelView> views(levels);
  int64_t parents = 1;  // positions the current level's parents can take
  for (int i = 0; i < levels; ++i) {
    const TfLiteDimensionMetadata& m = sp->dim_metadata[i];
    LevelView& v = views[i];
    v.dim = sp->traversal_order->data[i];
    if (FormatOf(m) == kTfLiteDimDense) {
      if (m.dense_size != extent[v.dim]) {
        return Fail(error, "dense size of dim " + std::to_string(v.dim) +
                               " does not match the shape");
      }
      v.size = m.dense_size;
      parents *= v.size;
      if (parents > (int64_t{1} << 40)) return Fail(error, "absurd tensor size");
      continue;
    }
    if (FormatOf(m) != kTfLiteDimSparseCSR || m.array_segments == nullptr ||
        m.array_indices == nullptr) {
      return Fail(error, "dim " + std::to_string(v.dim) +
                             " has an unknown format or no index arrays");
    }
    v.dense = false;
    v.segments = m.array_segments;
    v.indices = m.array_indices;
    if (v.segments->size != parents + 1 || v.segments->data[0] != 0 ||
        v.segments->data[v.segments->size - 1] != v.indices->size) {
      return Fail(error, "segments of dim " + std::to_string(v.dim) +
                             " do not fit their parents and indices");
    }
    for (int s = 1; s < v.segments->size; ++s) {
      if (v.segments->data[s] < v.segments->data[s - 1]) {
        return Fail(error, "segments of dim " + std::to_string(v.dim) +
                               " decrease");
      }
    }
    parents = v.indices->size;
  }
  int64_t total = 1;
  std::vector<int64_t> strides(rank, 1);
  for (int d = rank - 1; d >= 0; --d) {
    strides[d] = total;
    total *= dims->data[d];
  }
  if (total > (int64_t{1} << 31)) return Fail(error, "tensor too large");
  const int64_t num_values = static_cast<int64_t>(tensor.bytes / sizeof(float));
  dense->assign(static_cast<size_t>(total), 0.0f);
  Expander expander(std::move(views), std::move(extent), rank,
                    std::move(block_of), std::move(block_size), std::move(strides),
                    tensor.data.f, num_values, dense->data());
  return expander.Run(error);
}

}  // namespace cocopie
