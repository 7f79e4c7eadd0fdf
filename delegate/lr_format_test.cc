#include "delegate/lr_format.h"

#include <algorithm>
#include <cstring>
#include <ctime>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace cocopie {
namespace {

// Builds LR bytes field by field, the way the converter writes them.
class LrBuilder {
 public:
  LrBuilder& Header(uint32_t version, uint32_t layers) {
    bytes_.insert(bytes_.end(), {'C', 'P', 'L', 'R'});
    return U32(version).U32(layers);
  }
  LrBuilder& Layer(uint32_t op, uint32_t tensor, uint32_t out_c, uint16_t kh,
                   uint16_t kw, uint32_t in_c, std::vector<uint32_t> masks,
                   uint16_t entries, std::vector<uint8_t> ids,
                   uint16_t out_group = 1, std::vector<uint8_t> tuning = {}) {
    U32(op).U32(tensor).U32(out_c).U16(kh).U16(kw).U32(in_c);
    U16(static_cast<uint16_t>(masks.size())).U16(entries);
    U16(out_group).U16(static_cast<uint16_t>(tuning.size()));
    for (uint32_t m : masks) U32(m);
    bytes_.insert(bytes_.end(), tuning.begin(), tuning.end());
    bytes_.insert(bytes_.end(), ids.begin(), ids.end());
    return *this;
  }
  LrBuilder& U32(uint32_t v) { return Raw(&v, 4); }
  LrBuilder& U16(uint16_t v) { return Raw(&v, 2); }
  const std::vector<uint8_t>& bytes() const { return bytes_; }

 private:
  LrBuilder& Raw(const void* p, size_t n) {
    const auto* b = static_cast<const uint8_t*>(p);
    bytes_.insert(bytes_.end(), b, b + n);
    return *this;
  }
  std::vector<uint8_t> bytes_;
};

// Centre + up/left/right, and centre + up + left + up-left.
constexpr uint32_t kT = (1u << 4) | (1u << 1) | (1u << 3) | (1u << 5);
constexpr uint32_t kSquare = (1u << 4) | (1u << 1) | (1u << 3) | (1u << 0);

std::vector<uint8_t> ValidLr() {
  return LrBuilder()
      .Header(kLrVersion, 2)
      .Layer(0, 7, 2, 3, 3, 3, {kT, kSquare}, 4, {0, 1, kRemovedKernel, 1, 0, 0})
      .Layer(3, 9, 1, 3, 3, 2, {kSquare}, 4, {0, 0})
      .bytes();
}

bool Parse(const std::vector<uint8_t>& bytes, LayerwiseRepresentation* lr,
           std::string* error) {
  return ParseLayerwiseRepresentation(bytes.data(), bytes.size(), lr, error);
}

TEST(LrFormat, ParsesValidLr) {
  LayerwiseRepresentation lr;
  std::string error;
  ASSERT_TRUE(Parse(ValidLr(), &lr, &error)) << error;
  ASSERT_EQ(lr.layers.size(), 2u);
  const LrLayer* first = lr.FindByOp(0);
  ASSERT_NE(first, nullptr);
  EXPECT_EQ(first->filter_tensor, 7u);
  EXPECT_EQ(first->out_channels, 2);
  EXPECT_EQ(first->in_channels, 3);
  EXPECT_EQ(first->entries_per_pattern, 4);
  EXPECT_EQ(first->PatternOf(0, 2), kRemovedKernel);
  EXPECT_EQ(first->PatternOf(1, 0), 1);
  EXPECT_NE(lr.FindByOp(3), nullptr);
  EXPECT_EQ(lr.FindByOp(1), nullptr);
}

TEST(LrFormat, GroupedRowsAndTuningRecord) {
  // 5 output channels in groups of 2: rows for channels {0,1}, {2,3}, {4}.
  const std::vector<uint8_t> bytes =
      LrBuilder()
          .Header(kLrVersion, 1)
          .Layer(2, 4, 5, 3, 3, 2, {kT, kSquare}, 4,
                 {0, kRemovedKernel, 1, 1, kRemovedKernel, 0}, 2, {9, 8, 7})
          .bytes();
  LayerwiseRepresentation lr;
  std::string error;
  ASSERT_TRUE(Parse(bytes, &lr, &error)) << error;
  const LrLayer& layer = lr.layers[0];
  EXPECT_EQ(layer.out_group, 2);
  EXPECT_EQ(layer.tuning, (std::vector<uint8_t>{9, 8, 7}));
  EXPECT_EQ(layer.PatternOf(1, 0), 0);
  EXPECT_EQ(layer.PatternOf(1, 1), kRemovedKernel);
  EXPECT_EQ(layer.PatternOf(3, 0), 1);
  EXPECT_EQ(layer.PatternOf(4, 0), kRemovedKernel);
  EXPECT_EQ(layer.PatternOf(4, 1), 0);
}

TEST(LrFormat, EveryTruncationIsAnErrorNotACrash) {
  const std::vector<uint8_t> full = ValidLr();
  for (size_t n = 0; n < full.size(); ++n) {
    // A right-sized heap copy so that AddressSanitizer sees any over-read.
    std::vector<uint8_t> cut(full.begin(), full.begin() + n);
    LayerwiseRepresentation lr;
    std::string error;
    EXPECT_FALSE(Parse(cut, &lr, &error)) << "accepted " << n << " bytes";
    EXPECT_FALSE(error.empty());
  }
}

TEST(LrFormat, RejectsTrailingBytes) {
  std::vector<uint8_t> bytes = ValidLr();
  bytes.push_back(0);
  LayerwiseRepresentation lr;
  std::string error;
  EXPECT_FALSE(Parse(bytes, &lr, &error));
  EXPECT_NE(error.find("trailing"), std::string::npos) << error;
}

TEST(LrFormat, RejectsWrongMagicAndVersion) {
  std::vector<uint8_t> bytes = ValidLr();
  bytes[0] = 'X';
  LayerwiseRepresentation lr;
  std::string error;
  EXPECT_FALSE(Parse(bytes, &lr, &error));
  EXPECT_NE(error.find("magic"), std::string::npos) << error;

  std::vector<uint8_t> v1 = LrBuilder().Header(1, 0).bytes();
  EXPECT_FALSE(Parse(v1, &lr, &error));
  EXPECT_NE(error.find("version 1"), std::string::npos) << error;
}

TEST(LrFormat, RejectsInconsistentLayers) {
  struct Case {
    const char* what;
    std::vector<uint8_t> bytes;
  };
  const std::vector<Case> cases = {
      {"pattern id beyond table",
       LrBuilder().Header(kLrVersion, 1).Layer(0, 1, 1, 3, 3, 1, {kT}, 4, {1}).bytes()},
      {"mask with wrong cell count",
       LrBuilder().Header(kLrVersion, 1).Layer(0, 1, 1, 3, 3, 1, {0x7u}, 4, {0}).bytes()},
      {"mask outside kernel",
       LrBuilder().Header(kLrVersion, 1).Layer(0, 1, 1, 3, 3, 1, {kT | (1u << 9)}, 5, {0}).bytes()},
      {"zero channels",
       LrBuilder().Header(kLrVersion, 1).Layer(0, 1, 0, 3, 3, 1, {kT}, 4, {}).bytes()},
      {"kernel too large",
       LrBuilder().Header(kLrVersion, 1).Layer(0, 1, 1, 7, 7, 1, {kT}, 4, {0}).bytes()},
      {"no patterns",
       LrBuilder().Header(kLrVersion, 1).Layer(0, 1, 1, 3, 3, 1, {}, 4, {kRemovedKernel}).bytes()},
      {"operator twice",
       LrBuilder().Header(kLrVersion, 2)
           .Layer(5, 1, 1, 3, 3, 1, {kT}, 4, {0})
           .Layer(5, 2, 1, 3, 3, 1, {kT}, 4, {0}).bytes()},
      {"output-channel group of zero",
       LrBuilder().Header(kLrVersion, 1).Layer(0, 1, 1, 3, 3, 1, {kT}, 4, {0}, 0).bytes()},
      {"output-channel group wider than the layer",
       LrBuilder().Header(kLrVersion, 1).Layer(0, 1, 2, 3, 3, 1, {kT}, 4, {0}, 3).bytes()},
      {"ids for channels instead of groups",
       LrBuilder().Header(kLrVersion, 1).Layer(0, 1, 4, 3, 3, 1, {kT}, 4, {0, 0, 0, 0}, 2).bytes()},
      {"huge layer count", LrBuilder().Header(kLrVersion, 0xFFFFFFFFu).bytes()},
      {"huge channel count",
       LrBuilder().Header(kLrVersion, 1).Layer(0, 1, 0x7FFFFFFFu, 3, 3, 0x7FFFFFFFu, {kT}, 4, {}).bytes()},
  };
  for (const Case& c : cases) {
    LayerwiseRepresentation lr;
    std::string error;
    EXPECT_FALSE(Parse(c.bytes, &lr, &error)) << c.what;
    EXPECT_FALSE(error.empty()) << c.what;
  }
}

TEST(LrFormat, NullBufferIsAnError) {
  LayerwiseRepresentation lr;
  std::string error;
  EXPECT_FALSE(ParseLayerwiseRepresentation(nullptr, 0, &lr, &error));
}

// An LR cannot describe more layers than its bytes hold: 65,536 layers
// from a 12-byte header are refused before anything is allocated for them.
TEST(LrFormat, LayerCountBeyondItsBytesIsRefusedBeforeAllocating) {
  const std::vector<uint8_t> bytes = LrBuilder().Header(kLrVersion, kMaxLrLayers).bytes();
  ASSERT_EQ(bytes.size(), 12u);
  LayerwiseRepresentation lr;
  std::string error;
  EXPECT_FALSE(Parse(bytes, &lr, &error));
  EXPECT_NE(error.find("claims 65536 layers but holds 0 bytes"), std::string::npos) << error;
  EXPECT_EQ(lr.layers.capacity(), 0u);
}

// The largest LR the parser accepts, one minimal layer per operator: linear
// work, with duplicates still found and every layer reachable.
std::vector<uint8_t> MinimalLayers(uint32_t count, uint32_t last_op) {
  LrBuilder b;
  b.Header(kLrVersion, count);
  for (uint32_t i = 0; i < count; ++i) {
    // Operators in a scrambled order, so that the index must sort them.
    const uint32_t op = i + 1 == count ? last_op : (i * 40503u) % count;
    b.Layer(op, i, 1, 1, 1, 1, {1u}, 1, {0});
  }
  return b.bytes();
}

// Best of three parses of `bytes`, in seconds of CPU time (the machine may
// be busy; an emulator may be slow, but equally so for every size).
double ParseSeconds(const std::vector<uint8_t>& bytes, LayerwiseRepresentation* lr) {
  double best = 1e9;
  for (int run = 0; run < 3; ++run) {
    std::string error;
    const std::clock_t start = std::clock();
    EXPECT_TRUE(Parse(bytes, lr, &error)) << error;
    best = std::min(best, static_cast<double>(std::clock() - start) / CLOCKS_PER_SEC);
  }
  return best;
}

TEST(LrFormat, LargestLrParsesInLinearTime) {
  const uint32_t count = kMaxLrLayers;
  LayerwiseRepresentation lr;
  const double eighth = ParseSeconds(
      MinimalLayers(count / 8, ((count / 8 - 1) * 40503u) % (count / 8)), &lr);
  const std::vector<uint8_t> bytes = MinimalLayers(count, ((count - 1) * 40503u) % count);
  const double all = ParseSeconds(bytes, &lr);
  // 8 times the layers: about 8 times the time when parsing is linear;
  // comparing every pair of layers takes 64 times as long (2.3 s at 65,536
  // layers, 17 s under ASan).
  EXPECT_LT(all, 24 * std::max(eighth, 1e-3)) << all << " s vs " << eighth << " s";
  std::string error;
  for (uint32_t op : {0u, 1u, 12345u, count - 1}) {
    const LrLayer* layer = lr.FindByOp(static_cast<int>(op));
    ASSERT_NE(layer, nullptr) << op;
    EXPECT_EQ(layer->op_index, op);
  }
  EXPECT_EQ(lr.FindByOp(static_cast<int>(count)), nullptr);
  EXPECT_EQ(lr.FindByOp(-1), nullptr);

  // The last layer repeats the first one's operator.
  const std::vector<uint8_t> twice = MinimalLayers(count, 0);
  EXPECT_FALSE(Parse(twice, &lr, &error));
  EXPECT_NE(error.find("describes operator 0 twice"), std::string::npos) << error;
}

TEST(LrFormat, FindByOpSeesLayersAddedAfterParsing) {
  LayerwiseRepresentation lr;
  std::string error;
  ASSERT_TRUE(Parse(ValidLr(), &lr, &error)) << error;
  lr.layers.push_back(lr.layers[0]);
  lr.layers.back().op_index = 42;
  ASSERT_NE(lr.FindByOp(42), nullptr);
  lr.layers[0].op_index = 7;  // changed in place: found by the scan
  ASSERT_NE(lr.FindByOp(7), nullptr);
  ASSERT_TRUE(lr.Reindex());
  EXPECT_EQ(lr.FindByOp(7), &lr.layers[0]);
  EXPECT_EQ(lr.FindByOp(0), nullptr);
}

}  // namespace
}  // namespace cocopie
