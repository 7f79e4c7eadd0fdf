// Fuzzing the LR parser: FlatBuffers' verifier on the generated code, then
// the semantic checks.
//
// LLVMFuzzerTestOneInput is a libFuzzer entry point: generate the schema's
// header (flatc --cpp -o gen/schema schema/cocopie_lr.fbs), then build
//   clang++ -std=c++17 -fsanitize=fuzzer,address -I. -Igen -DCOCOPIE_LIBFUZZER
//     delegate/lr/lr_format.cc delegate/lr/tuning_record.cc
//     delegate/lr/lr_format_fuzz_test.cc -o lr_fuzz
// for open-ended fuzzing. Without libFuzzer (g++, CI), the gtest below drives
// the same entry point with a bounded number of mutations of valid LRs, under
// AddressSanitizer in `make test`.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "delegate/lr/lr_format.h"
#include "delegate/lr/lr_schema.h"
#include "delegate/lr/lr_testing.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // A copy of exactly `size` bytes, so that the sanitizer sees any over-read.
  std::vector<uint8_t> bytes(data, data + size);
  cocopie::LayerwiseRepresentation lr;
  std::string error;
  const bool parsed =
      cocopie::ParseLayerwiseRepresentation(bytes.data(), bytes.size(), &lr, &error);
  // Parsed or not, no more layers were allocated than the bytes can hold
  // (kMinLrLayerBytes for the smallest layer): counts are checked before
  // trusted.
  if (lr.layers.capacity() > size / cocopie::kMinLrLayerBytes) __builtin_trap();
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

namespace fbs = ::cocopie_keras::converter::lr_fbs;

// A random valid LR to start mutations from, some layers with a tuning
// record (whose values need not follow the rules: the LR carries them).
std::vector<uint8_t> RandomLr(std::mt19937* rng) {
  flatbuffers::FlatBufferBuilder fbb;
  std::vector<flatbuffers::Offset<fbs::Layer>> layers;
  const int count = (*rng)() % 3;
  for (int l = 0; l < count; ++l) {
    const int out_c = 1 + (*rng)() % 5, in_c = 1 + (*rng)() % 5, patterns = 1 + (*rng)() % 4;
    const int group = 1 + (*rng)() % out_c, tuning = (*rng)() % 3;
    std::vector<uint32_t> masks;
    for (int p = 0; p < patterns; ++p) masks.push_back(0x1Bu << p);  // 4 bits set
    std::vector<uint8_t> ids;
    for (int k = 0; k < (out_c + group - 1) / group * in_c; ++k) {
      ids.push_back((*rng)() % 5 == 0 ? cocopie::kRemovedKernel : (*rng)() % patterns);
    }
    // Half of the layers in the compact form (kept bitmap + packed ids).
    const bool compact = (*rng)() % 2 == 0;
    const int id_bits = 2;  // patterns <= 4
    const cocopie::CompactIds packed = cocopie::CompactForm(ids, id_bits);
    const auto mask_vector = fbb.CreateVector(masks);
    const auto id_vector = fbb.CreateVector(compact ? packed.ids : ids);
    const auto kept_vector = compact ? fbb.CreateVector(packed.kept)
                                     : flatbuffers::Offset<flatbuffers::Vector<uint8_t>>();
    flatbuffers::Offset<fbs::TuningRecord> record;
    if (tuning > 0) {
      std::vector<flatbuffers::Offset<fbs::TuningEntry>> entries;
      for (int t = 0; t < tuning; ++t) {
        entries.push_back(fbs::CreateTuningEntry(
            fbb, fbb.CreateString(t == 0 ? "AVX3" : "NEON"),
            static_cast<fbs::KernelKind>((*rng)() % 2), 16, (*rng)() % 40, 4,
            static_cast<uint16_t>((*rng)() % 100)));
      }
      record = fbs::CreateTuningRecord(fbb, fbb.CreateVector(entries));
    }
    layers.push_back(fbs::CreateLayer(fbb, l, (*rng)() % 50, out_c, in_c, 3, 3, 4, group,
                                      mask_vector, id_vector, record, kept_vector,
                                      compact ? id_bits : 0));
  }
  const auto layer_vector = fbb.CreateVector(layers);
  fbs::FinishSizePrefixedLayerwiseRepresentationBuffer(
      fbb, fbs::CreateLayerwiseRepresentation(fbb, cocopie::kLrVersion, layer_vector));
  return std::vector<uint8_t>(fbb.GetBufferPointer(), fbb.GetBufferPointer() + fbb.GetSize());
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

// Byte offsets, in a valid LR, of its count fields: vector lengths (4 bytes)
// and the scalar counts of the first layer (as wide as the schema makes
// them), paired with their width.
std::vector<std::pair<size_t, size_t>> CountFields(const std::vector<uint8_t>& bytes) {
  std::vector<std::pair<size_t, size_t>> fields;
  const uint8_t* base = bytes.data();
  const auto* root = fbs::GetSizePrefixedLayerwiseRepresentation(base);
  if (root->layers() == nullptr) return fields;
  auto at = [&](const void* p) { return static_cast<size_t>(static_cast<const uint8_t*>(p) - base); };
  fields.emplace_back(at(root->layers()), 4);
  if (root->layers()->size() == 0) return fields;
  const fbs::Layer* layer = root->layers()->Get(0);
  fields.emplace_back(at(layer->pattern_masks()), 4);
  fields.emplace_back(at(layer->kernel_pattern()), 4);
  if (layer->tuning() != nullptr) fields.emplace_back(at(layer->tuning()->entries()), 4);
  // A scalar's place: through the table's vtable (absent fields have none).
  const uint8_t* table = reinterpret_cast<const uint8_t*>(layer);
  int32_t to_vtable;
  std::memcpy(&to_vtable, table, 4);
  const uint8_t* vtable = table - to_vtable;
  const std::pair<uint16_t, size_t> scalars[] = {
      {fbs::Layer::VT_OUT_CHANNELS, 4}, {fbs::Layer::VT_IN_CHANNELS, 4},
      {fbs::Layer::VT_ENTRIES_PER_PATTERN, 2}, {fbs::Layer::VT_OUT_GROUP, 2}};
  for (const auto& scalar : scalars) {
    uint16_t vtable_bytes, field;
    std::memcpy(&vtable_bytes, vtable, 2);
    if (scalar.first >= vtable_bytes) continue;
    std::memcpy(&field, vtable + scalar.first, 2);
    if (field != 0) fields.emplace_back(at(table + field), scalar.second);
  }
  return fields;
}

// "Lying" LRs: one count field of a valid LR replaced by a large or extreme
// value. Each must be refused (or accepted, when the buffer still adds up)
// quickly and without allocating for what is not there.
TEST(LrFormatFuzz, LyingCountsRun) {
  std::mt19937 rng(20261207);
  const uint32_t extremes[] = {0xFFFFFFFFu, 0x80000000u, cocopie::kMaxLrLayers,
                               cocopie::kMaxLrLayers + 1, 0xFFFFu, 0x7FFFu, 255, 254};
  const std::clock_t start = std::clock();  // CPU time: the machine may be busy
  int lies = 0;
  for (int iteration = 0; iteration < 5000; ++iteration) {
    std::vector<uint8_t> bytes = RandomLr(&rng);
    const auto fields = CountFields(bytes);
    if (fields.empty()) continue;
    const auto field = fields[rng() % fields.size()];
    const uint32_t value = rng() % 2 ? extremes[rng() % 8] : static_cast<uint32_t>(rng());
    for (size_t i = 0; i < field.second; ++i) {
      bytes[field.first + i] = static_cast<uint8_t>(value >> (8 * i));
    }
    LLVMFuzzerTestOneInput(bytes.data(), bytes.size());
    ++lies;
  }
  EXPECT_GT(lies, 2500);  // most random LRs have a layer to lie about
  const double seconds = static_cast<double>(std::clock() - start) / CLOCKS_PER_SEC;
  EXPECT_LT(seconds, 10.0);  // well under 0.1 s under ASan
}

}  // namespace
#endif  // COCOPIE_LIBFUZZER
