#include "delegate/lr/lr_format.h"

#include <algorithm>
#include <cstring>

#include "delegate/lr/lr_schema.h"

namespace cocopie {
namespace {

int PopCount(uint32_t x) { return __builtin_popcount(x); }

bool Fail(std::string* error, const std::string& message) {
  *error = message;
  return false;
}

// Versions 1 and 2 were a hand-made record starting with "CPLR" and a u32
// version; as a size prefix those bytes would claim over a gigabyte, so no
// version-3 buffer starts with them.
bool IsOldVersion(const uint8_t* data, size_t size, std::string* error) {
  if (size < 4 || std::memcmp(data, "CPLR", 4) != 0) return false;
  std::string version = "2 or older";
  if (size >= 8) {
    uint32_t v;
    std::memcpy(&v, data + 4, sizeof(v));
    version = std::to_string(v);
  }
  *error = "LR version " + version +
           " is no longer read; convert the model again with this release (it reads LR "
           "version " + std::to_string(kLrVersion) + ")";
  return true;
}

bool CheckFrame(const uint8_t* data, size_t size, std::string* error) {
  *error = CheckSizePrefixedFrame(data, size, fbs::LayerwiseRepresentationIdentifier(), "LR");
  return error->empty();
}

bool CheckShape(const fbs::Layer& t, size_t num_patterns, const std::string& where,
                std::string* error) {
  const uint32_t out_c = t.out_channels(), in_c = t.in_channels();
  if (out_c == 0 || in_c == 0 || out_c > kMaxChannels || in_c > kMaxChannels) {
    return Fail(error, where + "channel counts out of range (out=" + std::to_string(out_c) +
                           ", in=" + std::to_string(in_c) + ")");
  }
  const uint32_t cells = static_cast<uint32_t>(t.kernel_h()) * t.kernel_w();
  if (t.kernel_h() == 0 || t.kernel_w() == 0 || cells > kMaxKernelCells) {
    return Fail(error, where + "kernel size " + std::to_string(t.kernel_h()) + "x" +
                           std::to_string(t.kernel_w()) + " is not supported");
  }
  if (num_patterns == 0 || num_patterns >= kRemovedKernel) {
    return Fail(error, where + "pattern count " + std::to_string(num_patterns) +
                           " out of range");
  }
  if (t.entries_per_pattern() == 0 || t.entries_per_pattern() > cells) {
    return Fail(error, where + "entries per pattern " +
                           std::to_string(t.entries_per_pattern()) + " out of range");
  }
  if (t.out_group() == 0 || t.out_group() > out_c) {
    return Fail(error, where + "output-channel group " + std::to_string(t.out_group()) +
                           " out of range");
  }
  return true;
}

// The [group][in] pattern ids of `t`, from the plain form (a byte per id) or
// the compact one (kept bitmap + bit-packed ids of the kept kernels).
bool ReadKernelPattern(const fbs::Layer& t, size_t kernels, uint32_t version,
                       const std::string& where, LrLayer* layer, std::string* error) {
  const auto* ids = t.kernel_pattern();
  const auto* kept = t.kernel_kept();
  if (kept == nullptr) {
    if (t.pattern_id_bits() != 0) return Fail(error, where + "pattern_id_bits without kernel_kept");
    const size_t held = ids == nullptr ? 0 : ids->size();
    if (held != kernels) {
      return Fail(error, where + "holds " + std::to_string(held) +
                             " kernel pattern ids, needs " + std::to_string(kernels));
    }
    layer->kernel_pattern.assign(ids->begin(), ids->end());
    return true;
  }
  if (version < 4) {
    return Fail(error, where + "kernel_kept in an LR of version " + std::to_string(version));
  }
  const int bits = t.pattern_id_bits();
  if (bits < 1 || bits > 8) {
    return Fail(error, where + "pattern_id_bits " + std::to_string(bits) + " out of range 1..8");
  }
  if (!PackedSizeIsExact(*kept, kernels, 1)) {
    return Fail(error, where + "kernel_kept does not hold exactly " + std::to_string(kernels) +
                           " bits (unused bits 0)");
  }
  size_t num_kept = 0;
  for (size_t k = 0; k < kernels; ++k) num_kept += PackedField(*kept, k, 1);
  if (ids == nullptr ? num_kept != 0 : !PackedSizeIsExact(*ids, num_kept, bits)) {
    return Fail(error, where + "kernel_pattern does not hold exactly " +
                           std::to_string(num_kept) + " ids of " + std::to_string(bits) +
                           " bits (unused bits 0)");
  }
  layer->kernel_pattern.assign(kernels, kRemovedKernel);
  size_t next = 0;
  for (size_t k = 0; k < kernels; ++k) {
    if (PackedField(*kept, k, 1) != 0) {
      layer->kernel_pattern[k] = static_cast<uint8_t>(PackedField(*ids, next++, bits));
    }
  }
  return true;
}

bool ParseLayer(const fbs::Layer& t, uint32_t index, uint32_t version, LrLayer* layer,
                std::string* error) {
  const std::string where = "LR layer " + std::to_string(index) + ": ";
  const auto* masks = t.pattern_masks();
  const size_t num_patterns = masks == nullptr ? 0 : masks->size();
  if (!CheckShape(t, num_patterns, where, error)) return false;
  layer->op_index = t.op_index();
  layer->filter_tensor = t.filter_tensor();
  layer->out_channels = static_cast<int>(t.out_channels());
  layer->in_channels = static_cast<int>(t.in_channels());
  layer->kernel_h = t.kernel_h();
  layer->kernel_w = t.kernel_w();
  layer->entries_per_pattern = t.entries_per_pattern();
  layer->out_group = t.out_group();
  const uint32_t cells = static_cast<uint32_t>(t.kernel_h()) * t.kernel_w();
  const uint32_t valid_bits = cells == 32 ? 0xFFFFFFFFu : ((1u << cells) - 1u);
  layer->pattern_masks.resize(num_patterns);  // verified: inside the buffer
  for (size_t p = 0; p < num_patterns; ++p) {
    const uint32_t mask = masks->Get(static_cast<flatbuffers::uoffset_t>(p));
    if ((mask & ~valid_bits) != 0 || PopCount(mask) != layer->entries_per_pattern) {
      return Fail(error, where + "pattern " + std::to_string(p) + " does not keep exactly " +
                             std::to_string(layer->entries_per_pattern) +
                             " cells of the kernel");
    }
    layer->pattern_masks[p] = mask;
  }
  const size_t groups = (t.out_channels() + t.out_group() - 1) / t.out_group();
  if (!ReadKernelPattern(t, groups * t.in_channels(), version, where, layer, error)) {
    return false;
  }
  for (size_t k = 0; k < layer->kernel_pattern.size(); ++k) {
    const uint8_t id = layer->kernel_pattern[k];
    if (id != kRemovedKernel && id >= num_patterns) {
      return Fail(error, where + "kernel " + std::to_string(k) + " names pattern " +
                             std::to_string(id) + " but the table has " +
                             std::to_string(num_patterns));
    }
  }
  // The record is judged when a kernel is chosen (kernel_tuning.h): a bad
  // one costs that layer its stored tuning, not the whole LR.
  if (t.tuning() != nullptr) layer->tuning = PackTuningRecord(ReadTuningRecord(*t.tuning()));
  return true;
}

}  // namespace

const LrLayer* LayerwiseRepresentation::FindByOp(int op_index) const {
  if (op_index < 0) return nullptr;
  const uint32_t op = static_cast<uint32_t>(op_index);
  if (by_op_.size() == layers.size()) {
    auto it = std::lower_bound(by_op_.begin(), by_op_.end(),
                               std::make_pair(op, uint32_t{0}));
    if (it != by_op_.end() && it->first == op && it->second < layers.size() &&
        layers[it->second].op_index == op) {
      return &layers[it->second];
    }
    if (it == by_op_.end() || it->first != op) return nullptr;
    // An entry that no longer matches its layer: the layers changed after
    // Reindex; scan them instead.
  }
  for (const LrLayer& layer : layers) {
    if (layer.op_index == op) return &layer;
  }
  return nullptr;
}

bool LayerwiseRepresentation::Reindex(uint32_t* duplicate) {
  by_op_.clear();
  by_op_.reserve(layers.size());
  for (size_t i = 0; i < layers.size(); ++i) {
    by_op_.emplace_back(layers[i].op_index, static_cast<uint32_t>(i));
  }
  std::sort(by_op_.begin(), by_op_.end());
  for (size_t i = 1; i < by_op_.size(); ++i) {
    if (by_op_[i].first == by_op_[i - 1].first) {
      if (duplicate != nullptr) *duplicate = by_op_[i].first;
      by_op_.clear();
      return false;
    }
  }
  return true;
}

bool ParseLayerwiseRepresentation(const uint8_t* data, size_t size,
                                  LayerwiseRepresentation* out,
                                  std::string* error) {
  *out = LayerwiseRepresentation();
  if (data == nullptr) return Fail(error, "LR buffer is null");
  if (IsOldVersion(data, size, error) || !CheckFrame(data, size, error)) return false;
  const AlignedBytes aligned(data, size);
  flatbuffers::Verifier verifier(aligned.data(), size);
  if (!fbs::VerifySizePrefixedLayerwiseRepresentationBuffer(verifier)) {
    return Fail(error, "LR is not a well-formed buffer of schema/cocopie_lr.fbs "
                       "(FlatBuffers' verifier refused it)");
  }
  const fbs::LayerwiseRepresentation* root =
      fbs::GetSizePrefixedLayerwiseRepresentation(aligned.data());
  out->version = root->version();
  if (out->version < kOldestReadLrVersion || out->version > kLrVersion) {
    return Fail(error, "LR version " + std::to_string(out->version) +
                           " is not supported (this delegate reads versions " +
                           std::to_string(kOldestReadLrVersion) + ".." +
                           std::to_string(kLrVersion) + ")");
  }
  const size_t num_layers = root->layers() == nullptr ? 0 : root->layers()->size();
  if (num_layers > kMaxLrLayers) {
    return Fail(error, "LR claims " + std::to_string(num_layers) + " layers");
  }
  if (size / kMinLrLayerBytes < num_layers) {
    return Fail(error, "LR claims " + std::to_string(num_layers) + " layers but holds " +
                           std::to_string(size) + " bytes for them");
  }
  out->layers.resize(num_layers);
  // Several layers may point at one stored vector (the verifier allows it),
  // so the vectors' sizes are added up before any is copied: an LR cannot
  // describe more than it holds.
  size_t described = 0;
  for (size_t i = 0; i < num_layers; ++i) {
    const auto* layer = root->layers()->Get(static_cast<flatbuffers::uoffset_t>(i));
    described += (layer->kernel_pattern() == nullptr ? 0 : layer->kernel_pattern()->size()) +
                 (layer->kernel_kept() == nullptr ? 0 : layer->kernel_kept()->size()) +
                 sizeof(uint32_t) *
                     (layer->pattern_masks() == nullptr ? 0 : layer->pattern_masks()->size());
    if (described > size) {
      return Fail(error, "LR layers 0.." + std::to_string(i) + " describe " +
                             std::to_string(described) + " bytes of pattern ids and masks "
                             "but the buffer holds " + std::to_string(size) +
                             " (layers sharing stored vectors)");
    }
    if (!ParseLayer(*layer, static_cast<uint32_t>(i), out->version, &out->layers[i], error)) {
      return false;
    }
  }
  uint32_t duplicate = 0;
  if (!out->Reindex(&duplicate)) {
    return Fail(error, "LR describes operator " + std::to_string(duplicate) + " twice");
  }
  return true;
}

}  // namespace cocopie
