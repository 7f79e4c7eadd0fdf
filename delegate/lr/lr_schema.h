// The delegate's side of schema/cocopie_lr.fbs: the code flatc generates from
// it (at build time, into "schema/cocopie_lr_generated.h"; never kept in the
// sources) and the small helpers the LR and tuning-record parsers share.
// Only the LR and tuning-record codecs and tests include this header, so the
// rest of the delegate does not depend on the generated code.
#ifndef COCOPIE_DELEGATE_LR_LR_SCHEMA_H_
#define COCOPIE_DELEGATE_LR_LR_SCHEMA_H_

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "delegate/lr/lr_format.h"
#include "flatbuffers/flatbuffers.h"
#include "schema/cocopie_lr_generated.h"

namespace cocopie {

namespace fbs = ::cocopie_keras::converter::lr_fbs;

// A buffer's bytes at an address FlatBuffers may read scalars from: the
// verifier refuses misaligned scalars (and reading them would be undefined
// behaviour), while metadata inside a .tflite file has no promised alignment.
// Copies only when `data` is not already 8-byte aligned.
class AlignedBytes {
 public:
  AlignedBytes(const uint8_t* data, size_t size) : data_(data) {
    if (reinterpret_cast<uintptr_t>(data) % sizeof(uint64_t) != 0) {
      copy_.resize((size + sizeof(uint64_t) - 1) / sizeof(uint64_t));
      std::memcpy(copy_.data(), data, size);
      data_ = reinterpret_cast<const uint8_t*>(copy_.data());
    }
  }
  const uint8_t* data() const { return data_; }

 private:
  const uint8_t* data_;
  std::vector<uint64_t> copy_;
};

// The entries of a verified TuningRecord table, as stored (no rule applied).
std::vector<RawTuningEntry> ReadTuningRecord(const fbs::TuningRecord& record);

// Empty when `size` bytes at `data` are framed as the schema's buffers are:
// a u32 size prefix that counts exactly the bytes after it, then the root
// offset and the 4-character `identifier`; otherwise why not, naming the
// buffer as `what`. Checked before the verifier so that the common mistakes
// (truncated, extended, another kind of buffer) get their own message.
std::string CheckSizePrefixedFrame(const uint8_t* data, size_t size, const char* identifier,
                                   const std::string& what);

// Field `index` of `bits` bits from a little-endian bit stream (bit n is
// bit n % 8 of byte n / 8), as the schema packs kernel_kept, the compact
// kernel_pattern and PackedValues.top_byte_ids.
uint32_t PackedField(const flatbuffers::Vector<uint8_t>& bytes, size_t index, int bits);

// True when `bytes` holds exactly ceil(count * bits / 8) bytes and no bit
// past count * bits is set (the schema's canonical packing).
bool PackedSizeIsExact(const flatbuffers::Vector<uint8_t>& bytes, size_t count, int bits);

}  // namespace cocopie

#endif  // COCOPIE_DELEGATE_LR_LR_SCHEMA_H_
