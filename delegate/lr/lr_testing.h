// Test helpers for LR buffers: the schema's bit packing, written the way the
// converter writes it (converter/lr.py pack_bits).
#ifndef COCOPIE_DELEGATE_LR_LR_TESTING_H_
#define COCOPIE_DELEGATE_LR_LR_TESTING_H_

#include <cstdint>
#include <vector>

#include "delegate/lr/lr_format.h"

namespace cocopie {

// `values` (each < 2^bits) as a little-endian bit stream of `bits` each.
inline std::vector<uint8_t> PackBits(const std::vector<uint8_t>& values, int bits) {
  std::vector<uint8_t> packed((values.size() * bits + 7) / 8, 0);
  for (size_t i = 0; i < values.size(); ++i) {
    for (int b = 0; b < bits; ++b) {
      const size_t bit = i * bits + b;
      packed[bit / 8] |= static_cast<uint8_t>(((values[i] >> b) & 1) << (bit % 8));
    }
  }
  return packed;
}

// The compact form of [group][in] pattern ids: (kept bitmap, packed kept ids).
struct CompactIds {
  std::vector<uint8_t> kept;
  std::vector<uint8_t> ids;
};

inline CompactIds CompactForm(const std::vector<uint8_t>& ids, int bits) {
  std::vector<uint8_t> kept_flags, kept_ids;
  for (uint8_t id : ids) {
    kept_flags.push_back(id != kRemovedKernel);
    if (id != kRemovedKernel) kept_ids.push_back(id);
  }
  return {PackBits(kept_flags, 1), PackBits(kept_ids, bits)};
}

}  // namespace cocopie

#endif  // COCOPIE_DELEGATE_LR_LR_TESTING_H_
