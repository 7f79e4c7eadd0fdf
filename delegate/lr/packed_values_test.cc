#include "delegate/lr/packed_values.h"

#include <cmath>
#include <cstring>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "delegate/lr/lr_schema.h"
#include "delegate/lr/lr_testing.h"
#include "gtest/gtest.h"

namespace cocopie {
namespace {

uint32_t Bits(float f) {
  uint32_t word;
  std::memcpy(&word, &f, sizeof(word));
  return word;
}

// Fields of a PackedValues buffer, written as given by the generated
// builder: Canonical() fills them the way converter/packed.py does, and a
// test may then break any of them.
struct PackedFields {
  uint32_t count = 0;
  std::vector<uint8_t> top_bytes;
  uint8_t top_byte_bits = 0;
  std::vector<uint8_t> top_byte_ids;
  std::vector<uint8_t> low_bytes;

  static PackedFields Canonical(const std::vector<float>& values) {
    PackedFields f;
    f.count = static_cast<uint32_t>(values.size());
    std::map<uint8_t, uint8_t> id_of;
    for (float v : values) id_of[static_cast<uint8_t>(Bits(v) >> 24)] = 0;
    if (id_of.empty()) id_of[0] = 0;
    for (auto& [top, id] : id_of) {
      id = static_cast<uint8_t>(f.top_bytes.size());
      f.top_bytes.push_back(top);
    }
    while ((size_t{1} << f.top_byte_bits) < f.top_bytes.size()) ++f.top_byte_bits;
    std::vector<uint8_t> ids;
    for (float v : values) {
      const uint32_t w = Bits(v);
      ids.push_back(id_of[static_cast<uint8_t>(w >> 24)]);
      for (int b = 0; b < 3; ++b) f.low_bytes.push_back(static_cast<uint8_t>(w >> (8 * b)));
    }
    if (f.top_byte_bits > 0) f.top_byte_ids = PackBits(ids, f.top_byte_bits);
    return f;
  }

  std::vector<uint8_t> Buffer(const char* identifier = kPackedValuesIdentifier) const {
    flatbuffers::FlatBufferBuilder fbb;
    const auto table = fbb.CreateVector(top_bytes);
    const auto ids = fbb.CreateVector(top_byte_ids);
    const auto low = fbb.CreateVector(low_bytes);
    fbb.FinishSizePrefixed(fbs::CreatePackedValues(fbb, count, table, top_byte_bits, ids, low),
                           identifier);
    return std::vector<uint8_t>(fbb.GetBufferPointer(), fbb.GetBufferPointer() + fbb.GetSize());
  }
};

std::string ParseError(const std::vector<uint8_t>& buffer) {
  std::vector<float> values;
  std::string error;
  EXPECT_FALSE(ParsePackedValues(buffer.data(), buffer.size(), &values, &error));
  return error;
}

TEST(PackedValues, RoundTripsEveryBitPattern) {
  const std::vector<float> values = {
      0.5f, -0.25f, 0.0f, -0.0f, 1e-40f /* denormal */, 3.0e38f,
      std::numeric_limits<float>::infinity(), std::numeric_limits<float>::quiet_NaN(),
      0.125f, 0.1171875f, -7.0f};
  const std::vector<uint8_t> buffer = PackedFields::Canonical(values).Buffer();
  // Parse from an odd address too: a tensor's buffer promises no alignment.
  std::vector<uint8_t> shifted(buffer.size() + 1);
  std::memcpy(shifted.data() + 1, buffer.data(), buffer.size());
  std::vector<float> parsed;
  std::string error;
  ASSERT_TRUE(ParsePackedValues(shifted.data() + 1, buffer.size(), &parsed, &error)) << error;
  ASSERT_EQ(parsed.size(), values.size());
  for (size_t i = 0; i < values.size(); ++i) EXPECT_EQ(Bits(parsed[i]), Bits(values[i])) << i;
}

TEST(PackedValues, OneTopByteNeedsNoIds) {
  const PackedFields fields = PackedFields::Canonical({0.5f, 0.75f, 0.625f});
  ASSERT_EQ(fields.top_bytes.size(), 1u);
  ASSERT_EQ(fields.top_byte_bits, 0);
  std::vector<float> parsed;
  std::string error;
  const std::vector<uint8_t> buffer = fields.Buffer();
  ASSERT_TRUE(ParsePackedValues(buffer.data(), buffer.size(), &parsed, &error)) << error;
  EXPECT_EQ(parsed, (std::vector<float>{0.5f, 0.75f, 0.625f}));
  std::vector<uint8_t> empty_values = PackedFields::Canonical({}).Buffer();
  ASSERT_TRUE(ParsePackedValues(empty_values.data(), empty_values.size(), &parsed, &error));
  EXPECT_TRUE(parsed.empty());
}

TEST(PackedValues, RefusesMalformedBuffers) {
  const PackedFields good = PackedFields::Canonical({0.5f, -0.5f, 2.0f, 1e-3f, 1e-30f});
  ASSERT_EQ(good.top_byte_bits, 3);  // five distinct top bytes
  EXPECT_NE(ParseError(good.Buffer("CPLR")).find("identifier"), std::string::npos);
  std::vector<uint8_t> truncated = good.Buffer();
  truncated.pop_back();
  EXPECT_NE(ParseError(truncated).find("truncated"), std::string::npos);

  PackedFields f = good;
  std::swap(f.top_bytes[0], f.top_bytes[1]);
  EXPECT_NE(ParseError(f.Buffer()).find("ascending"), std::string::npos);
  f = good;
  f.top_bytes.clear();
  EXPECT_NE(ParseError(f.Buffer()).find("0 top bytes"), std::string::npos);
  f = good;
  f.top_byte_bits = 4;
  EXPECT_NE(ParseError(f.Buffer()).find("expected 3"), std::string::npos);
  f = good;
  f.low_bytes.pop_back();
  EXPECT_NE(ParseError(f.Buffer()).find("low bytes"), std::string::npos);
  f = good;
  f.count = 6;  // more values than ids and low bytes
  EXPECT_NE(ParseError(f.Buffer()).find("low bytes"), std::string::npos);
  f = good;
  f.top_byte_ids.back() |= 0x80;  // bit 15 of 15 used ones
  EXPECT_NE(ParseError(f.Buffer()).find("unused bits"), std::string::npos);
  f = good;
  f.top_byte_ids = PackBits({0, 1, 2, 3, 7}, 3);  // id 7 of a table of 5
  EXPECT_NE(ParseError(f.Buffer()).find("id is 7"), std::string::npos);
  f = PackedFields::Canonical({0.5f, 0.75f});
  f.top_byte_ids = {0};  // ids for a single top byte
  EXPECT_NE(ParseError(f.Buffer()).find("top-byte ids"), std::string::npos);
  f = good;
  f.count = 1u << 30;
  EXPECT_NE(ParseError(f.Buffer()).find("at most"), std::string::npos);
  const std::vector<uint8_t> buffer = good.Buffer();
  for (size_t cut = 0; cut < buffer.size(); ++cut) {  // every truncation
    std::vector<float> values;
    std::string error;
    EXPECT_FALSE(ParsePackedValues(buffer.data(), cut, &values, &error)) << cut;
  }
}

TEST(PackedValues, ExpandsIntoTheLayersKeptCellsInLrOrder) {
  LrLayer layer;
  layer.out_channels = 2;
  layer.in_channels = 3;
  layer.kernel_h = layer.kernel_w = 3;
  layer.entries_per_pattern = 2;
  layer.pattern_masks = {0b000010001u /* cells 0, 4 */, 0b100100000u /* cells 5, 8 */};
  layer.kernel_pattern = {0, kRemovedKernel, 1, 1, 0, kRemovedKernel};  // [out][in]
  const std::vector<float> values = {1, 2, 3, 4, 5, 6, 7, 8};
  std::vector<float> filter;
  std::string error;
  ASSERT_TRUE(ExpandPackedFilter(layer, values, &filter, &error)) << error;
  ASSERT_EQ(filter.size(), 2u * 9 * 3);
  auto at = [&](int o, int cell, int i) { return filter[(o * 9 + cell) * 3 + i]; };
  std::vector<float> expected(filter.size(), 0.0f);
  auto set = [&](int o, int cell, int i, float v) { expected[(o * 9 + cell) * 3 + i] = v; };
  set(0, 0, 0, 1), set(0, 4, 0, 2), set(0, 5, 2, 3), set(0, 8, 2, 4);
  set(1, 5, 0, 5), set(1, 8, 0, 6), set(1, 0, 1, 7), set(1, 4, 1, 8);
  EXPECT_EQ(filter, expected);
  EXPECT_EQ(at(1, 4, 1), 8.0f);

  EXPECT_FALSE(ExpandPackedFilter(layer, {1, 2, 3}, &filter, &error));
  EXPECT_NE(error.find("holds 3 values, its LR layer keeps 8"), std::string::npos);
}

}  // namespace
}  // namespace cocopie
