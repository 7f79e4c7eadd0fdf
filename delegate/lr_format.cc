#include "delegate/lr_format.h"

#include <algorithm>
#include <cstring>

namespace cocopie {
namespace {

// Sequential little-endian reader that refuses to step past the end.
class Reader {
 public:
  Reader(const uint8_t* data, size_t size) : data_(data), size_(size) {}

  template <typename T>
  bool Read(T* value) {
    if (size_ - pos_ < sizeof(T)) return false;
    T v;
    std::memcpy(&v, data_ + pos_, sizeof(T));  // metadata is not aligned
    pos_ += sizeof(T);
    *value = v;  // targets are little-endian (x86-64, aarch64)
    return true;
  }

  bool ReadBytes(size_t n, const uint8_t** begin) {
    if (size_ - pos_ < n) return false;
    *begin = data_ + pos_;
    pos_ += n;
    return true;
  }

  size_t remaining() const { return size_ - pos_; }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
};

// Bytes of the smallest layer: its fixed fields, one pattern mask and one
// pattern id.
constexpr size_t kMinLayerBytes = 4 + 4 + 4 + 2 + 2 + 4 + 2 + 2 + 2 + 2 + 4 + 1;

int PopCount(uint32_t x) { return __builtin_popcount(x); }

bool Fail(std::string* error, const std::string& message) {
  *error = message;
  return false;
}

bool ParseLayer(Reader* reader, uint32_t index, LrLayer* layer,
                std::string* error) {
  const std::string where = "LR layer " + std::to_string(index) + ": ";
  uint32_t out_c, in_c;
  uint16_t kh, kw, num_patterns, entries, out_group, tuning_bytes;
  if (!reader->Read(&layer->op_index) || !reader->Read(&layer->filter_tensor) ||
      !reader->Read(&out_c) || !reader->Read(&kh) || !reader->Read(&kw) ||
      !reader->Read(&in_c) || !reader->Read(&num_patterns) ||
      !reader->Read(&entries) || !reader->Read(&out_group) ||
      !reader->Read(&tuning_bytes)) {
    return Fail(error, where + "truncated header");
  }
  if (out_c == 0 || in_c == 0 || out_c > kMaxChannels || in_c > kMaxChannels) {
    return Fail(error, where + "channel counts out of range (out=" +
                           std::to_string(out_c) +
                           ", in=" + std::to_string(in_c) + ")");
  }
  const uint32_t cells = static_cast<uint32_t>(kh) * kw;
  if (kh == 0 || kw == 0 || cells > kMaxKernelCells) {
    return Fail(error, where + "kernel size " + std::to_string(kh) + "x" +
                           std::to_string(kw) + " is not supported");
  }
  if (num_patterns == 0 || num_patterns >= kRemovedKernel) {
    return Fail(error, where + "pattern count " +
                           std::to_string(num_patterns) + " out of range");
  }
  if (entries == 0 || entries > cells) {
    return Fail(error, where + "entries per pattern " +
                           std::to_string(entries) + " out of range");
  }
  if (out_group == 0 || out_group > out_c) {
    return Fail(error, where + "output-channel group " +
                           std::to_string(out_group) + " out of range");
  }
  layer->out_channels = static_cast<int>(out_c);
  layer->out_group = out_group;
  layer->in_channels = static_cast<int>(in_c);
  layer->kernel_h = kh;
  layer->kernel_w = kw;
  layer->entries_per_pattern = entries;
  if (reader->remaining() < sizeof(uint32_t) * num_patterns) {
    return Fail(error, where + "truncated patterns");
  }
  layer->pattern_masks.resize(num_patterns);
  const uint32_t valid_bits =
      cells == 32 ? 0xFFFFFFFFu : ((1u << cells) - 1u);
  for (uint16_t p = 0; p < num_patterns; ++p) {
    uint32_t mask;
    if (!reader->Read(&mask)) return Fail(error, where + "truncated patterns");
    if ((mask & ~valid_bits) != 0 || PopCount(mask) != entries) {
      return Fail(error, where + "pattern " + std::to_string(p) +
                             " does not keep exactly " +
                             std::to_string(entries) + " cells of the kernel");
    }
    layer->pattern_masks[p] = mask;
  }
  const uint8_t* tuning;
  if (!reader->ReadBytes(tuning_bytes, &tuning)) {
    return Fail(error, where + "truncated tuning record");
  }
  layer->tuning.assign(tuning, tuning + tuning_bytes);
  const size_t groups = (out_c + out_group - 1) / out_group;
  const size_t kernels = groups * in_c;
  const uint8_t* ids;
  if (!reader->ReadBytes(kernels, &ids)) {
    return Fail(error, where + "truncated kernel pattern ids (need " +
                           std::to_string(kernels) + " bytes)");
  }
  layer->kernel_pattern.assign(ids, ids + kernels);
  for (size_t k = 0; k < kernels; ++k) {
    if (ids[k] != kRemovedKernel && ids[k] >= num_patterns) {
      return Fail(error, where + "kernel " + std::to_string(k) +
                             " names pattern " + std::to_string(ids[k]) +
                             " but the table has " +
                             std::to_string(num_patterns));
    }
  }
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
  Reader reader(data, size);
  const uint8_t* magic;
  if (!reader.ReadBytes(4, &magic) || std::memcmp(magic, "CPLR", 4) != 0) {
    return Fail(error, "LR does not start with the CPLR magic");
  }
  uint32_t num_layers;
  if (!reader.Read(&out->version) || !reader.Read(&num_layers)) {
    return Fail(error, "LR header is truncated");
  }
  if (out->version != kLrVersion) {
    return Fail(error, "LR version " + std::to_string(out->version) +
                           " is not supported (this delegate reads version " +
                           std::to_string(kLrVersion) + ")");
  }
  if (num_layers > kMaxLrLayers) {
    return Fail(error, "LR claims " + std::to_string(num_layers) + " layers");
  }
  if (reader.remaining() / kMinLayerBytes < num_layers) {
    return Fail(error, "LR claims " + std::to_string(num_layers) + " layers but holds " +
                           std::to_string(reader.remaining()) + " bytes for them");
  }
  out->layers.clear();
  out->layers.resize(num_layers);
  for (uint32_t i = 0; i < num_layers; ++i) {
    if (!ParseLayer(&reader, i, &out->layers[i], error)) return false;
  }
  if (reader.remaining() != 0) {
    return Fail(error, "LR has " + std::to_string(reader.remaining()) +
                           " trailing bytes");
  }
  uint32_t duplicate = 0;
  if (!out->Reindex(&duplicate)) {
    return Fail(error, "LR describes operator " + std::to_string(duplicate) + " twice");
  }
  return true;
}

}  // namespace cocopie
