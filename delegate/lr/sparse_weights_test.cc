#include "delegate/lr/sparse_weights.h"

#include <algorithm>
#include <ctime>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <vector>

#include "gtest/gtest.h"

namespace cocopie {
namespace {

// TfLiteIntArray has a flexible member: keep each one in its own int buffer.
class IntArrays {
 public:
  TfLiteIntArray* Make(const std::vector<int>& values) {
    storage_.push_back(std::make_unique<std::vector<int>>(1 + values.size()));
    std::vector<int>& s = *storage_.back();
    s[0] = static_cast<int>(values.size());
    for (size_t i = 0; i < values.size(); ++i) s[1 + i] = values[i];
    return reinterpret_cast<TfLiteIntArray*>(s.data());
  }

 private:
  std::vector<std::unique_ptr<std::vector<int>>> storage_;
};

// A filter (out, kh, kw, in) in the converter's grouped layout: out blocks of
// `group` (dense), in (CSR), kh (dense), kw (CSR), out-in-block (dense).
struct SparseFilter {
  std::vector<int> shape;
  std::vector<int> in_segments, in_indices, col_segments, col_indices;
  std::vector<float> values;
  int group = 1;
};

SparseFilter EncodeGrouped(const std::vector<float>& dense, int out, int kh,
                           int kw, int in, int group) {
  SparseFilter f;
  f.shape = {out, kh, kw, in};
  f.group = group;
  f.in_segments.push_back(0);
  f.col_segments.push_back(0);
  auto at = [&](int o, int r, int c, int i) {
    return dense[((static_cast<size_t>(o) * kh + r) * kw + c) * in + i];
  };
  for (int b = 0; b < out / group; ++b) {
    for (int i = 0; i < in; ++i) {
      bool any = false;
      for (int g = 0; g < group; ++g)
        for (int r = 0; r < kh; ++r)
          for (int c = 0; c < kw; ++c) any |= at(b * group + g, r, c, i) != 0.0f;
      if (!any) continue;
      f.in_indices.push_back(i);
      for (int r = 0; r < kh; ++r) {
        for (int c = 0; c < kw; ++c) {
          bool kept = false;
          for (int g = 0; g < group; ++g) kept |= at(b * group + g, r, c, i) != 0.0f;
          if (!kept) continue;
          f.col_indices.push_back(c);
          for (int g = 0; g < group; ++g) f.values.push_back(at(b * group + g, r, c, i));
        }
        f.col_segments.push_back(static_cast<int>(f.col_indices.size()));
      }
    }
    f.in_segments.push_back(static_cast<int>(f.in_indices.size()));
  }
  return f;
}

// A TfLiteTensor view of `f` (arrays owned by `arrays`).
struct TensorView {
  TfLiteTensor tensor{};
  TfLiteSparsity sparsity{};
  TfLiteDimensionMetadata meta[5]{};
};

void View(SparseFilter* f, IntArrays* arrays, TensorView* v) {
  v->meta[0] = {kTfLiteDimDense, f->shape[0] / f->group, nullptr, nullptr};
  v->meta[1] = {kTfLiteDimSparseCSR, 0, arrays->Make(f->in_segments),
                arrays->Make(f->in_indices)};
  v->meta[2] = {kTfLiteDimDense, f->shape[1], nullptr, nullptr};
  v->meta[3] = {kTfLiteDimSparseCSR, 0, arrays->Make(f->col_segments),
                arrays->Make(f->col_indices)};
  v->meta[4] = {kTfLiteDimDense, f->group, nullptr, nullptr};
  v->sparsity.traversal_order = arrays->Make({0, 3, 1, 2, 4});
  v->sparsity.block_map = arrays->Make({0});
  v->sparsity.dim_metadata = v->meta;
  v->sparsity.dim_metadata_size = 5;
  v->tensor.type = kTfLiteFloat32;
  v->tensor.data.f = f->values.data();
  v->tensor.bytes = f->values.size() * sizeof(float);
  v->tensor.dims = arrays->Make(f->shape);
  v->tensor.allocation_type = kTfLiteMmapRo;
  v->tensor.sparsity = &v->sparsity;
}

// Co-design structure: per (block, in) either removed or one 4-cell pattern.
std::vector<float> RandomCodesignFilter(int out, int in, int group, std::mt19937* rng) {
  std::vector<float> dense(static_cast<size_t>(out) * 9 * in, 0.0f);
  std::uniform_real_distribution<float> value(-1.0f, 1.0f);
  for (int b = 0; b < out / group; ++b) {
    for (int i = 0; i < in; ++i) {
      if ((*rng)() % 3 == 0) continue;  // connectivity-pruned
      int cells[9] = {0, 1, 2, 3, 4, 5, 6, 7, 8};
      std::shuffle(cells, cells + 9, *rng);
      for (int g = 0; g < group; ++g)
        for (int k = 0; k < 4; ++k)
          dense[(static_cast<size_t>(b * group + g) * 9 + cells[k]) * in + i] = value(*rng);
    }
  }
  return dense;
}

TEST(SparseWeights, GroupedFilterRoundTrips) {
  std::mt19937 rng(7);
  for (int group : {1, 2, 8, 32}) {
    const int out = 2 * group, in = 5;
    const std::vector<float> dense = RandomCodesignFilter(out, in, group, &rng);
    SparseFilter f = EncodeGrouped(dense, out, 3, 3, in, group);
    IntArrays arrays;
    TensorView v;
    View(&f, &arrays, &v);
    std::vector<float> back;
    std::string error;
    ASSERT_TRUE(DensifyFloatTensor(v.tensor, &back, &error)) << error;
    EXPECT_EQ(back, dense) << "group " << group;
  }
}

TEST(SparseWeights, PlainCsrOverTheLastDimension) {
  // A 2 x 4 matrix, rows dense, columns compressed: [[0 5 0 6], [7 0 0 0]].
  IntArrays arrays;
  std::vector<float> values = {5, 6, 7};
  TfLiteDimensionMetadata meta[2] = {
      {kTfLiteDimDense, 2, nullptr, nullptr},
      {kTfLiteDimSparseCSR, 0, arrays.Make({0, 2, 3}), arrays.Make({1, 3, 0})}};
  TfLiteSparsity sparsity{arrays.Make({0, 1}), nullptr, meta, 2};
  TfLiteTensor t{};
  t.type = kTfLiteFloat32;
  t.data.f = values.data();
  t.bytes = values.size() * sizeof(float);
  t.dims = arrays.Make({2, 4});
  t.sparsity = &sparsity;
  std::vector<float> dense;
  std::string error;
  ASSERT_TRUE(DensifyFloatTensor(t, &dense, &error)) << error;
  EXPECT_EQ(dense, (std::vector<float>{0, 5, 0, 6, 7, 0, 0, 0}));
}

TEST(SparseWeights, InconsistentArraysAreErrors) {
  std::mt19937 rng(3);
  const std::vector<float> dense = RandomCodesignFilter(4, 3, 2, &rng);
  struct Case {
    const char* what;
    void (*mutate)(SparseFilter*);
  };
  const Case cases[] = {
      {"index beyond its dim", [](SparseFilter* f) { f->in_indices[0] = 3; }},
      {"negative index", [](SparseFilter* f) { f->col_indices[0] = -1; }},
      {"segment past the indices", [](SparseFilter* f) { f->in_segments.back() += 1; }},
      {"segments too short", [](SparseFilter* f) { f->col_segments.pop_back(); }},
      {"decreasing segments", [](SparseFilter* f) { f->col_segments[1] = -5; }},
      {"value missing", [](SparseFilter* f) { f->values.pop_back(); }},
      {"shape not a multiple of the block", [](SparseFilter* f) { f->shape[0] = 5; }},
  };
  for (const Case& c : cases) {
    SparseFilter f = EncodeGrouped(dense, 4, 3, 3, 3, 2);
    c.mutate(&f);
    IntArrays arrays;
    TensorView v;
    View(&f, &arrays, &v);
    std::vector<float> back;
    std::string error;
    EXPECT_FALSE(DensifyFloatTensor(v.tensor, &back, &error)) << c.what;
    EXPECT_FALSE(error.empty()) << c.what;
  }
  SparseFilter f = EncodeGrouped(dense, 4, 3, 3, 3, 2);
  IntArrays arrays;
  TensorView v;
  View(&f, &arrays, &v);
  std::vector<float> back;
  std::string error;
  v.sparsity.traversal_order->data[1] = 0;  // not a permutation
  EXPECT_FALSE(DensifyFloatTensor(v.tensor, &back, &error));
  v.sparsity.traversal_order->data[1] = 3;
  v.meta[2].dense_size = 4;  // kh is 3
  EXPECT_FALSE(DensifyFloatTensor(v.tensor, &back, &error));
  v.meta[2].dense_size = 3;
  const int unknown_format = 9;  // stored as a file could store it
  std::memcpy(&v.meta[4].format, &unknown_format, sizeof(int));
  EXPECT_FALSE(DensifyFloatTensor(v.tensor, &back, &error));
  v.meta[4].format = kTfLiteDimDense;
  v.tensor.sparsity = nullptr;
  EXPECT_FALSE(DensifyFloatTensor(v.tensor, &back, &error));
}

// Random single-integer mutations of every array: the parser may accept or
// refuse, but must never read or write out of bounds (ASan/UBSan run this).
TEST(SparseWeights, MutationRunNeverCrashes) {
  std::mt19937 rng(20261125);
  const std::vector<float> dense = RandomCodesignFilter(8, 6, 4, &rng);
  int accepted = 0;
  for (int iteration = 0; iteration < 4000; ++iteration) {
    SparseFilter f = EncodeGrouped(dense, 8, 3, 3, 6, 4);
    std::vector<int>* targets[] = {&f.in_segments, &f.in_indices, &f.col_segments,
                                   &f.col_indices, &f.shape};
    std::vector<int>& target = *targets[rng() % 5];
    if (!target.empty()) {
      const int delta = static_cast<int>(rng() % 7) - 3;
      target[rng() % target.size()] += delta == 0 ? 100 : delta;
    }
    if (rng() % 8 == 0 && !f.values.empty()) f.values.resize(rng() % f.values.size());
    IntArrays arrays;
    TensorView v;
    View(&f, &arrays, &v);
    std::vector<float> back;
    std::string error;
    if (DensifyFloatTensor(v.tensor, &back, &error)) {
      ++accepted;
      size_t expected = 1;
      for (int d : f.shape) expected *= static_cast<size_t>(d);
      EXPECT_EQ(back.size(), expected);
    } else {
      EXPECT_FALSE(error.empty());
    }
  }
  EXPECT_GT(accepted, 0);  // some mutations (e.g. a value count) stay valid
}

// A (rows, 1, 1, columns) filter, rows dense and columns CSR, that stores
// nothing: every row empty. Its arrays are owned by `arrays`.
struct EmptyRows {
  std::vector<float> values;
  TfLiteDimensionMetadata meta[4]{};
  TfLiteSparsity sparsity{};
  TfLiteTensor tensor{};

  EmptyRows(int rows, int columns, IntArrays* arrays) {
    meta[0] = {kTfLiteDimDense, rows, nullptr, nullptr};
    meta[1] = {kTfLiteDimDense, 1, nullptr, nullptr};
    meta[2] = {kTfLiteDimDense, 1, nullptr, nullptr};
    meta[3] = {kTfLiteDimSparseCSR, 0, arrays->Make(std::vector<int>(rows + 1, 0)),
               arrays->Make({})};
    sparsity = {arrays->Make({0, 1, 2, 3}), nullptr, meta, 4};
    tensor.type = kTfLiteFloat32;
    values.assign(1, 0.0f);
    tensor.data.f = values.data();  // a constant with no values stored
    tensor.bytes = 0;
    tensor.dims = arrays->Make({rows, 1, 1, columns});
    tensor.allocation_type = kTfLiteMmapRo;
    tensor.sparsity = &sparsity;
  }
};

// Seeded mutations of every array and field, the "lying" ones included
// (dense sizes, formats, traversal order, value count, shape): the check
// and the expansion agree, a refusal is malformed or unsupported with a
// reason, and the whole run stays short.
TEST(SparseWeights, MutationRunIsClassifiedAndBounded) {
  std::mt19937 rng(20261207);
  const std::vector<float> dense = RandomCodesignFilter(8, 6, 4, &rng);
  int counts[3] = {0, 0, 0};
  const std::clock_t start = std::clock();  // CPU time: the machine may be busy
  for (int iteration = 0; iteration < 3000; ++iteration) {
    SparseFilter f = EncodeGrouped(dense, 8, 3, 3, 6, 4);
    IntArrays arrays;
    TensorView v;
    const int what = static_cast<int>(rng() % 8);
    std::vector<int>* targets[] = {&f.in_segments, &f.in_indices, &f.col_segments,
                                   &f.col_indices, &f.shape};
    if (what < 5 && !targets[what]->empty()) {
      std::vector<int>& target = *targets[what];
      target[rng() % target.size()] =
          rng() % 2 ? static_cast<int>(rng()) : static_cast<int>(rng() % 9) - 4;
    }
    if (what == 5 && !f.values.empty()) f.values.resize(rng() % f.values.size());
    View(&f, &arrays, &v);
    if (what == 6) {
      const int field = static_cast<int>(rng());
      std::memcpy(&v.meta[rng() % 5].format, &field, sizeof(int));
    }
    if (what == 7) v.meta[rng() % 5].dense_size = static_cast<int>(rng() % 70000) - 3;
    std::string check_error, error;
    const SparseProblem problem = CheckSparseFloatTensor(v.tensor, &check_error);
    std::vector<float> back;
    const bool expanded = DensifyFloatTensor(v.tensor, &back, &error);
    ASSERT_EQ(expanded, problem == SparseProblem::kNone) << check_error;
    if (!expanded) {
      EXPECT_EQ(error, check_error);
      EXPECT_FALSE(error.empty());
      EXPECT_EQ(back.capacity(), 0u);
    }
    ++counts[static_cast<int>(problem)];
  }
  const double seconds = static_cast<double>(std::clock() - start) / CLOCKS_PER_SEC;
  EXPECT_LT(seconds, 10.0);  // about 0.2 s under ASan
  EXPECT_GT(counts[static_cast<int>(SparseProblem::kNone)], 0);
  EXPECT_GT(counts[static_cast<int>(SparseProblem::kMalformed)], 0);
}

TEST(SparseWeights, ProblemsAreClassified) {
  std::mt19937 rng(3);
  const std::vector<float> dense = RandomCodesignFilter(4, 3, 2, &rng);
  SparseFilter f = EncodeGrouped(dense, 4, 3, 3, 3, 2);
  IntArrays arrays;
  TensorView v;
  View(&f, &arrays, &v);
  std::string error;
  EXPECT_EQ(CheckSparseFloatTensor(v.tensor, &error), SparseProblem::kNone) << error;
  const int first = v.meta[1].array_indices->data[0];
  v.meta[1].array_indices->data[0] = 3;  // in is 3: out of range
  EXPECT_EQ(CheckSparseFloatTensor(v.tensor, &error), SparseProblem::kMalformed);
  v.meta[1].array_indices->data[0] = first;
  v.tensor.type = kTfLiteInt8;  // well formed, but not read here
  EXPECT_EQ(CheckSparseFloatTensor(v.tensor, &error), SparseProblem::kUnsupported);
  v.tensor.type = kTfLiteFloat32;
  v.meta[2].dense_size = 4;  // kh is 3
  EXPECT_EQ(CheckSparseFloatTensor(v.tensor, &error), SparseProblem::kMalformed);
  v.meta[2].dense_size = 3;
  IntArrays more;
  EmptyRows huge(4096, 32768, &more);
  EXPECT_EQ(CheckSparseFloatTensor(huge.tensor, &error), SparseProblem::kUnsupported);
}

// 4,097 stored index entries cannot declare a 512 MiB filter: refused before
// the dense filter is allocated.
TEST(SparseWeights, DenseSizeBeyondWhatIsStoredIsRefusedBeforeAllocating) {
  IntArrays arrays;
  EmptyRows huge(4096, 32768, &arrays);
  std::vector<float> dense;
  std::string error;
  EXPECT_FALSE(DensifyFloatTensor(huge.tensor, &dense, &error));
  EXPECT_NE(error.find("more than the file can hold"), std::string::npos) << error;
  EXPECT_EQ(dense.capacity(), 0u);

  // The same structure at a size a real (fully pruned) layer has expands.
  EmptyRows small(64, 64, &arrays);
  ASSERT_TRUE(DensifyFloatTensor(small.tensor, &dense, &error)) << error;
  EXPECT_EQ(dense, std::vector<float>(64 * 64, 0.0f));
}

// Dense dimensions whose product overflows 64 bits are refused, not
// multiplied (UBSan checks that no signed overflow happens).
TEST(SparseWeights, HugeDenseDimensionsAreRefusedWithoutOverflow) {
  IntArrays arrays;
  const int big = 0x7FFFFFFF;
  // 512 * big stays below 2^40; one more factor of big would overflow.
  std::vector<TfLiteDimensionMetadata> meta(8, {kTfLiteDimDense, big, nullptr, nullptr});
  meta[0].dense_size = 512;
  TfLiteSparsity sparsity{arrays.Make({0, 1, 2, 3, 4, 5, 6, 7}), nullptr, meta.data(), 8};
  std::vector<float> values(4, 1.0f);
  TfLiteTensor t{};
  t.type = kTfLiteFloat32;
  t.data.f = values.data();
  t.bytes = values.size() * sizeof(float);
  t.dims = arrays.Make({512, big, big, big, big, big, big, big});
  t.sparsity = &sparsity;
  std::vector<float> dense;
  std::string error;
  EXPECT_FALSE(DensifyFloatTensor(t, &dense, &error));
  EXPECT_FALSE(error.empty());
  EXPECT_EQ(dense.capacity(), 0u);
}

// A malformed tensor is refused before anything of its dense size is
// allocated (an index out of range, found while visiting, included).
TEST(SparseWeights, MalformedTensorAllocatesNothing) {
  std::mt19937 rng(5);
  const std::vector<float> dense = RandomCodesignFilter(8, 6, 4, &rng);
  SparseFilter f = EncodeGrouped(dense, 8, 3, 3, 6, 4);
  f.col_indices.back() = 7;  // kw is 3
  IntArrays arrays;
  TensorView v;
  View(&f, &arrays, &v);
  std::vector<float> back;
  std::string error;
  EXPECT_FALSE(DensifyFloatTensor(v.tensor, &back, &error));
  EXPECT_NE(error.find("out of range"), std::string::npos) << error;
  EXPECT_EQ(back.capacity(), 0u);
}

}  // namespace
}  // namespace cocopie
