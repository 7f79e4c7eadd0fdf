// Kernel tuning: the tuning-record codec, layer signatures and the CPU
// identity (see kernel_tuning.h). The tuning cache's file is handled in
// tuning_cache.cc; the search itself and the hook the partition kernel calls
// are in kernel_tuning_search.cc.
#include "delegate/kernel_tuning.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <fstream>
#include <sstream>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

namespace cocopie {
namespace {

bool IsValidBlock(int block) { return block == 8 || block == 16 || block == 32; }
constexpr int kMaxTilePixels = 32;

void PutU16(std::vector<uint8_t>* out, unsigned value) {
  out->push_back(static_cast<uint8_t>(value & 0xFF));
  out->push_back(static_cast<uint8_t>((value >> 8) & 0xFF));
}

// Checks one decoded entry against the record's rules.
std::string CheckEntry(const TuningRecordEntry& e, int chunk_kib) {
  const KernelTuning& t = e.tuning;
  if (t.kernel == KernelKind::kRows) return "";
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

// FNV-1a, 64 bits: a stable hash (unlike std::hash) so that cache files stay
// valid across builds.
class Fnv1a {
 public:
  template <typename T>
  void Add(const std::vector<T>& values) {
    Add(static_cast<uint64_t>(values.size()));
    for (const T& v : values) Add(static_cast<uint64_t>(v));
  }
  void Add(uint64_t value) {
    for (int i = 0; i < 8; ++i) {
      hash_ ^= (value >> (8 * i)) & 0xFF;
      hash_ *= 1099511628211ull;
    }
  }
  uint64_t hash() const { return hash_; }

 private:
  uint64_t hash_ = 14695981039346656037ull;
};

// Keeps keys one line and one field: no whitespace, no separators.
std::string Sanitize(std::string text) {
  std::string out;
  bool gap = false;
  for (char c : text) {
    const bool bad = !std::isgraph(static_cast<unsigned char>(c)) || c == '|';
    if (bad) {
      gap = !out.empty();
      continue;
    }
    if (gap) out.push_back('_');
    gap = false;
    out.push_back(c);
  }
  return out.empty() ? "unknown" : out;
}

std::string CpuModelName() {
#if defined(__x86_64__) || defined(__i386__)
  unsigned regs[12] = {};
  unsigned max_leaf = __get_cpuid_max(0x80000000u, nullptr);
  if (max_leaf >= 0x80000004u) {
    for (unsigned i = 0; i < 3; ++i) {
      __get_cpuid(0x80000002u + i, &regs[4 * i], &regs[4 * i + 1], &regs[4 * i + 2],
                  &regs[4 * i + 3]);
    }
    char brand[49] = {};
    std::copy(reinterpret_cast<const char*>(regs),
              reinterpret_cast<const char*>(regs) + 48, brand);
    return Sanitize(brand);
  }
  return "x86";
#else
  // Linux on ARM: implementer and part number identify the core.
  std::ifstream cpuinfo("/proc/cpuinfo");
  std::string line, implementer, part;
  while (std::getline(cpuinfo, line)) {
    const size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    const std::string key = Sanitize(line.substr(0, colon));
    const std::string value = Sanitize(line.substr(colon + 1));
    if (key == "CPU_implementer" && implementer.empty()) implementer = value;
    if (key == "CPU_part" && part.empty()) part = value;
  }
  if (implementer.empty() && part.empty()) return "unknown";
  return "cpu-" + implementer + "-" + part;
#endif
}

}  // namespace

std::vector<uint8_t> EncodeTuningRecord(const std::vector<TuningRecordEntry>& entries) {
  std::vector<uint8_t> out;
  out.push_back(static_cast<uint8_t>(kTuningRecordVersion));
  out.push_back(static_cast<uint8_t>(entries.size()));
  for (const TuningRecordEntry& e : entries) {
    std::string target = e.target.substr(0, kTuningTargetBytes - 1);
    target.resize(kTuningTargetBytes, '\0');
    out.insert(out.end(), target.begin(), target.end());
    const KernelTuning& t = e.tuning;
    const bool block = t.kernel == KernelKind::kBlock;
    out.push_back(block ? 1 : 0);
    out.push_back(static_cast<uint8_t>(block ? t.channel_block : 0));
    out.push_back(static_cast<uint8_t>(block ? t.block.tile_pixels : 0));
    out.push_back(static_cast<uint8_t>(block ? t.block.tiles_per_task : 0));
    PutU16(&out, block ? static_cast<unsigned>((t.block.chunk_bytes + 512) / 1024) : 0);
    out.push_back(block ? static_cast<uint8_t>(t.block.loop_order) : 0);
    out.push_back(static_cast<uint8_t>(std::min(255, std::max(0, e.threads))));
  }
  return out;
}

bool DecodeTuningRecord(const uint8_t* data, size_t size,
                        std::vector<TuningRecordEntry>* entries, std::string* error) {
  entries->clear();
  auto fail = [&](const std::string& why) {
    entries->clear();
    *error = why;
    return false;
  };
  if (data == nullptr || size < 2) return fail("tuning record is truncated");
  if (data[0] != kTuningRecordVersion) {
    return fail("tuning record version " + std::to_string(data[0]) +
                " is not supported (expected " + std::to_string(kTuningRecordVersion) + ")");
  }
  const int count = data[1];
  if (count < 1 || count > kMaxTuningEntries) {
    return fail("tuning record has " + std::to_string(count) + " entries (expected 1 to " +
                std::to_string(kMaxTuningEntries) + ")");
  }
  if (size != 2 + static_cast<size_t>(count) * kTuningEntryBytes) {
    return fail("tuning record has " + std::to_string(size) + " bytes, expected " +
                std::to_string(2 + count * kTuningEntryBytes) + " for " +
                std::to_string(count) + " entries");
  }
  for (int i = 0; i < count; ++i) {
    const uint8_t* p = data + 2 + static_cast<size_t>(i) * kTuningEntryBytes;
    const std::string where = "tuning record entry " + std::to_string(i) + ": ";
    size_t length = 0;
    while (length < kTuningTargetBytes && p[length] != 0) {
      if (p[length] < 0x21 || p[length] > 0x7E) return fail(where + "target name is not ASCII");
      ++length;
    }
    if (length == 0 || length == kTuningTargetBytes) {
      return fail(where + "target name is empty or not NUL-terminated");
    }
    for (size_t k = length; k < kTuningTargetBytes; ++k) {
      if (p[k] != 0) return fail(where + "bytes after the target name are not zero");
    }
    TuningRecordEntry e;
    e.target.assign(reinterpret_cast<const char*>(p), length);
    const uint8_t* f = p + kTuningTargetBytes;
    const int chunk_kib = f[4] | (f[5] << 8);
    e.threads = f[7];
    if (f[0] == 0) {
      if (f[1] != 0 || f[2] != 0 || f[3] != 0 || chunk_kib != 0 || f[6] != 0) {
        return fail(where + "a rows-kernel entry has block-kernel fields");
      }
      e.tuning.kernel = KernelKind::kRows;
    } else if (f[0] == 1) {
      e.tuning.kernel = KernelKind::kBlock;
      e.tuning.channel_block = f[1];
      e.tuning.block.tile_pixels = f[2];
      e.tuning.block.tiles_per_task = f[3];
      e.tuning.block.chunk_bytes = chunk_kib * 1024;
      if (f[6] > 1) return fail(where + "loop order " + std::to_string(f[6]) + " is unknown");
      e.tuning.block.loop_order = static_cast<BlockLoopOrder>(f[6]);
      const std::string problem = CheckEntry(e, chunk_kib);
      if (!problem.empty()) return fail(where + problem);
    } else {
      return fail(where + "kernel " + std::to_string(f[0]) + " is unknown");
    }
    for (const TuningRecordEntry& other : *entries) {
      if (other.target == e.target) return fail(where + "target " + e.target + " repeats");
    }
    entries->push_back(e);
  }
  return true;
}

std::string LayerSignature(const ConvGeometry& g, const PackedPatternWeights& w) {
  Fnv1a h;
  h.Add(static_cast<uint64_t>(w.entries));
  h.Add(w.kernel_begin);
  h.Add(w.in_channel);
  h.Add(w.pattern);
  h.Add(w.pattern_masks);
  char hash[17];
  std::snprintf(hash, sizeof(hash), "%016llx", static_cast<unsigned long long>(h.hash()));
  std::ostringstream s;
  s << g.in_h << "x" << g.in_w << "x" << g.in_c << "-" << g.out_h << "x" << g.out_w << "x"
    << g.out_c << "-k" << g.kernel_h << "x" << g.kernel_w << "-s" << g.stride_h << "x"
    << g.stride_w << "-d" << g.dilation_h << "x" << g.dilation_w << "-p" << g.pad_top
    << "x" << g.pad_left << "-t" << hash;
  return s.str();
}

std::string CpuIdentity() {
  static const std::string identity =
      Sanitize(PatternConvSimdTarget()) + ":" + CpuModelName();
  return identity;
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
