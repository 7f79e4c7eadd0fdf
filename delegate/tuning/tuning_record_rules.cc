// The rules on the kernel tuning record's entries (kernel_tuning.h), and the
// record as the kernels use it: encoded from, and decoded and checked into,
// KernelTuning values. Moving entries in and out of the schema's tables is
// lr/tuning_record.cc's. Apart from the rest of kernel tuning so that the
// kernel benchmark, which links it, needs nothing else.
#include <algorithm>
#include <cctype>
#include <string>
#include <vector>

#include "delegate/tuning/kernel_tuning.h"
#include "delegate/lr/lr_schema.h"

namespace cocopie {
namespace {

bool IsValidBlock(int block) { return block == 8 || block == 16 || block == 32; }
constexpr int kMaxTilePixels = 32;

// Checks one decoded entry against the record's rules.
std::string CheckEntry(const TuningRecordEntry& e, int chunk_kib) {
  const KernelTuning& t = e.tuning;
  if (t.kernel != KernelKind::kBlock) return "";
  if (!IsValidBlock(t.channel_block)) {
    return "channel block " + std::to_string(t.channel_block) + " is not 8, 16 or 32";
  }
  if (t.block.tile_pixels < 1 || t.block.tile_pixels > kMaxTilePixels) {
    return "tile of " + std::to_string(t.block.tile_pixels) + " pixels out of range";
  }
  if (t.block.tiles_per_task < 1 || t.block.tiles_per_task > kMaxTilesPerTask) {
    return "tiles per task " + std::to_string(t.block.tiles_per_task) + " out of range";
  }
  if (chunk_kib != 0 && (chunk_kib * 1024 < kMinChunkBytes ||
                         chunk_kib * 1024 > kMaxChunkBytes)) {
    return "chunk of " + std::to_string(chunk_kib) + " KiB out of range";
  }
  return "";
}

std::string Hex(const std::vector<uint8_t>& bytes) {
  static const char kDigits[] = "0123456789abcdef";
  std::string s;
  for (uint8_t b : bytes) {
    s.push_back(kDigits[b >> 4]);
    s.push_back(kDigits[b & 15]);
  }
  return s;
}

bool Unhex(const std::string& text, std::vector<uint8_t>* bytes) {
  if (text.size() % 2 != 0) return false;
  bytes->clear();
  for (size_t i = 0; i < text.size(); i += 2) {
    int v = 0;
    for (size_t k = i; k < i + 2; ++k) {
      const char c = static_cast<char>(std::tolower(static_cast<unsigned char>(text[k])));
      int digit;
      if (c >= '0' && c <= '9') {
        digit = c - '0';
      } else if (c >= 'a' && c <= 'f') {
        digit = c - 'a' + 10;
      } else {
        return false;
      }
      v = v * 16 + digit;
    }
    bytes->push_back(static_cast<uint8_t>(v));
  }
  return true;
}

}  // namespace

std::vector<uint8_t> EncodeTuningRecord(const std::vector<TuningRecordEntry>& entries) {
  std::vector<RawTuningEntry> raw;
  for (const TuningRecordEntry& e : entries) {
    RawTuningEntry r;
    r.target = e.target.substr(0, kTuningTargetBytes - 1);
    const KernelTuning& t = e.tuning;
    r.kernel = static_cast<uint8_t>(t.kernel);
    if (t.kernel == KernelKind::kBlock) {
      r.channel_block = static_cast<uint8_t>(t.channel_block);
      r.tile_pixels = static_cast<uint8_t>(t.block.tile_pixels);
      r.tiles_per_task = static_cast<uint8_t>(t.block.tiles_per_task);
      r.chunk_kib = static_cast<uint16_t>((t.block.chunk_bytes + 512) / 1024);
      r.loop_order = static_cast<uint8_t>(t.block.loop_order);
    }
    r.threads = static_cast<uint8_t>(std::min(255, std::max(0, e.threads)));
    raw.push_back(r);
  }
  return PackTuningRecord(raw);
}

bool DecodeTuningRecord(const uint8_t* data, size_t size,
                        std::vector<TuningRecordEntry>* entries, std::string* error) {
  entries->clear();
  auto fail = [&](const std::string& why) {
    entries->clear();
    *error = why;
    return false;
  };
  if (data == nullptr || size < 12) return fail("tuning record is truncated");
  AlignedBytes aligned(data, size);
  flatbuffers::Verifier verifier(aligned.data(), size);
  if (!verifier.VerifySizePrefixedBuffer<fbs::TuningRecord>(kTuningRecordIdentifier)) {
    return fail("tuning record is not a well-formed CPTR buffer of the schema");
  }
  const auto* record = flatbuffers::GetSizePrefixedRoot<fbs::TuningRecord>(aligned.data());
  return CheckTuningRecord(ReadTuningRecord(*record), entries, error);
}

bool CheckTuningRecord(const std::vector<RawTuningEntry>& raw,
                       std::vector<TuningRecordEntry>* entries, std::string* error) {
  entries->clear();
  auto fail = [&](const std::string& why) {
    entries->clear();
    *error = why;
    return false;
  };
  if (raw.empty() || raw.size() > static_cast<size_t>(kMaxTuningEntries)) {
    return fail("tuning record has " + std::to_string(raw.size()) +
                " entries (expected 1 to " + std::to_string(kMaxTuningEntries) + ")");
  }
  for (size_t i = 0; i < raw.size(); ++i) {
    const RawTuningEntry& r = raw[i];
    const std::string where = "tuning record entry " + std::to_string(i) + ": ";
    if (r.target.empty() || r.target.size() >= kTuningTargetBytes) {
      return fail(where + "target name of " + std::to_string(r.target.size()) +
                  " bytes (expected 1 to " + std::to_string(kTuningTargetBytes - 1) + ")");
    }
    for (char c : r.target) {
      if (c < 0x21 || c > 0x7E) return fail(where + "target name is not ASCII");
    }
    TuningRecordEntry e;
    e.target = r.target;
    e.threads = r.threads;
    if (r.kernel == static_cast<uint8_t>(KernelKind::kRows) ||
        r.kernel == static_cast<uint8_t>(KernelKind::kStock)) {
      const bool rows = r.kernel == static_cast<uint8_t>(KernelKind::kRows);
      if (r.channel_block != 0 || r.tile_pixels != 0 || r.tiles_per_task != 0 ||
          r.chunk_kib != 0 || r.loop_order != 0) {
        return fail(where + (rows ? "a rows-kernel" : "a stock") +
                    " entry has block-kernel fields");
      }
      e.tuning.kernel = rows ? KernelKind::kRows : KernelKind::kStock;
    } else if (r.kernel == static_cast<uint8_t>(KernelKind::kBlock)) {
      e.tuning.kernel = KernelKind::kBlock;
      e.tuning.channel_block = r.channel_block;
      e.tuning.block.tile_pixels = r.tile_pixels;
      e.tuning.block.tiles_per_task = r.tiles_per_task;
      e.tuning.block.chunk_bytes = r.chunk_kib * 1024;
      if (r.loop_order > 1) {
        return fail(where + "loop order " + std::to_string(r.loop_order) + " is unknown");
      }
      e.tuning.block.loop_order = static_cast<BlockLoopOrder>(r.loop_order);
      const std::string problem = CheckEntry(e, r.chunk_kib);
      if (!problem.empty()) return fail(where + problem);
    } else {
      return fail(where + "kernel " + std::to_string(r.kernel) + " is unknown");
    }
    for (const TuningRecordEntry& other : *entries) {
      if (other.target == e.target) return fail(where + "target " + e.target + " repeats");
    }
    entries->push_back(e);
  }
  return true;
}

std::string TuningRecordHex(const std::vector<TuningRecordEntry>& entries) {
  return Hex(EncodeTuningRecord(entries));
}

bool DecodeTuningRecordHex(const std::string& hex, std::vector<TuningRecordEntry>* entries,
                           std::string* error) {
  std::vector<uint8_t> bytes;
  if (!Unhex(hex, &bytes)) {
    entries->clear();
    *error = "not hexadecimal";
    return false;
  }
  return DecodeTuningRecord(bytes.data(), bytes.size(), entries, error);
}

}  // namespace cocopie
