#include "delegate/lr/packed_values.h"

#include <cstring>

#include "delegate/lr/lr_schema.h"

namespace cocopie {
namespace {

// Most values one buffer may hold (converter/packed.py MAX_VALUES).
constexpr size_t kMaxPackedValues = size_t{1} << 28;

bool Fail(std::string* error, const std::string& message) {
  *error = "packed filter: " + message;
  return false;
}

int IdBits(size_t distinct) {
  int bits = 0;
  while ((size_t{1} << bits) < distinct) ++bits;
  return bits;
}

}  // namespace

bool ParsePackedValues(const uint8_t* data, size_t size, std::vector<float>* values,
                       std::string* error) {
  values->clear();
  if (data == nullptr) return Fail(error, "buffer is null");
  const std::string frame =
      CheckSizePrefixedFrame(data, size, kPackedValuesIdentifier, "buffer");
  if (!frame.empty()) return Fail(error, frame);
  const AlignedBytes aligned(data, size);
  flatbuffers::Verifier verifier(aligned.data(), size);
  if (!verifier.VerifySizePrefixedBuffer<fbs::PackedValues>(kPackedValuesIdentifier)) {
    return Fail(error, "not a well-formed PackedValues buffer of schema/cocopie_lr.fbs "
                       "(FlatBuffers' verifier refused it)");
  }
  const auto* root = flatbuffers::GetSizePrefixedRoot<fbs::PackedValues>(aligned.data());
  const size_t count = root->count();
  const auto* table = root->top_bytes();
  const auto* ids = root->top_byte_ids();
  const auto* low = root->low_bytes();
  if (count > kMaxPackedValues) {
    return Fail(error, std::to_string(count) + " values, at most " +
                           std::to_string(kMaxPackedValues) + " are read");
  }
  const size_t distinct = table == nullptr ? 0 : table->size();
  if (distinct < 1 || distinct > 256) {
    return Fail(error, std::to_string(distinct) + " top bytes (expected 1..256)");
  }
  for (size_t i = 1; i < distinct; ++i) {
    if (table->Get(i) <= table->Get(i - 1)) {
      return Fail(error, "top bytes are not distinct and ascending");
    }
  }
  const int bits = IdBits(distinct);
  if (root->top_byte_bits() != bits) {
    return Fail(error, std::to_string(root->top_byte_bits()) + "-bit top-byte ids for " +
                           std::to_string(distinct) + " top bytes (expected " +
                           std::to_string(bits) + ")");
  }
  if ((low == nullptr ? 0 : low->size()) != 3 * count) {
    return Fail(error, std::to_string(low == nullptr ? 0 : low->size()) + " low bytes for " +
                           std::to_string(count) + " values (expected " +
                           std::to_string(3 * count) + ")");
  }
  const size_t id_bytes = ids == nullptr ? 0 : ids->size();
  if (bits == 0 ? id_bytes != 0 : (ids == nullptr || !PackedSizeIsExact(*ids, count, bits))) {
    return Fail(error, "top-byte ids do not fill exactly " + std::to_string(count) + " fields of " +
                           std::to_string(bits) + " bits (unused bits 0)");
  }
  values->resize(count);
  for (size_t k = 0; k < count; ++k) {
    const uint32_t id = bits == 0 ? 0 : PackedField(*ids, k, bits);
    if (id >= distinct) {
      values->clear();
      return Fail(error, "a top-byte id is " + std::to_string(id) + ", the table has " +
                             std::to_string(distinct));
    }
    const size_t at = 3 * k;
    const uint32_t word = static_cast<uint32_t>(table->Get(id)) << 24 |
                          static_cast<uint32_t>(low->Get(at + 2)) << 16 |
                          static_cast<uint32_t>(low->Get(at + 1)) << 8 | low->Get(at);
    std::memcpy(&(*values)[k], &word, sizeof(word));
  }
  return true;
}

bool ExpandPackedFilter(const LrLayer& layer, const std::vector<float>& values,
                        std::vector<float>* filter_ohwi, std::string* error) {
  const size_t kh = layer.kernel_h, kw = layer.kernel_w, in = layer.in_channels;
  size_t kept = 0;
  for (int o = 0; o < layer.out_channels; ++o) {
    for (size_t i = 0; i < in; ++i) {
      const uint8_t id = layer.PatternOf(o, static_cast<int>(i));
      if (id != kRemovedKernel) kept += __builtin_popcount(layer.pattern_masks[id]);
    }
  }
  if (kept != values.size()) {
    return Fail(error, "holds " + std::to_string(values.size()) + " values, its LR layer keeps " +
                           std::to_string(kept) + " weights");
  }
  filter_ohwi->assign(static_cast<size_t>(layer.out_channels) * kh * kw * in, 0.0f);
  size_t next = 0;
  for (int o = 0; o < layer.out_channels; ++o) {
    for (size_t i = 0; i < in; ++i) {
      const uint8_t id = layer.PatternOf(o, static_cast<int>(i));
      if (id == kRemovedKernel) continue;
      const uint32_t mask = layer.pattern_masks[id];
      for (size_t cell = 0; cell < kh * kw; ++cell) {
        if ((mask >> cell) & 1u) {
          (*filter_ohwi)[((static_cast<size_t>(o) * kh + cell / kw) * kw + cell % kw) * in + i] =
              values[next++];
        }
      }
    }
  }
  return true;
}

}  // namespace cocopie
