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

}  // namespace cocopie

#endif  // COCOPIE_DELEGATE_LR_LR_SCHEMA_H_
