// Deriving the LR from pattern-pruned weights, and the delegate falling back
// to it when the runtime cannot hand over the model's metadata.
#include "delegate/graph/lr_from_weights.h"

#include <memory>
#include <random>
#include <vector>

#include "delegate/cocopie_delegate.h"
#include "delegate/kernels/pattern_conv.h"
#include "gtest/gtest.h"

namespace cocopie {
namespace {

uint32_t Bits(std::initializer_list<int> cells) {
  uint32_t mask = 0;
  for (int c : cells) mask |= 1u << c;
  return mask;
}

// An OHWI 3x3 filter whose kernels each keep one of `masks` (random values)
// or are all zero with probability `removed`.
std::vector<float> PatternFilter(int out_c, int in_c, const std::vector<uint32_t>& masks,
                                 double removed, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> value(0.1f, 1.0f);
  std::uniform_real_distribution<double> coin(0.0, 1.0);
  std::vector<float> filter(static_cast<size_t>(out_c) * 9 * in_c, 0.0f);
  for (int co = 0; co < out_c; ++co) {
    for (int ci = 0; ci < in_c; ++ci) {
      if (coin(rng) < removed) continue;
      const uint32_t mask = masks[rng() % masks.size()];
      for (int cell = 0; cell < 9; ++cell) {
        if (mask & (1u << cell)) {
          filter[(static_cast<size_t>(co) * 9 + cell) * in_c + ci] =
              (rng() % 2 ? 1.0f : -1.0f) * value(rng);
        }
      }
    }
  }
  return filter;
}

// The dense filter the packed weights stand for.
std::vector<float> Unpack(const PackedPatternWeights& w) {
  const int cells = w.kernel_h * w.kernel_w;
  std::vector<float> filter(static_cast<size_t>(w.out_c) * cells * w.in_c, 0.0f);
  for (int co = 0; co < w.out_c; ++co) {
    for (int k = w.kernel_begin[co]; k < w.kernel_begin[co + 1]; ++k) {
      const std::vector<int> kept = MaskCells(w.pattern_masks[w.pattern[k]]);
      for (size_t j = 0; j < kept.size(); ++j) {
        filter[(static_cast<size_t>(co) * cells + kept[j]) * w.in_c + w.in_channel[k]] =
            w.weights[static_cast<size_t>(k) * w.entries + j];
      }
    }
  }
  return filter;
}

TEST(LrLayerFromFilter, CoversEveryKernelAndKeepsEveryWeight) {
  const std::vector<uint32_t> masks = {Bits({4, 1, 3, 5}), Bits({4, 7, 3, 5}),
                                       Bits({4, 1, 7, 3}), Bits({0, 1, 2, 4})};
  const int out_c = 7, in_c = 5;
  const std::vector<float> filter = PatternFilter(out_c, in_c, masks, 0.3, 7);
  LrLayer layer;
  std::string why;
  ASSERT_TRUE(LrLayerFromFilter(filter.data(), out_c, 3, 3, in_c, 4, &layer, &why)) << why;
  EXPECT_EQ(layer.entries_per_pattern, 4);
  EXPECT_LE(layer.pattern_masks.size(), masks.size());
  for (uint32_t mask : layer.pattern_masks) EXPECT_EQ(__builtin_popcount(mask), 4);
  for (int co = 0; co < out_c; ++co) {
    for (int ci = 0; ci < in_c; ++ci) {
      bool any = false;
      for (int cell = 0; cell < 9; ++cell) {
        any |= filter[(static_cast<size_t>(co) * 9 + cell) * in_c + ci] != 0.0f;
      }
      EXPECT_EQ(layer.PatternOf(co, ci) == kRemovedKernel, !any) << co << "," << ci;
    }
  }
  const PackedPatternWeights packed = PackPatternWeights(layer, filter.data(), nullptr);
  EXPECT_EQ(Unpack(packed), filter);
}

TEST(LrLayerFromFilter, GrowsSmallSupportsTowardsTheCentre) {
  // One kernel keeps only a corner cell, the other only the centre.
  std::vector<float> filter(2 * 9 * 1, 0.0f);
  filter[0] = 2.0f;       // out 0, cell 0
  filter[9 + 4] = 3.0f;   // out 1, cell 4
  LrLayer layer;
  std::string why;
  ASSERT_TRUE(LrLayerFromFilter(filter.data(), 2, 3, 3, 1, 4, &layer, &why)) << why;
  ASSERT_EQ(layer.pattern_masks.size(), 1u);  // the grown corner covers the centre too
  EXPECT_EQ(layer.pattern_masks[0], Bits({0, 4, 1, 3}));
  EXPECT_EQ(layer.PatternOf(0, 0), 0);
  EXPECT_EQ(layer.PatternOf(1, 0), 0);
}

TEST(LrLayerFromFilter, AllZeroFilterRemovesEveryKernel) {
  std::vector<float> filter(3 * 9 * 2, 0.0f);
  LrLayer layer;
  std::string why;
  ASSERT_TRUE(LrLayerFromFilter(filter.data(), 3, 3, 3, 2, 4, &layer, &why)) << why;
  ASSERT_EQ(layer.pattern_masks.size(), 1u);
  EXPECT_EQ(layer.pattern_masks[0], Bits({4, 1, 3, 5}));
  for (uint8_t id : layer.kernel_pattern) EXPECT_EQ(id, kRemovedKernel);
}

TEST(LrLayerFromFilter, RefusesDenseKernelsAndImpossibleSizes) {
  std::vector<float> filter(2 * 9 * 3, 0.0f);
  for (int cell : {0, 2, 4, 6, 8}) filter[(9 + cell) * 3 + 2] = 1.0f;  // out 1, in 2
  LrLayer layer;
  std::string why;
  EXPECT_FALSE(LrLayerFromFilter(filter.data(), 2, 3, 3, 3, 4, &layer, &why));
  EXPECT_NE(why.find("kernel [out 1, in 2] keeps 5 cells"), std::string::npos) << why;
  EXPECT_FALSE(LrLayerFromFilter(filter.data(), 2, 3, 3, 3, 9, &layer, &why));
  EXPECT_FALSE(LrLayerFromFilter(filter.data(), 1, 7, 7, 1, 4, &layer, &why));  // 49 cells
  EXPECT_FALSE(LrLayerFromFilter(filter.data(), 0, 3, 3, 3, 4, &layer, &why));
}

// ---- a minimal runtime: one float32 CONV_2D node -----------------------------

std::vector<int> IntArrayStorage(std::initializer_list<int> values) {
  std::vector<int> storage{static_cast<int>(values.size())};
  storage.insert(storage.end(), values);
  return storage;
}
TfLiteIntArray* AsIntArray(std::vector<int>* storage) {
  return reinterpret_cast<TfLiteIntArray*>(storage->data());
}

class FakeRuntime {
 public:
  explicit FakeRuntime(std::vector<float> filter)
      : filter_(std::move(filter)),
        bias_(5, 0.5f),
        plan_(IntArrayStorage({0})),
        inputs_(IntArrayStorage({0, 1, 2})),
        outputs_(IntArrayStorage({3})),
        input_dims_(IntArrayStorage({1, 6, 6, 4})),
        filter_dims_(IntArrayStorage({5, 3, 3, 4})),
        bias_dims_(IntArrayStorage({5})),
        output_dims_(IntArrayStorage({1, 6, 6, 5})) {
    tensors_.resize(4);
    SetTensor(0, kTfLiteArenaRw, nullptr, 0, &input_dims_);
    SetTensor(1, kTfLiteMmapRo, filter_.data(), filter_.size(), &filter_dims_);
    SetTensor(2, kTfLiteMmapRo, bias_.data(), bias_.size(), &bias_dims_);
    SetTensor(3, kTfLiteArenaRw, nullptr, 0, &output_dims_);
    params_.padding = kTfLitePaddingSame;
    params_.stride_width = params_.stride_height = 1;
    params_.dilation_width_factor = params_.dilation_height_factor = 1;
    params_.activation = kTfLiteActRelu;
    node_.inputs = AsIntArray(&inputs_);
    node_.outputs = AsIntArray(&outputs_);
    node_.builtin_data = &params_;
    registration_.builtin_code = kTfLiteBuiltinConv2d;
    context_.tensors_size = tensors_.size();
    context_.tensors = tensors_.data();
    context_.impl_ = this;
    context_.GetExecutionPlan = [](TfLiteContext* c, TfLiteIntArray** plan) {
      *plan = AsIntArray(&Self(c)->plan_);
      return kTfLiteOk;
    };
    context_.GetNodeAndRegistration = [](TfLiteContext* c, int index, TfLiteNode** node,
                                         TfLiteRegistration** registration) {
      if (index != 0) return kTfLiteError;
      *node = &Self(c)->node_;
      *registration = &Self(c)->registration_;
      return kTfLiteOk;
    };
    context_.ReplaceNodeSubsetsWithDelegateKernels =
        [](TfLiteContext* c, TfLiteRegistration, const TfLiteIntArray* nodes,
           TfLiteDelegate*) {
          Self(c)->replaced_ = nodes->size;
          return kTfLiteOk;
        };
  }

  TfLiteContext* context() { return &context_; }
  int replaced() const { return replaced_; }

 private:
  static FakeRuntime* Self(TfLiteContext* c) { return static_cast<FakeRuntime*>(c->impl_); }
  void SetTensor(int i, TfLiteAllocationType allocation, float* data, size_t count,
                 std::vector<int>* dims) {
    tensors_[i].type = kTfLiteFloat32;
    tensors_[i].allocation_type = allocation;
    tensors_[i].data.f = data;
    tensors_[i].bytes = count * sizeof(float);
    tensors_[i].dims = AsIntArray(dims);
  }

  std::vector<float> filter_, bias_;
  std::vector<int> plan_, inputs_, outputs_, input_dims_, filter_dims_, bias_dims_,
      output_dims_;
  std::vector<TfLiteTensor> tensors_;
  TfLiteConvParams params_{};
  TfLiteNode node_{};
  TfLiteRegistration registration_{};
  TfLiteContext context_{};
  int replaced_ = 0;
};

TfLiteStatus MetadataNotFound(const TfLiteContext*, const char*, const char**, size_t*) {
  return kTfLiteError;
}

TEST(ModelMetadataReachable, AcceptsOnlyAFunctionOfTheRuntime) {
  FakeRuntime runtime(std::vector<float>(5 * 9 * 4, 0.0f));
  TfLiteContext* context = runtime.context();
  std::string why;
  EXPECT_FALSE(ModelMetadataReachable(context, &why));
  EXPECT_NE(why.find("no model metadata"), std::string::npos) << why;

  context->GetModelMetadata = MetadataNotFound;  // same binary as the plan accessor
  EXPECT_TRUE(ModelMetadataReachable(context, &why));

  // What an older runtime leaves in the slot: a data pointer, not code.
  auto heap = std::make_unique<int64_t[]>(16);
  context->GetModelMetadata = reinterpret_cast<decltype(context->GetModelMetadata)>(
      reinterpret_cast<uintptr_t>(heap.get()));
  EXPECT_FALSE(ModelMetadataReachable(context, &why));
  EXPECT_NE(why.find("no usable GetModelMetadata"), std::string::npos) << why;
}

class DelegateWithoutMetadata : public ::testing::Test {
 protected:
  // Prepares a fresh delegate on `runtime` whose metadata slot holds
  // garbage (it must never be called); returns the claimed node count.
  static int Claimed(FakeRuntime* runtime) {
    auto heap = std::make_unique<int64_t[]>(16);
    runtime->context()->GetModelMetadata =
        reinterpret_cast<decltype(runtime->context()->GetModelMetadata)>(
            reinterpret_cast<uintptr_t>(heap.get()));
    TfLiteDelegate* delegate = CocopieDelegateCreate(nullptr);
    EXPECT_NE(delegate, nullptr);
    EXPECT_EQ(delegate->Prepare(runtime->context(), delegate), kTfLiteOk);
    const int claimed = CocopieDelegateClaimedNodes(delegate);
    CocopieDelegateDelete(delegate);
    return claimed;
  }
};

TEST_F(DelegateWithoutMetadata, ClaimsAPatternPrunedConvFromItsWeights) {
  FakeRuntime runtime(PatternFilter(5, 4, {Bits({4, 1, 3, 5}), Bits({4, 7, 5, 8})}, 0.2, 3));
  EXPECT_EQ(Claimed(&runtime), 1);
  EXPECT_EQ(runtime.replaced(), 1);
}

TEST_F(DelegateWithoutMetadata, LeavesADenseConvToStockKernels) {
  std::vector<float> dense(5 * 9 * 4, 0.25f);
  FakeRuntime runtime(dense);
  EXPECT_EQ(Claimed(&runtime), 0);
  EXPECT_EQ(runtime.replaced(), 0);
}

}  // namespace
}  // namespace cocopie
