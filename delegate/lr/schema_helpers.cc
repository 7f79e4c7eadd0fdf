// The framing and bit-packing rules shared by every reader of
// schema/cocopie_lr.fbs buffers (lr_schema.h).
#include "delegate/lr/lr_schema.h"

namespace cocopie {
namespace {

// Size prefix, root offset, file identifier.
constexpr size_t kPreambleBytes = 12;

}  // namespace

std::string CheckSizePrefixedFrame(const uint8_t* data, size_t size, const char* identifier,
                                   const std::string& what) {
  if (size < kPreambleBytes) {
    return what + " is truncated (" + std::to_string(size) + " bytes)";
  }
  uint32_t declared;
  std::memcpy(&declared, data, sizeof(declared));
  if (declared > size - 4) {
    return what + " is truncated: it declares " + std::to_string(declared + 4ull) +
           " bytes, " + std::to_string(size) + " are there";
  }
  if (declared < size - 4) {
    return what + " has " + std::to_string(size - 4 - declared) + " trailing bytes";
  }
  if (std::memcmp(data + 8, identifier, 4) != 0) {
    return what + " does not carry the " + std::string(identifier, 4) + " identifier";
  }
  return "";
}

uint32_t PackedField(const flatbuffers::Vector<uint8_t>& bytes, size_t index, int bits) {
  uint32_t value = 0;
  for (int b = 0; b < bits; ++b) {
    const size_t bit = index * bits + b;
    value |= static_cast<uint32_t>((bytes.Get(static_cast<flatbuffers::uoffset_t>(bit / 8)) >>
                                    (bit % 8)) & 1u) << b;
  }
  return value;
}

bool PackedSizeIsExact(const flatbuffers::Vector<uint8_t>& bytes, size_t count, int bits) {
  const size_t used_bits = count * static_cast<size_t>(bits);
  if (bytes.size() != (used_bits + 7) / 8) return false;
  if (used_bits % 8 == 0) return true;
  const uint8_t last = bytes.Get(static_cast<flatbuffers::uoffset_t>(bytes.size() - 1));
  return (last >> (used_bits % 8)) == 0;
}

}  // namespace cocopie
