// Kernel tuning: layer signatures and the CPU identity (see kernel_tuning.h).
// The tuning record: lr/tuning_record.cc moves it in and out of the schema,
// tuning_record_rules.cc judges its entries. The tuning cache's file is handled in
// tuning_cache.cc; the search itself and the hook the partition kernel calls
// are in kernel_tuning_search.cc.
#include "delegate/tuning/kernel_tuning.h"

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


}  // namespace cocopie
