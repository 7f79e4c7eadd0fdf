// Fuzzing the LR parser.
//
// LLVMFuzzerTestOneInput is a libFuzzer entry point: build it with
//   clang++ -std=c++17 -fsanitize=fuzzer,address -I. -DCOCOPIE_LIBFUZZER \
//     delegate/lr_format.cc delegate/lr_format_fuzz_test.cc -o lr_fuzz
// for open-ended fuzzing. Without libFuzzer (g++, CI), the gtest below drives
// the same entry point with a bounded number of mutations of valid LRs, under
// AddressSanitizer in `make test`.
#include <cstddef>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "delegate/lr_format.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // A copy of exactly `size` bytes, so that the sanitizer sees any over-read.
  std::vector<uint8_t> bytes(data, data + size);
  cocopie::LayerwiseRepresentation lr;
  std::string error;
  const bool parsed =
      cocopie::ParseLayerwiseRepresentation(bytes.data(), bytes.size(), &lr, &error);
  // Parsed or not, no more layers were allocated than the bytes can hold
  // (33 bytes for the smallest layer): counts are checked before trusted.
  if (lr.layers.capacity() > size / 33) __builtin_trap();
  if (parsed) {
    // Whatever parses must be internally consistent.
    for (const cocopie::LrLayer& layer : lr.layers) {
      if (layer.out_group < 1 || layer.out_group > layer.out_channels) __builtin_trap();
      const size_t groups = (layer.out_channels + layer.out_group - 1) / layer.out_group;
      const size_t kernels = groups * layer.in_channels;
      if (layer.kernel_pattern.size() != kernels) __builtin_trap();
      // Every (output, input) pair must resolve inside the table.
      const int last = layer.out_channels - 1;
      if (static_cast<size_t>(last / layer.out_group) * layer.in_channels +
              layer.in_channels > kernels) {
        __builtin_trap();
      }
      for (uint8_t id : layer.kernel_pattern) {
        if (id != cocopie::kRemovedKernel && id >= layer.pattern_masks.size()) {
          __builtin_trap();
        }
      }
    }
  } else if (error.empty()) {
    __builtin_trap();  // a refusal must say why
  }
  return 0;
}

#ifndef COCOPIE_LIBFUZZER
#include <ctime>

#include "gtest/gtest.h"

namespace {

void Put32(std::vector<uint8_t>* b, uint32_t v) {
  for (int i = 0; i < 4; ++i) b->push_back(static_cast<uint8_t>(v >> (8 * i)));
}
void Put16(std::vector<uint8_t>* b, uint16_t v) {
  b->push_back(static_cast<uint8_t>(v));
  b->push_back(static_cast<uint8_t>(v >> 8));
}

// A random valid LR to start mutations from.
std::vector<uint8_t> RandomLr(std::mt19937* rng) {
  std::vector<uint8_t> b = {'C', 'P', 'L', 'R'};
  Put32(&b, cocopie::kLrVersion);
  const int layers = (*rng)() % 3;
  Put32(&b, layers);
  for (int l = 0; l < layers; ++l) {
    const int out_c = 1 + (*rng)() % 5, in_c = 1 + (*rng)() % 5, patterns = 1 + (*rng)() % 4;
    Put32(&b, l);
    Put32(&b, (*rng)() % 50);
    Put32(&b, out_c);
    Put16(&b, 3);
    Put16(&b, 3);
    Put32(&b, in_c);
    const int group = 1 + (*rng)() % out_c, tuning = (*rng)() % 3;
    Put16(&b, patterns);
    Put16(&b, 4);
    Put16(&b, group);
    Put16(&b, tuning);
    for (int p = 0; p < patterns; ++p) Put32(&b, 0x1Bu << p);  // 4 bits set
    for (int t = 0; t < tuning; ++t) b.push_back((*rng)());
    for (int k = 0; k < (out_c + group - 1) / group * in_c; ++k) {
      b.push_back((*rng)() % 5 == 0 ? cocopie::kRemovedKernel : (*rng)() % patterns);
    }
  }
  return b;
}

TEST(LrFormatFuzz, BoundedMutationRun) {
  std::mt19937 rng(20261125);
  for (int iteration = 0; iteration < 20000; ++iteration) {
    std::vector<uint8_t> bytes = RandomLr(&rng);
    const int edits = 1 + rng() % 4;
    for (int e = 0; e < edits && !bytes.empty(); ++e) {
      switch (rng() % 4) {
        case 0: bytes[rng() % bytes.size()] = static_cast<uint8_t>(rng()); break;
        case 1: bytes.resize(rng() % (bytes.size() + 1)); break;
        case 2: bytes.insert(bytes.begin() + rng() % bytes.size(), static_cast<uint8_t>(rng())); break;
        default: bytes[rng() % bytes.size()] ^= static_cast<uint8_t>(1u << (rng() % 8)); break;
      }
    }
    LLVMFuzzerTestOneInput(bytes.data(), bytes.size());
  }
}

// Byte offsets of the count fields of the header and of the first layer.
constexpr size_t kLayerCountOffset = 8;
constexpr size_t kFirstLayer = 12;
constexpr size_t kCountFields[] = {
    kLayerCountOffset,
    kFirstLayer + 8,   // out_channels (u32)
    kFirstLayer + 16,  // in_channels (u32)
    kFirstLayer + 20,  // num_patterns (u16)
    kFirstLayer + 24,  // out_group (u16)
    kFirstLayer + 26,  // tuning_bytes (u16)
};

// "Lying" LRs: one count field of a valid LR replaced by a large or extreme
// value. Each must be refused (or accepted, when the bytes still add up)
// quickly and without allocating for what is not there.
TEST(LrFormatFuzz, LyingCountsRun) {
  std::mt19937 rng(20261207);
  const uint32_t extremes[] = {0xFFFFFFFFu, 0x80000000u, cocopie::kMaxLrLayers,
                               cocopie::kMaxLrLayers + 1, 0xFFFFu, 0x7FFFu, 255, 254};
  const std::clock_t start = std::clock();  // CPU time: the machine may be busy
  for (int iteration = 0; iteration < 5000; ++iteration) {
    std::vector<uint8_t> bytes = RandomLr(&rng);
    const size_t field = kCountFields[rng() % (sizeof(kCountFields) / sizeof(size_t))];
    if (field + 4 > bytes.size()) continue;
    const uint32_t value = rng() % 2 ? extremes[rng() % 8] : static_cast<uint32_t>(rng());
    const bool wide = field == kLayerCountOffset || field == kFirstLayer + 8 ||
                      field == kFirstLayer + 16;
    for (size_t i = 0; i < (wide ? 4u : 2u); ++i) {
      bytes[field + i] = static_cast<uint8_t>(value >> (8 * i));
    }
    LLVMFuzzerTestOneInput(bytes.data(), bytes.size());
  }
  const double seconds = static_cast<double>(std::clock() - start) / CLOCKS_PER_SEC;
  EXPECT_LT(seconds, 10.0);  // well under 0.1 s under ASan
}

}  // namespace
#endif  // COCOPIE_LIBFUZZER
