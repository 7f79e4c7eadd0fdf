// Kernel tuning: the record codec (rules, garbage, mutations), signatures,
// the cache file, and a tuned step computing what the reference computes;
// the choice's priority (LR over cache over built-in) through TuneConvStep.
#include "delegate/tuning/kernel_tuning.h"

#include <pthreadpool.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "delegate/graph/conv_node.h"
#include "delegate/graph/delegate_state.h"
#include "delegate/lr/lr_schema.h"
#include "gtest/gtest.h"

namespace cocopie {
namespace {

TuningRecordEntry BlockEntry(const std::string& target, int block, int tile) {
  TuningRecordEntry e;
  e.target = target;
  e.tuning.kernel = KernelKind::kBlock;
  e.tuning.channel_block = block;
  e.tuning.block.tile_pixels = tile;
  e.tuning.block.tiles_per_task = 7;
  e.tuning.block.chunk_bytes = 48 * 1024;
  e.tuning.block.loop_order = BlockLoopOrder::kPixelsOuter;
  e.threads = 2;
  return e;
}

TuningRecordEntry RowsEntry(const std::string& target) {
  TuningRecordEntry e;
  e.target = target;
  e.tuning.kernel = KernelKind::kRows;
  return e;
}

bool Decodes(const std::vector<uint8_t>& bytes, std::string* error = nullptr) {
  std::vector<TuningRecordEntry> entries;
  std::string ignored;
  return DecodeTuningRecord(bytes.data(), bytes.size(), &entries,
                            error != nullptr ? error : &ignored);
}

TEST(TuningRecord, RoundTripsEveryField) {
  const std::vector<TuningRecordEntry> in = {BlockEntry("AVX3", 16, 24), RowsEntry("NEON"),
                                             BlockEntry("AVX2", 8, 13)};
  const std::vector<uint8_t> bytes = EncodeTuningRecord(in);
  // A size-prefixed buffer of the schema with the record's own identifier.
  ASSERT_GT(bytes.size(), 12u);
  EXPECT_EQ(std::string(bytes.begin() + 8, bytes.begin() + 12), kTuningRecordIdentifier);
  std::vector<TuningRecordEntry> out;
  std::string error;
  ASSERT_TRUE(DecodeTuningRecord(bytes.data(), bytes.size(), &out, &error)) << error;
  ASSERT_EQ(out.size(), 3u);
  for (size_t i = 0; i < in.size(); ++i) {
    EXPECT_EQ(out[i].target, in[i].target);
    EXPECT_TRUE(out[i].tuning == in[i].tuning) << i;
    EXPECT_EQ(out[i].threads, in[i].threads);
  }
  EXPECT_EQ(out[0].tuning.block.chunk_bytes, 48 * 1024);
  EXPECT_EQ(out[0].tuning.block.loop_order, BlockLoopOrder::kPixelsOuter);
}

// The fields of BlockEntry / RowsEntry as the schema stores them.
RawTuningEntry RawOf(const TuningRecordEntry& e) {
  const std::vector<uint8_t> bytes = EncodeTuningRecord({e});
  const auto* record = flatbuffers::GetSizePrefixedRoot<fbs::TuningRecord>(bytes.data());
  return ReadTuningRecord(*record).at(0);
}

TEST(TuningRecord, EveryRuleIsChecked) {
  const RawTuningEntry good = RawOf(BlockEntry("AVX3", 32, 12));
  ASSERT_TRUE(Decodes(PackTuningRecord({good})));
  struct Case {
    const char* what;
    void (*edit)(RawTuningEntry*);
    const char* message;
  };
  const Case cases[] = {
      {"non-ASCII target", [](RawTuningEntry* e) { e->target[1] = '\x80'; }, "not ASCII"},
      {"space in target", [](RawTuningEntry* e) { e->target[1] = ' '; }, "not ASCII"},
      {"empty target", [](RawTuningEntry* e) { e->target.clear(); }, "target name of 0"},
      {"target of 16", [](RawTuningEntry* e) { e->target = std::string(16, 'A'); },
       "target name of 16"},
      {"kernel 3", [](RawTuningEntry* e) { e->kernel = 3; }, "kernel 3"},
      {"block 24", [](RawTuningEntry* e) { e->channel_block = 24; }, "channel block 24"},
      {"tile 0", [](RawTuningEntry* e) { e->tile_pixels = 0; }, "tile of 0"},
      {"tile 33", [](RawTuningEntry* e) { e->tile_pixels = 33; }, "tile of 33"},
      {"tiles 0", [](RawTuningEntry* e) { e->tiles_per_task = 0; }, "tiles per task 0"},
      {"tiles 65", [](RawTuningEntry* e) { e->tiles_per_task = 65; }, "tiles per task 65"},
      {"chunk > 4 MiB", [](RawTuningEntry* e) { e->chunk_kib = 4097; }, "chunk of 4097"},
      {"loop order 2", [](RawTuningEntry* e) { e->loop_order = 2; }, "loop order 2"},
  };
  for (const Case& c : cases) {
    RawTuningEntry bad = good;
    c.edit(&bad);
    std::string error;
    EXPECT_FALSE(Decodes(PackTuningRecord({bad}), &error)) << c.what;
    EXPECT_NE(error.find(c.message), std::string::npos) << c.what << ": " << error;
  }
  std::string error0;
  // A rows entry must not carry block fields.
  RawTuningEntry rows = RawOf(RowsEntry("AVX3"));
  ASSERT_TRUE(Decodes(PackTuningRecord({rows})));
  rows.tile_pixels = 4;
  EXPECT_FALSE(Decodes(PackTuningRecord({rows})));
  // Nor a stock entry, which otherwise round-trips.
  TuningRecordEntry stock_entry = RowsEntry("AVX2");
  stock_entry.tuning.kernel = KernelKind::kStock;
  stock_entry.threads = 2;
  std::vector<TuningRecordEntry> decoded;
  const std::vector<uint8_t> stock_bytes = EncodeTuningRecord({stock_entry});
  ASSERT_TRUE(DecodeTuningRecord(stock_bytes.data(), stock_bytes.size(), &decoded, &error0));
  ASSERT_EQ(decoded.size(), 1u);
  EXPECT_TRUE(decoded[0].tuning == stock_entry.tuning);
  EXPECT_EQ(decoded[0].threads, 2);
  RawTuningEntry stock = RawOf(stock_entry);
  stock.chunk_kib = 1;
  EXPECT_FALSE(Decodes(PackTuningRecord({stock}), &error0));
  EXPECT_NE(error0.find("a stock entry has block-kernel fields"), std::string::npos) << error0;
  // No entries, too many, a repeated target.
  std::string error;
  EXPECT_FALSE(Decodes(PackTuningRecord({}), &error));
  EXPECT_NE(error.find("0 entries"), std::string::npos) << error;
  std::vector<RawTuningEntry> many;
  for (int i = 0; i <= kMaxTuningEntries; ++i) {
    many.push_back(good);
    many.back().target = "T" + std::to_string(i);
  }
  EXPECT_FALSE(Decodes(PackTuningRecord(many), &error));
  EXPECT_NE(error.find("17 entries"), std::string::npos) << error;
  many.pop_back();
  EXPECT_TRUE(Decodes(PackTuningRecord(many), &error)) << error;
  EXPECT_FALSE(Decodes(EncodeTuningRecord({BlockEntry("AVX3", 32, 12), RowsEntry("AVX3")})));
  // Truncated, trailing bytes, another identifier, the old hand-made record.
  const std::vector<uint8_t> bytes = PackTuningRecord({good});
  EXPECT_FALSE(Decodes({}));
  for (size_t n = 0; n < bytes.size(); ++n) {
    EXPECT_FALSE(Decodes(std::vector<uint8_t>(bytes.begin(), bytes.begin() + n))) << n;
  }
  std::vector<uint8_t> longer = bytes;
  longer.push_back(0);
  EXPECT_FALSE(Decodes(longer));
  std::vector<uint8_t> other = bytes;
  other[8] = 'X';
  EXPECT_FALSE(Decodes(other));
  std::vector<uint8_t> old = {1, 1, 'A', 'V', 'X', '3'};
  old.resize(2 + 24, 0);
  old[2 + 16] = 1;
  EXPECT_FALSE(Decodes(old));
  std::vector<TuningRecordEntry> out;
  EXPECT_FALSE(DecodeTuningRecord(nullptr, 0, &out, &error));
}

// Random bytes and random mutations of valid records: never a crash (ASan
// build), and whatever is accepted says one thing: re-encoded, it decodes to
// the same entries. (Bytes FlatBuffers leaves unread, such as padding, may
// differ from the encoder's, so a buffer need not re-encode to itself.)
TEST(TuningRecord, GarbageAndMutationsAreSafe) {
  std::mt19937 rng(99);
  const std::vector<uint8_t> seed =
      EncodeTuningRecord({BlockEntry("AVX3", 32, 12), RowsEntry("NEON")});
  int accepted = 0;
  for (int i = 0; i < 20000; ++i) {
    std::vector<uint8_t> bytes;
    if (i % 4 == 0) {
      bytes.resize(rng() % 80);
      for (uint8_t& b : bytes) b = static_cast<uint8_t>(rng());
    } else {
      bytes = seed;
      const int edits = 1 + static_cast<int>(rng() % 3);
      for (int k = 0; k < edits; ++k) {
        const uint32_t op = rng() % 8;
        if (op == 0 && !bytes.empty()) {
          bytes.resize(rng() % bytes.size());
        } else if (op == 1) {
          bytes.push_back(static_cast<uint8_t>(rng()));
        } else if (!bytes.empty()) {
          bytes[rng() % bytes.size()] = static_cast<uint8_t>(rng() % 4 == 0 ? rng() : rng() % 40);
        }
      }
    }
    std::vector<TuningRecordEntry> entries;
    std::string error;
    if (DecodeTuningRecord(bytes.data(), bytes.size(), &entries, &error)) {
      ++accepted;
      const std::vector<uint8_t> again = EncodeTuningRecord(entries);
      std::vector<TuningRecordEntry> decoded;
      ASSERT_TRUE(DecodeTuningRecord(again.data(), again.size(), &decoded, &error)) << i;
      ASSERT_EQ(decoded.size(), entries.size()) << "mutation " << i;
      for (size_t k = 0; k < entries.size(); ++k) {
        ASSERT_EQ(decoded[k].target, entries[k].target) << "mutation " << i;
        ASSERT_TRUE(decoded[k].tuning == entries[k].tuning) << "mutation " << i;
        ASSERT_EQ(decoded[k].threads, entries[k].threads) << "mutation " << i;
      }
    } else {
      ASSERT_FALSE(error.empty());
      ASSERT_TRUE(entries.empty());
    }
  }
  EXPECT_GT(accepted, 100);  // the mutations do reach the accepting paths
}

// A random pattern-pruned layer, packed; `shared` = one pattern per 32
// output channels and input channel.
PackedPatternWeights RandomLayer(int in_c, int out_c, uint32_t seed, std::vector<float>* bias) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> value(-1.0f, 1.0f);
  LrLayer layer;
  layer.out_channels = out_c;
  layer.in_channels = in_c;
  layer.kernel_h = layer.kernel_w = 3;
  layer.entries_per_pattern = 4;
  layer.pattern_masks = {0x3Au, 0xB8u, 0x9Au, 0xB2u};  // 4 cells each, centre kept
  std::vector<float> filter(static_cast<size_t>(out_c) * 9 * in_c, 0.0f);
  for (int co = 0; co < out_c; ++co) {
    for (int ci = 0; ci < in_c; ++ci) {
      const uint8_t id = rng() % 5 == 0 ? kRemovedKernel : static_cast<uint8_t>(rng() % 4);
      layer.kernel_pattern.push_back(id);
      if (id == kRemovedKernel) continue;
      for (int cell = 0; cell < 9; ++cell) {
        if (layer.pattern_masks[id] & (1u << cell)) {
          filter[(static_cast<size_t>(co) * 9 + cell) * in_c + ci] = value(rng);
        }
      }
    }
  }
  bias->resize(out_c);
  for (float& b : *bias) b = value(rng);
  return PackPatternWeights(layer, filter.data(), bias->data());
}

ConvStep MakeStep(int h, int w, int in_c, int out_c, int stride, uint32_t seed) {
  ConvStep step;
  step.node_index = 3;
  std::vector<float> bias;
  step.weights = RandomLayer(in_c, out_c, seed, &bias);
  ConvGeometry& g = step.geometry;
  g.in_h = h; g.in_w = w; g.in_c = in_c; g.out_c = out_c;
  g.kernel_h = g.kernel_w = 3;
  g.stride_h = g.stride_w = stride;
  std::string error;
  EXPECT_TRUE(ComputeConvGeometry(Padding::kSame, &g, &error)) << error;
  ChooseKernel(kCocopieKernelAuto, &step);
  return step;
}

// Runs `step` the way the partition kernel does, against the reference.
void ExpectStepMatchesReference(ConvStep* step, pthreadpool_t pool) {
  const ConvGeometry& g = step->geometry;
  std::vector<float> input(static_cast<size_t>(g.batch) * g.in_h * g.in_w * g.in_c);
  std::mt19937 rng(5);
  for (float& x : input) x = std::uniform_real_distribution<float>(-1, 1)(rng);
  std::vector<float> expected(static_cast<size_t>(g.batch) * g.out_h * g.out_w * g.out_c);
  std::vector<float> actual(expected.size(), NAN);
  PatternConvReference(g, step->weights, input.data(), expected.data());
  if (!(step->use_block && PatternConvBlock(g, step->blocks, input.data(), actual.data(),
                                            &step->block_scratch, pool))) {
    ASSERT_FALSE(step->use_block) << "a tuned block step must run";
    PatternConvSimd(g, step->weights, input.data(), actual.data(), &step->scratch, pool);
  }
  for (size_t i = 0; i < expected.size(); ++i) {
    ASSERT_NEAR(expected[i], actual[i], 1e-4f * (1 + std::fabs(expected[i]))) << i;
  }
}

TEST(KernelTuning, SignatureFollowsShapeAndStructureNotValues) {
  const ConvStep a = MakeStep(10, 12, 8, 20, 1, 1);
  const ConvStep same_structure = MakeStep(10, 12, 8, 20, 1, 1);
  ConvStep other_values = MakeStep(10, 12, 8, 20, 1, 1);
  for (float& w : other_values.weights.weights) w *= 2;
  const ConvStep other_structure = MakeStep(10, 12, 8, 20, 1, 2);
  const ConvStep other_stride = MakeStep(10, 12, 8, 20, 2, 1);
  const std::string sig = LayerSignature(a.geometry, a.weights);
  EXPECT_EQ(sig, LayerSignature(same_structure.geometry, same_structure.weights));
  EXPECT_EQ(sig, LayerSignature(other_values.geometry, other_values.weights));
  EXPECT_NE(sig, LayerSignature(other_structure.geometry, other_structure.weights));
  EXPECT_NE(sig, LayerSignature(other_stride.geometry, other_stride.weights));
  EXPECT_EQ(sig.find_first_of(" \t|\n"), std::string::npos);
  EXPECT_EQ(CpuIdentity().find_first_of(" \t|\n"), std::string::npos);
}

TEST(KernelTuning, TimedChoiceComputesTheReference) {
  for (const bool block_only : {false, true}) {
    // Threaded only once: on a shared machine, pool hand-offs make timing slow.
    pthreadpool_t pool = block_only ? pthreadpool_create(2) : nullptr;
    ConvStep step = MakeStep(5, 7, 40, 24, 1, 7);
    std::vector<TunedCandidate> timings;
    const KernelTuning best = TimeKernelCandidates(step, pool, block_only, &timings);
    EXPECT_GE(timings.size(), 2u);
    for (const TunedCandidate& c : timings) {
      EXPECT_GT(c.microseconds, 0);
      EXPECT_LT(c.microseconds, 1e299) << "every candidate ran";
    }
    if (block_only) {
      EXPECT_EQ(best.kernel, KernelKind::kBlock);
    }
    std::string error;
    ASSERT_TRUE(ApplyKernelTuning(best, &step, &error)) << error;
    ExpectStepMatchesReference(&step, pool);
    if (pool != nullptr) pthreadpool_destroy(pool);
  }
}

TEST(KernelTuning, EveryVariantAppliedToAStepComputesTheReference) {
  ConvStep step = MakeStep(7, 11, 33, 40, 2, 3);
  for (int block : BlockKernelChannelBlocks()) {
    for (int tile : BlockKernelTilePixels(block)) {
      KernelTuning t;
      t.channel_block = block;
      t.block.tile_pixels = tile;
      t.block.chunk_bytes = 1024;  // several chunks
      std::string error;
      ASSERT_TRUE(ApplyKernelTuning(t, &step, &error)) << error;
      ASSERT_EQ(step.blocks.block, block);
      ExpectStepMatchesReference(&step, nullptr);
    }
  }
  KernelTuning rows;
  rows.kernel = KernelKind::kRows;
  std::string error;
  ASSERT_TRUE(ApplyKernelTuning(rows, &step, &error));
  EXPECT_FALSE(step.use_block);
  ExpectStepMatchesReference(&step, nullptr);
  KernelTuning impossible;
  impossible.channel_block = PreferredChannelBlock();
  impossible.block.tile_pixels = 31;  // no target compiles it
  EXPECT_FALSE(ApplyKernelTuning(impossible, &step, &error));
  EXPECT_FALSE(error.empty());
  EXPECT_FALSE(step.use_block) << "a refused tuning leaves the step as it was";
}

// A scratch file name; Bazel gives tests a directory of their own.
std::string TempPath(const char* name) {
  const char* dir = std::getenv("TEST_TMPDIR");
  return std::string(dir != nullptr && *dir ? dir : "/tmp") + "/cocopie_tuning_test_" +
         std::to_string(getpid()) + "_" + name;
}

TEST(TuningCache, PersistsAndSkipsGarbage) {
  const std::string path = TempPath("cache.txt");
  {
    std::ofstream out(path);
    // A cache file (its header first) holding three unreadable lines.
    out << kTuningCacheHeader << "\n# comment\nno tab here\nkey-bad\tzz\nkey-short\t0101\n";
  }
  KernelTuning t = BlockEntry("x", PreferredChannelBlock(), 4).tuning;
  std::vector<std::string> warnings;
  {
    TuningCache cache(path);
    KernelTuning found;
    EXPECT_FALSE(cache.Lookup("layer|cpu|t1", &found, &warnings));
    ASSERT_EQ(warnings.size(), 1u);  // one message for the three bad lines
    EXPECT_NE(warnings[0].find("3 unreadable"), std::string::npos) << warnings[0];
    cache.Store("layer|cpu|t1", t, 1, &warnings);
    EXPECT_EQ(warnings.size(), 1u);
  }
  TuningCache reread(path);
  KernelTuning found;
  warnings.clear();
  ASSERT_TRUE(reread.Lookup("layer|cpu|t1", &found, &warnings));
  EXPECT_TRUE(found == t);
  EXPECT_TRUE(warnings.empty()) << "the rewritten file keeps only good lines";
  std::remove(path.c_str());

  TuningCache unwritable("/nonexistent-dir/cache.txt");
  unwritable.Store("k", t, 1, &warnings);
  EXPECT_FALSE(warnings.empty());
  EXPECT_TRUE(unwritable.Lookup("k", &found, &warnings)) << "kept in memory";
}

// TuneConvStep through a DelegateState: the LR's entry wins without timing,
// the cache comes next, a corrupt LR record is ignored, off restores the
// built-in choice.
TEST(KernelTuning, ResolvesLrThenCacheThenBuiltIn) {
  const std::string path = TempPath("priority.txt");
  CocopieDelegateOptions options = CocopieDelegateOptionsDefault();
  options.tuning = kCocopieTuningCache;
  options.tuning_cache = path.c_str();
  DelegateState state(options);
  LrLayer layer;
  layer.op_index = 3;
  TuningRecordEntry lr_entry = BlockEntry(PatternConvSimdTarget(), PreferredChannelBlock(),
                                          BlockKernelTilePixels(PreferredChannelBlock()).back());
  layer.tuning = EncodeTuningRecord({RowsEntry("SOMEWHERE_ELSE"), lr_entry});
  state.lr().layers.push_back(layer);

  ConvStep step = MakeStep(8, 8, 16, 32, 1, 11);
  TuneConvStep(&state, &step, nullptr);
  EXPECT_EQ(state.node_tunings()[3].source, "lr");
  EXPECT_TRUE(step.use_block);
  EXPECT_TRUE(step.block_scratch.params == lr_entry.tuning.block);
  ExpectStepMatchesReference(&step, nullptr);

  // Same geometry: nothing to resolve again.
  state.node_tunings().clear();
  TuneConvStep(&state, &step, nullptr);
  EXPECT_TRUE(state.node_tunings().empty());

  // A cache entry for this layer is used when the LR has none.
  KernelTuning rows;
  rows.kernel = KernelKind::kRows;
  const std::string key = LayerSignature(step.geometry, step.weights) + "|" + CpuIdentity() + "|t1";
  std::vector<std::string> warnings;
  state.tuning_cache().Store(key, rows, 1, &warnings);
  state.lr().layers[0].tuning.clear();
  step.tuning_key.clear();
  TuneConvStep(&state, &step, nullptr);
  EXPECT_EQ(state.node_tunings()[3].source, "cache");
  EXPECT_FALSE(step.use_block);

  // A corrupt LR record is ignored (and the cache still applies).
  state.lr().layers[0].tuning = {1, 1, 'A'};
  step.tuning_key.clear();
  TuneConvStep(&state, &step, nullptr);
  EXPECT_EQ(state.node_tunings()[3].source, "cache");

  // The JSON report names the node and its source.
  const char* json = CocopieDelegateKernelTunings(state.delegate());
  ASSERT_NE(json, nullptr);
  EXPECT_NE(std::string(json).find("\"source\": \"cache\""), std::string::npos) << json;
  std::remove(path.c_str());
}

TEST(KernelTuning, OffRestoresTheBuiltInChoice) {
  CocopieDelegateOptions options = CocopieDelegateOptionsDefault();
  options.tuning = kCocopieTuningOff;
  options.tuning_cache = nullptr;
  DelegateState state(options);
  LrLayer layer;
  layer.op_index = 3;
  layer.tuning = EncodeTuningRecord({RowsEntry(PatternConvSimdTarget())});
  state.lr().layers.push_back(layer);
  ConvStep step = MakeStep(6, 6, 8, 16, 1, 4);
  ASSERT_TRUE(step.built_in_block);
  TuneConvStep(&state, &step, nullptr);
  EXPECT_EQ(state.node_tunings()[3].source, "off");
  EXPECT_TRUE(step.use_block);
  // Today's defaults, the tile made explicit, at the block that pads these
  // 16 output channels least (16 where it is compiled, even if 32 is preferred).
  const int block = PackLeastPaddedBlocks(step.weights).block;
  const std::vector<int> blocks = BlockKernelChannelBlocks();
  if (std::find(blocks.begin(), blocks.end(), 16) != blocks.end()) EXPECT_EQ(block, 16);
  BlockKernelParams built_in;
  built_in.tile_pixels = BlockKernelTilePixels(block).front();
  EXPECT_TRUE(step.block_scratch.params == built_in);
  EXPECT_EQ(step.blocks.block, block);
}

}  // namespace
}  // namespace cocopie
