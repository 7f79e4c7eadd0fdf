#include "delegate/lr/lr_format.h"

#include <algorithm>
#include <cstring>
#include <ctime>
#include <string>
#include <vector>

#include "delegate/tuning/kernel_tuning.h"
#include "delegate/lr/lr_schema.h"
#include "delegate/lr/lr_testing.h"
#include "gtest/gtest.h"

namespace cocopie {
namespace {

// Builds LR buffers with the schema's generated builder, the way the
// converter writes them; fields are written as given, so that tests can
// write what the converter never would.
class LrBuilder {
 public:
  explicit LrBuilder(uint32_t version = kLrVersion) : version_(version) {}
  LrBuilder& Layer(uint32_t op, uint32_t tensor, uint32_t out_c, uint16_t kh,
                   uint16_t kw, uint32_t in_c, std::vector<uint32_t> masks,
                   uint16_t entries, std::vector<uint8_t> ids,
                   uint16_t out_group = 1, std::vector<RawTuningEntry> tuning = {}) {
    const auto mask_vector = fbb_.CreateVector(masks);
    const auto id_vector = fbb_.CreateVector(ids);
    flatbuffers::Offset<fbs::TuningRecord> record;
    if (!tuning.empty()) {
      std::vector<flatbuffers::Offset<fbs::TuningEntry>> entries_of_record;
      for (const RawTuningEntry& e : tuning) {
        entries_of_record.push_back(fbs::CreateTuningEntry(
            fbb_, fbb_.CreateString(e.target), static_cast<fbs::KernelKind>(e.kernel),
            e.channel_block, e.tile_pixels, e.tiles_per_task, e.chunk_kib,
            static_cast<fbs::LoopOrder>(e.loop_order), e.threads));
      }
      record = fbs::CreateTuningRecord(fbb_, fbb_.CreateVector(entries_of_record));
    }
    layers_.push_back(fbs::CreateLayer(fbb_, op, tensor, out_c, in_c, kh, kw, entries,
                                       out_group, mask_vector, id_vector, record));
    return *this;
  }
  // A layer in the compact form: kept bitmap + bit-packed ids, as given.
  LrBuilder& CompactLayer(uint32_t op, uint32_t out_c, uint32_t in_c,
                          std::vector<uint32_t> masks, const CompactIds& compact,
                          uint8_t bits) {
    const auto mask_vector = fbb_.CreateVector(masks);
    const auto id_vector = fbb_.CreateVector(compact.ids);
    const auto kept_vector = fbb_.CreateVector(compact.kept);
    layers_.push_back(fbs::CreateLayer(fbb_, op, 1, out_c, in_c, 3, 3, 4, 1, mask_vector,
                                       id_vector, 0, kept_vector, bits));
    return *this;
  }
  // The same layer table `count` more times (a buffer no converter writes).
  LrBuilder& RepeatLast(uint32_t count) {
    const auto last = layers_.back();
    layers_.insert(layers_.end(), count, last);
    return *this;
  }
  std::vector<uint8_t> bytes() {
    const auto layers = fbb_.CreateVector(layers_);
    fbs::FinishSizePrefixedLayerwiseRepresentationBuffer(
        fbb_, fbs::CreateLayerwiseRepresentation(fbb_, version_, layers));
    return std::vector<uint8_t>(fbb_.GetBufferPointer(),
                                fbb_.GetBufferPointer() + fbb_.GetSize());
  }

 private:
  uint32_t version_;
  flatbuffers::FlatBufferBuilder fbb_;
  std::vector<flatbuffers::Offset<fbs::Layer>> layers_;
};

// Where in `bytes` (a well-formed LR) the layers vector keeps its length.
size_t LayerCountOffset(const std::vector<uint8_t>& bytes) {
  const auto* root = fbs::GetSizePrefixedLayerwiseRepresentation(bytes.data());
  return reinterpret_cast<const uint8_t*>(root->layers()) - bytes.data();
}

// LR version 2: "CPLR", u32 version, u32 layer count, then the layers.
std::vector<uint8_t> OldLr(uint32_t version) {
  std::vector<uint8_t> b = {'C', 'P', 'L', 'R', 0, 0, 0, 0, 0, 0, 0, 0};
  std::memcpy(&b[4], &version, 4);
  return b;
}

RawTuningEntry RawBlock(const std::string& target) {
  RawTuningEntry e;
  e.target = target;
  e.kernel = 1;
  e.channel_block = 16;
  e.tile_pixels = 12;
  e.tiles_per_task = 4;
  e.chunk_kib = 24;
  e.threads = 2;
  return e;
}

// Centre + up/left/right, and centre + up + left + up-left.
constexpr uint32_t kT = (1u << 4) | (1u << 1) | (1u << 3) | (1u << 5);
constexpr uint32_t kSquare = (1u << 4) | (1u << 1) | (1u << 3) | (1u << 0);

std::vector<uint8_t> ValidLr() {
  return LrBuilder()
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
  RawTuningEntry rows;
  rows.target = "NEON";
  const std::vector<RawTuningEntry> record = {RawBlock("AVX3"), rows};
  const std::vector<uint8_t> bytes =
      LrBuilder()
          .Layer(2, 4, 5, 3, 3, 2, {kT, kSquare}, 4,
                 {0, kRemovedKernel, 1, 1, kRemovedKernel, 0}, 2, record)
          .bytes();
  LayerwiseRepresentation lr;
  std::string error;
  ASSERT_TRUE(Parse(bytes, &lr, &error)) << error;
  const LrLayer& layer = lr.layers[0];
  EXPECT_EQ(layer.out_group, 2);
  // The layer's record table becomes a lone record buffer, read as one.
  EXPECT_EQ(layer.tuning, PackTuningRecord(record));
  std::vector<TuningRecordEntry> entries;
  ASSERT_TRUE(DecodeTuningRecord(layer.tuning.data(), layer.tuning.size(), &entries, &error))
      << error;
  ASSERT_EQ(entries.size(), 2u);
  EXPECT_EQ(entries[0].target, "AVX3");
  EXPECT_EQ(entries[0].tuning.block.tile_pixels, 12);
  EXPECT_EQ(entries[1].tuning.kernel, KernelKind::kRows);
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

TEST(LrFormat, RejectsWrongIdentifierAndVersion) {
  std::vector<uint8_t> bytes = ValidLr();
  bytes[8] = 'X';  // after the size prefix and the root offset
  LayerwiseRepresentation lr;
  std::string error;
  EXPECT_FALSE(Parse(bytes, &lr, &error));
  EXPECT_NE(error.find("CPLR identifier"), std::string::npos) << error;

  EXPECT_FALSE(Parse(LrBuilder(7).Layer(0, 1, 1, 3, 3, 1, {kT}, 4, {0}).bytes(), &lr, &error));
  EXPECT_NE(error.find("LR version 7 is not supported"), std::string::npos) << error;
}

// Files of the hand-made format (version 2 and before) are named and refused.
TEST(LrFormat, OldVersionsAskForANewConversion) {
  for (uint32_t version : {1u, 2u}) {
    LayerwiseRepresentation lr;
    std::string error;
    std::vector<uint8_t> old = OldLr(version);
    // A v2 layer after the header, as such files have.
    old.resize(old.size() + 40, 0);
    EXPECT_FALSE(Parse(old, &lr, &error));
    EXPECT_NE(error.find("LR version " + std::to_string(version) +
                         " is no longer read; convert the model again with this release"),
              std::string::npos)
        << error;
  }
  LayerwiseRepresentation lr;
  std::string error;
  EXPECT_FALSE(Parse({'C', 'P', 'L', 'R', 2}, &lr, &error));
  EXPECT_NE(error.find("no longer read"), std::string::npos) << error;
}

// `bytes` with the layers vector claiming `count` layers.
std::vector<uint8_t> WithLayerCount(std::vector<uint8_t> bytes, uint32_t count) {
  std::memcpy(&bytes[LayerCountOffset(bytes)], &count, 4);
  return bytes;
}

TEST(LrFormat, RejectsInconsistentLayers) {
  struct Case {
    const char* what;
    std::vector<uint8_t> bytes;
  };
  const std::vector<Case> cases = {
      {"pattern id beyond table",
       LrBuilder().Layer(0, 1, 1, 3, 3, 1, {kT}, 4, {1}).bytes()},
      {"mask with wrong cell count",
       LrBuilder().Layer(0, 1, 1, 3, 3, 1, {0x7u}, 4, {0}).bytes()},
      {"mask outside kernel",
       LrBuilder().Layer(0, 1, 1, 3, 3, 1, {kT | (1u << 9)}, 5, {0}).bytes()},
      {"zero channels",
       LrBuilder().Layer(0, 1, 0, 3, 3, 1, {kT}, 4, {}).bytes()},
      {"kernel too large",
       LrBuilder().Layer(0, 1, 1, 7, 7, 1, {kT}, 4, {0}).bytes()},
      {"no patterns",
       LrBuilder().Layer(0, 1, 1, 3, 3, 1, {}, 4, {kRemovedKernel}).bytes()},
      {"operator twice",
       LrBuilder()
           .Layer(5, 1, 1, 3, 3, 1, {kT}, 4, {0})
           .Layer(5, 2, 1, 3, 3, 1, {kT}, 4, {0}).bytes()},
      {"output-channel group of zero",
       LrBuilder().Layer(0, 1, 1, 3, 3, 1, {kT}, 4, {0}, 0).bytes()},
      {"output-channel group wider than the layer",
       LrBuilder().Layer(0, 1, 2, 3, 3, 1, {kT}, 4, {0}, 3).bytes()},
      {"ids for channels instead of groups",
       LrBuilder().Layer(0, 1, 4, 3, 3, 1, {kT}, 4, {0, 0, 0, 0}, 2).bytes()},
      {"huge layer count", WithLayerCount(ValidLr(), 0xFFFFFFFFu)},
      {"layer count one too high", WithLayerCount(ValidLr(), 3)},
      {"no pattern ids",
       LrBuilder().Layer(0, 1, 1, 3, 3, 1, {kT}, 4, {}).bytes()},
      {"huge channel count",
       LrBuilder().Layer(0, 1, 0x7FFFFFFFu, 3, 3, 0x7FFFFFFFu, {kT}, 4, {}).bytes()},
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

// An LR cannot describe more layers than its bytes hold: 65,536 layers that
// are one table repeated (4 bytes each) are refused before anything is
// allocated for them, and so is a count beyond the buffer.
TEST(LrFormat, LayerCountBeyondItsBytesIsRefusedBeforeAllocating) {
  const std::vector<uint8_t> bytes =
      LrBuilder().Layer(0, 1, 1, 3, 3, 1, {kT}, 4, {0}).RepeatLast(kMaxLrLayers - 1).bytes();
  LayerwiseRepresentation lr;
  std::string error;
  EXPECT_FALSE(Parse(bytes, &lr, &error));
  EXPECT_NE(error.find("claims 65536 layers but holds " + std::to_string(bytes.size()) +
                       " bytes"),
            std::string::npos)
      << error;
  EXPECT_EQ(lr.layers.capacity(), 0u);

  EXPECT_FALSE(Parse(WithLayerCount(ValidLr(), kMaxLrLayers), &lr, &error));
  EXPECT_FALSE(error.empty());
  EXPECT_EQ(lr.layers.capacity(), 0u);
}

// Layers naming one stored table (and so one vector of ids) many times: a
// small buffer that would otherwise expand to many copies of its ids.
TEST(LrFormat, LayersSharingStoredVectorsCannotDescribeMoreThanTheBufferHolds) {
  const uint32_t out_c = 512, in_c = 128;
  const std::vector<uint8_t> bytes =
      LrBuilder()
          .Layer(0, 1, out_c, 3, 3, in_c, {kT}, 4, std::vector<uint8_t>(out_c * in_c, 0))
          .RepeatLast(100)
          .bytes();
  ASSERT_LT(bytes.size(), 2u * out_c * in_c);
  LayerwiseRepresentation lr;
  std::string error;
  EXPECT_FALSE(Parse(bytes, &lr, &error));
  EXPECT_NE(error.find("(layers sharing stored vectors)"), std::string::npos) << error;
  EXPECT_NE(error.find("LR layers 0..1 describe"), std::string::npos) << error;
}

// The largest LR the parser accepts, one minimal layer per operator: linear
// work, with duplicates still found and every layer reachable.
std::vector<uint8_t> MinimalLayers(uint32_t count, uint32_t last_op) {
  LrBuilder b;
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


const std::vector<uint8_t> kFreeIds = {0, 1, kRemovedKernel, 1, kRemovedKernel, 0};

TEST(LrFormat, CompactFormReadsAsThePlainOne) {
  LayerwiseRepresentation compact, plain;
  std::string error;
  ASSERT_TRUE(Parse(LrBuilder().CompactLayer(0, 2, 3, {kT, kSquare}, CompactForm(kFreeIds, 1), 1)
                        .bytes(),
                    &compact, &error))
      << error;
  ASSERT_TRUE(Parse(LrBuilder().Layer(0, 1, 2, 3, 3, 3, {kT, kSquare}, 4, kFreeIds).bytes(),
                    &plain, &error))
      << error;
  EXPECT_EQ(compact.layers[0].kernel_pattern, plain.layers[0].kernel_pattern);
  EXPECT_EQ(compact.layers[0].kernel_pattern, kFreeIds);
}

TEST(LrFormat, Version3IsStillReadButHasNoCompactForm) {
  LayerwiseRepresentation lr;
  std::string error;
  EXPECT_TRUE(Parse(LrBuilder(3).Layer(0, 1, 2, 3, 3, 3, {kT, kSquare}, 4, kFreeIds).bytes(),
                    &lr, &error))
      << error;
  EXPECT_FALSE(Parse(LrBuilder(3).CompactLayer(0, 2, 3, {kT, kSquare},
                                               CompactForm(kFreeIds, 1), 1).bytes(),
                     &lr, &error));
  EXPECT_NE(error.find("kernel_kept in an LR of version 3"), std::string::npos) << error;
}

TEST(LrFormat, RejectsInconsistentCompactForms) {
  // 5 patterns: ids of 3 bits (5..7 out of range); 4 kept ids use 12 of 16 bits.
  const std::vector<uint32_t> masks = {kT, kSquare, kT, kSquare, kT};
  const CompactIds good = CompactForm(kFreeIds, 3);
  CompactIds kept_padding = good, ids_padding = good, short_ids = good, long_kept = good,
             bad_id = good;
  kept_padding.kept.back() |= 0x80;
  ids_padding.ids.back() |= 0x80;
  short_ids.ids.pop_back();
  long_kept.kept.push_back(0);
  bad_id.ids = PackBits({5, 0, 0, 0}, 3);
  const struct {
    CompactIds compact;
    uint8_t bits;
    const char* message;
  } cases[] = {
      {kept_padding, 3, "kernel_kept does not hold exactly 6 bits"},
      {long_kept, 3, "kernel_kept does not hold exactly 6 bits"},
      {ids_padding, 3, "kernel_pattern does not hold exactly 4 ids of 3 bits"},
      {short_ids, 3, "kernel_pattern does not hold exactly 4 ids of 3 bits"},
      {bad_id, 3, "names pattern 5 but the table has 5"},
      {good, 0, "pattern_id_bits 0 out of range"},
      {good, 9, "pattern_id_bits 9 out of range"},
  };
  for (const auto& c : cases) {
    LayerwiseRepresentation lr;
    std::string error;
    EXPECT_FALSE(Parse(LrBuilder().CompactLayer(0, 2, 3, masks, c.compact, c.bits).bytes(), &lr,
                       &error))
        << c.message;
    EXPECT_NE(error.find(c.message), std::string::npos) << error;
  }
}

}  // namespace
}  // namespace cocopie
