#include "delegate/graph/lr_from_weights.h"

#include <dlfcn.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <map>
#include <numeric>
#include <vector>

#include "delegate/graph/conv_node.h"
#include "delegate/lr/sparse_weights.h"

namespace cocopie {
namespace {

// Base address of the loaded object containing `address`, or null.
const void* LoadedObjectOf(const void* address) {
  Dl_info info;
  if (address == nullptr || dladdr(address, &info) == 0) return nullptr;
  return info.dli_fbase;
}

template <typename Function>
const void* CodeAddress(Function* function) {
  return reinterpret_cast<const void*>(reinterpret_cast<uintptr_t>(function));
}

// Cells in increasing distance from the kernel's centre (row-major among
// equals): the order in which a small support is grown to a full pattern,
// so that the centre, the most useful tap, is kept first.
std::vector<int> CellsByDistanceToCentre(int kernel_h, int kernel_w) {
  std::vector<int> cells(static_cast<size_t>(kernel_h) * kernel_w);
  std::iota(cells.begin(), cells.end(), 0);
  auto distance = [&](int cell) {
    return std::hypot(cell / kernel_w - (kernel_h - 1) / 2.0,
                      cell % kernel_w - (kernel_w - 1) / 2.0);
  };
  std::stable_sort(cells.begin(), cells.end(),
                   [&](int a, int b) { return distance(a) < distance(b); });
  return cells;
}

int PopCount(uint32_t x) { return __builtin_popcount(x); }

}  // namespace

bool ModelMetadataReachable(const TfLiteContext* context, std::string* why) {
  if (context->GetModelMetadata == nullptr) {
    *why = "this runtime gives delegates no model metadata";
    return false;
  }
  const void* runtime = LoadedObjectOf(CodeAddress(context->GetExecutionPlan));
  const void* metadata = LoadedObjectOf(CodeAddress(context->GetModelMetadata));
  if (runtime == nullptr || metadata != runtime) {
    *why = "this runtime's TfLiteContext has no usable GetModelMetadata "
           "(older than the field?)";
    return false;
  }
  return true;
}

bool LrLayerFromFilter(const float* filter_ohwi, int out_channels,
                       int kernel_h, int kernel_w, int in_channels,
                       int entries, LrLayer* layer, std::string* why) {
  const int cells = kernel_h * kernel_w;
  if (out_channels <= 0 || in_channels <= 0 || kernel_h <= 0 ||
      kernel_w <= 0 || cells > static_cast<int>(kMaxKernelCells) ||
      entries <= 0 || entries >= cells) {
    *why = "kernel " + std::to_string(kernel_h) + "x" +
           std::to_string(kernel_w) + " cannot hold " +
           std::to_string(entries) + "-cell patterns";
    return false;
  }
  // Non-zero support of every kernel, [out][in].
  const size_t kernels = static_cast<size_t>(out_channels) * in_channels;
  std::vector<uint32_t> support(kernels, 0);
  for (int co = 0; co < out_channels; ++co) {
    for (int cell = 0; cell < cells; ++cell) {
      const float* row =
          filter_ohwi + (static_cast<size_t>(co) * cells + cell) * in_channels;
      for (int ci = 0; ci < in_channels; ++ci) {
        if (row[ci] != 0.0f) {
          support[static_cast<size_t>(co) * in_channels + ci] |= 1u << cell;
        }
      }
    }
  }
  for (size_t k = 0; k < kernels; ++k) {
    if (PopCount(support[k]) > entries) {
      *why = "kernel [out " + std::to_string(k / in_channels) + ", in " +
             std::to_string(k % in_channels) + "] keeps " +
             std::to_string(PopCount(support[k])) + " cells, more than " +
             std::to_string(entries);
      return false;
    }
  }
  // Patterns: every full-size support first, then smaller supports that no
  // pattern covers yet, grown towards the centre.
  std::vector<uint32_t> patterns;
  auto add_unique = [&](uint32_t mask) {
    if (std::find(patterns.begin(), patterns.end(), mask) == patterns.end()) {
      patterns.push_back(mask);
    }
  };
  for (uint32_t s : support) {
    if (PopCount(s) == entries) add_unique(s);
  }
  const std::vector<int> order = CellsByDistanceToCentre(kernel_h, kernel_w);
  auto covered = [&](uint32_t s) {
    return std::any_of(patterns.begin(), patterns.end(),
                       [s](uint32_t p) { return (s & ~p) == 0; });
  };
  for (uint32_t s : support) {
    if (s == 0 || covered(s)) continue;
    uint32_t grown = s;
    for (int cell : order) {
      if (PopCount(grown) == entries) break;
      grown |= 1u << cell;
    }
    add_unique(grown);
  }
  if (patterns.empty()) {  // every kernel removed: any one pattern will do
    uint32_t mask = 0;
    for (int i = 0; i < entries; ++i) mask |= 1u << order[i];
    patterns.push_back(mask);
  }
  if (patterns.size() >= kRemovedKernel) {  // ids must stay below the marker
    *why = "the layer needs " + std::to_string(patterns.size()) +
           " patterns, more than an LR layer can index";
    return false;
  }

  layer->out_channels = out_channels;
  layer->in_channels = in_channels;
  layer->kernel_h = kernel_h;
  layer->kernel_w = kernel_w;
  layer->entries_per_pattern = entries;
  layer->pattern_masks = patterns;
  layer->kernel_pattern.assign(kernels, kRemovedKernel);
  for (size_t k = 0; k < kernels; ++k) {
    if (support[k] == 0) continue;
    for (size_t p = 0; p < patterns.size(); ++p) {
      if ((support[k] & ~patterns[p]) == 0) {
        layer->kernel_pattern[k] = static_cast<uint8_t>(p);
        break;
      }
    }
  }
  return true;
}

bool LrFromModelWeights(TfLiteContext* context, LayerwiseRepresentation* lr,
                        std::string* summary) {
  *lr = LayerwiseRepresentation();
  lr->version = kLrVersion;
  TfLiteIntArray* plan = nullptr;
  if (context->GetExecutionPlan(context, &plan) != kTfLiteOk ||
      plan == nullptr) {
    *summary = "could not read the execution plan";
    return false;
  }
  // Compact files store filters sparse behind DENSIFY nodes.
  std::map<int, int> sparse_source_of;  // dense output -> sparse constant
  for (int i = 0; i < plan->size; ++i) {
    TfLiteNode* node = nullptr;
    TfLiteRegistration* registration = nullptr;
    if (context->GetNodeAndRegistration(context, plan->data[i], &node,
                                        &registration) == kTfLiteOk &&
        registration->builtin_code == kTfLiteBuiltinDensify &&
        node->inputs != nullptr && node->inputs->size == 1 &&
        node->outputs != nullptr && node->outputs->size == 1) {
      sparse_source_of[node->outputs->data[0]] = node->inputs->data[0];
    }
  }
  int convs = 0;
  std::string first_refusal;
  for (int i = 0; i < plan->size; ++i) {
    const int node_index = plan->data[i];
    TfLiteNode* node = nullptr;
    TfLiteRegistration* registration = nullptr;
    if (context->GetNodeAndRegistration(context, node_index, &node,
                                        &registration) != kTfLiteOk ||
        registration->builtin_code != kTfLiteBuiltinConv2d) {
      continue;
    }
    ++convs;
    if (node->inputs == nullptr || node->inputs->size < 2) continue;
    const int filter_index = node->inputs->data[1];
    const TfLiteTensor* filter = ContextTensor(context, filter_index);
    if (filter == nullptr || filter->type != kTfLiteFloat32 ||
        filter->dims == nullptr || filter->dims->size != 4) {
      continue;
    }
    const int* d = filter->dims->data;
    if (d[1] != 3 || d[2] != 3) continue;
    std::vector<float> expanded;
    const float* values = nullptr;
    auto source = sparse_source_of.find(filter_index);
    if (source != sparse_source_of.end()) {
      const TfLiteTensor* sparse = ContextTensor(context, source->second);
      std::string error;
      if (sparse == nullptr || !IsConstantTensor(sparse) ||
          !SameDims(sparse->dims, filter->dims) ||
          !DensifyFloatTensor(*sparse, &expanded, &error) ||
          expanded.size() != static_cast<size_t>(d[0]) * d[1] * d[2] * d[3]) {
        continue;
      }
      values = expanded.data();
    } else if (IsConstantTensor(filter) && filter->data.raw != nullptr &&
               filter->sparsity == nullptr &&
               filter->bytes == sizeof(float) * static_cast<size_t>(d[0]) *
                                    d[1] * d[2] * d[3]) {
      values = filter->data.f;
    } else {
      continue;
    }
    LrLayer layer;
    std::string why;
    if (!LrLayerFromFilter(values, d[0], d[1], d[2], d[3],
                           kDerivedPatternEntries, &layer, &why)) {
      if (first_refusal.empty()) {
        first_refusal = "node " + std::to_string(node_index) + ": " + why;
      }
      continue;
    }
    layer.op_index = static_cast<uint32_t>(node_index);
    layer.filter_tensor = static_cast<uint32_t>(filter_index);
    lr->layers.push_back(std::move(layer));
  }
  lr->Reindex();  // node indices are distinct
  *summary = "patterns derived from the weights of " +
             std::to_string(lr->layers.size()) + " of " +
             std::to_string(convs) + " CONV_2D nodes";
  if (!first_refusal.empty()) *summary += " (first refused: " + first_refusal + ")";
  return !lr->layers.empty();
}

}  // namespace cocopie
