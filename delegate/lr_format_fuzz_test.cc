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
  if (cocopie::ParseLayerwiseRepresentation(bytes.data(), bytes.size(), &lr, &error)) {
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

}  // namespace
#endif  // COCOPIE_LIBFUZZER
