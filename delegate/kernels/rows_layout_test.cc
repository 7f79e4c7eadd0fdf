#include "delegate/kernels/rows_layout.h"

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "delegate/kernels/conv_testing.h"
#include "gtest/gtest.h"

namespace cocopie {
namespace {

bool IsPlaneStride(size_t stride) { return stride % 16 == 0 && (stride / 16) % 2 == 1; }

TEST(RowsLayoutTest, PlaneStrideIsAnOddNumberOfWholeLinesThatHoldsThePlane) {
  for (size_t floats = 1; floats < 2000; floats += 7) {
    const size_t stride = PlaneStride(floats);
    EXPECT_GE(stride, floats);
    EXPECT_LT(stride, floats + 33) << "more than two lines of slack for " << floats;
    EXPECT_TRUE(IsPlaneStride(stride)) << floats << " -> " << stride;
  }
}

// Every tap of every tile reads inside its channel's plane of the padded
// copy, the image fits that copy, and the tiles cover every output pixel.
void ExpectLayoutHolds(const ConvGeometry& g, size_t lanes, const RowsLayout& l) {
  const std::string where = "in " + std::to_string(g.in_h) + "x" + std::to_string(g.in_w) +
                            " k" + std::to_string(g.kernel_h) + " s" +
                            std::to_string(g.stride_h) + " d" + std::to_string(g.dilation_h) +
                            " lanes " + std::to_string(lanes);
  SCOPED_TRACE(where);
  ASSERT_GE(l.tile.vectors, 1);
  ASSERT_LE(l.tile.vectors, kMaxTileVectors);
  ASSERT_GE(l.tile.rows, 1);
  ASSERT_LE(l.tile.rows, kMaxTileRows[l.tile.vectors - 1]);
  EXPECT_TRUE(IsPlaneStride(l.plane));
  EXPECT_TRUE(IsPlaneStride(l.out_plane));
  EXPECT_LE(static_cast<size_t>(l.plane_h) * l.phase_w, l.plane);
  const int64_t extra_h = int64_t{g.kernel_h - 1} * g.dilation_h;
  const int64_t extra_w = int64_t{g.kernel_w - 1} * g.dilation_w;
  const size_t tile_floats = static_cast<size_t>(l.tile.rows) * l.tile.vectors * lanes;
  if (l.flat) {
    EXPECT_EQ(g.stride_h, 1);
    EXPECT_EQ(g.stride_w, 1);
    EXPECT_EQ(l.out_pitch, static_cast<size_t>(g.out_w + extra_w));
    EXPECT_GE(l.row_tiles * tile_floats, (g.out_h - 1) * l.out_pitch + g.out_w);
    const int64_t last_read = static_cast<int64_t>(l.row_tiles * tile_floats) - 1 +
                              extra_h * l.phase_w + extra_w;
    EXPECT_LT(last_read, static_cast<int64_t>(l.plane));
    EXPECT_GE(l.out_plane, l.row_tiles * tile_floats);
    return;
  }
  EXPECT_GE(l.row_tiles * l.tile.rows, static_cast<size_t>(g.out_h));
  EXPECT_EQ(l.out_stride % (l.tile.vectors * lanes), 0u);
  EXPECT_GE(l.out_stride, static_cast<size_t>(g.out_w));
  const int64_t last_row = static_cast<int64_t>(l.row_tiles * l.tile.rows - 1) * g.stride_h +
                           extra_h;
  EXPECT_LT(last_row, l.plane_h);
  // Padded column x lies in phase x % stride_w at column x / stride_w.
  const int64_t last_column = static_cast<int64_t>(l.out_stride - 1) * g.stride_w + extra_w;
  EXPECT_LT(last_column / g.stride_w, l.phase_w);
  EXPECT_GE(l.out_plane, l.row_tiles * l.tile.rows * l.out_stride);
}

TEST(RowsLayoutTest, TilesCoverTheOutputAndReadInsideThePaddedCopy) {
  int checked = 0;
  for (int size : {1, 2, 3, 4, 5, 7, 8, 13, 16, 28, 33}) {
    for (int kernel : {1, 3, 5}) {
      for (int stride : {1, 2, 3}) {
        for (int dilation : {1, 2}) {
          for (Padding padding : {Padding::kSame, Padding::kValid}) {
            ConvGeometry base;
            base.in_h = size;
            base.in_w = size + 3;
            base.in_c = base.out_c = 4;
            base.stride_h = base.stride_w = stride;
            base.dilation_h = base.dilation_w = dilation;
            ConvGeometry g;
            if (!SizeConvGeometryOrSkip(base, kernel, padding, true, &g)) continue;
            for (size_t lanes : {4, 8, 16}) {
              ExpectLayoutHolds(g, lanes, PlanRowsLayout(g, lanes));
              ++checked;
            }
          }
        }
      }
    }
  }
  EXPECT_GT(checked, 500);
}

TEST(RowsLayoutTest, SmallMapsAtStrideOneRunFlattened) {
  ConvGeometry base;
  base.in_h = base.in_w = 8;
  base.in_c = base.out_c = 16;
  ConvGeometry g;
  ASSERT_TRUE(SizeConvGeometryOrSkip(base, 3, Padding::kSame, false, &g));
  const RowsLayout small = PlanRowsLayout(g, 16);
  EXPECT_TRUE(small.flat);
  // 8 rows of 10 padded columns are 80 floats, 5 vectors of 16, not the 8
  // half-empty vectors of a row per vector.
  EXPECT_EQ(small.row_tiles * small.tile.rows * small.tile.vectors, 5u);

  base.stride_h = base.stride_w = 2;
  ASSERT_TRUE(SizeConvGeometryOrSkip(base, 3, Padding::kSame, false, &g));
  EXPECT_FALSE(PlanRowsLayout(g, 16).flat);
}

// Three filters over 10 input channels: kernels listed by input channel.
PackedPatternWeights ThreeFilters(const std::vector<std::vector<int32_t>>& channels) {
  PackedPatternWeights w;
  w.out_c = static_cast<int>(channels.size());
  w.in_c = 10;
  w.kernel_h = w.kernel_w = 3;
  w.entries = 4;
  w.pattern_masks = {0b000011011};  // cells 0, 1, 3, 4
  w.kernel_begin = {0};
  for (const std::vector<int32_t>& filter : channels) {
    for (int32_t c : filter) {
      w.in_channel.push_back(c);
      w.pattern.push_back(0);
    }
    w.kernel_begin.push_back(static_cast<int32_t>(w.in_channel.size()));
  }
  w.weights.assign(w.in_channel.size() * w.entries, 1.0f);
  w.bias.assign(w.out_c, 0.0f);
  for (int co = 0; co < w.out_c; ++co) w.filter_order.push_back(co);
  return w;
}

ConvGeometry TenChannelGeometry(int out_c) {
  ConvGeometry base, g;
  base.in_h = base.in_w = 12;
  base.in_c = 10;
  base.out_c = out_c;
  EXPECT_TRUE(SizeConvGeometryOrSkip(base, 3, Padding::kSame, false, &g));
  return g;
}

TEST(RowsLayoutTest, ChunksSplitEachFilterByInputChannel) {
  const PackedPatternWeights w = ThreeFilters({{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, {2, 7}, {}});
  const ConvGeometry g = TenChannelGeometry(3);
  const RowsLayout layout = PlanRowsLayout(g, 8);
  PatternConvScratch scratch;
  scratch.chunk_bytes = static_cast<int>(3 * layout.tile_input * sizeof(float));
  const int chunks = PlanChunks(g, w, layout, &scratch);
  ASSERT_EQ(chunks, 4);  // channels 0-2, 3-5, 6-8, 9
  ASSERT_EQ(scratch.chunk_kernels.size(), 3u * (chunks + 1));
  for (int co = 0; co < w.out_c; ++co) {
    const int32_t* row = scratch.chunk_kernels.data() + co * (chunks + 1);
    EXPECT_EQ(row[0], w.kernel_begin[co]);
    EXPECT_EQ(row[chunks], w.kernel_begin[co + 1]);
    for (int chunk = 0; chunk < chunks; ++chunk) {
      ASSERT_LE(row[chunk], row[chunk + 1]);
      for (int32_t k = row[chunk]; k < row[chunk + 1]; ++k) {
        EXPECT_EQ(w.in_channel[k] / 3, chunk) << "filter " << co << " kernel " << k;
      }
    }
  }
  const int32_t* second = scratch.chunk_kernels.data() + (chunks + 1);
  EXPECT_EQ(second[1] - second[0], 1);  // channel 2
  EXPECT_EQ(second[3] - second[2], 1);  // channel 7
}

TEST(RowsLayoutTest, UnsortedKernelsOrNoBudgetRunInOneChunk) {
  const ConvGeometry g = TenChannelGeometry(2);
  const RowsLayout layout = PlanRowsLayout(g, 8);
  PatternConvScratch scratch;
  scratch.chunk_bytes = static_cast<int>(layout.tile_input * sizeof(float));
  const PackedPatternWeights unsorted = ThreeFilters({{0, 1, 2}, {5, 3}});
  EXPECT_EQ(PlanChunks(g, unsorted, layout, &scratch), 1);
  EXPECT_EQ(scratch.chunk_kernels, (std::vector<int32_t>{0, 3, 3, 5}));

  scratch.chunk_bytes = 0;
  const PackedPatternWeights sorted = ThreeFilters({{0, 9}, {3, 5}});
  EXPECT_EQ(PlanChunks(g, sorted, layout, &scratch), 1);
}

TEST(RowsLayoutTest, TapOffsetsPointAtTheTapsInputInThePaddedCopy) {
  const PackedPatternWeights w = ThreeFilters({{1, 4}});
  const ConvGeometry g = TenChannelGeometry(1);
  const RowsLayout layout = PlanRowsLayout(g, 8);
  std::vector<int64_t> taps;
  FillTapOffsets(g, w, layout.plane, layout.phase_w, &taps);
  ASSERT_EQ(taps.size(), 8u);
  const int cells[4][2] = {{0, 0}, {0, 1}, {1, 0}, {1, 1}};  // (row, column) of cells 0, 1, 3, 4
  for (int k = 0; k < 2; ++k) {
    for (int e = 0; e < 4; ++e) {
      const int64_t expected = w.in_channel[k] * static_cast<int64_t>(layout.plane) +
                               cells[e][0] * layout.phase_w + cells[e][1];
      EXPECT_EQ(taps[k * 4 + e], expected) << "kernel " << k << " entry " << e;
    }
  }
  // At stride 2, padded column 1 is column 0 of phase 1, after all channels
  // of phase 0.
  ConvGeometry strided_base = g, strided;
  strided_base.stride_h = strided_base.stride_w = 2;
  ASSERT_TRUE(SizeConvGeometryOrSkip(strided_base, 3, Padding::kSame, false, &strided));
  const RowsLayout split = PlanRowsLayout(strided, 8);
  FillTapOffsets(strided, w, split.plane, split.phase_w, &taps);
  EXPECT_EQ(taps[1], (int64_t{g.in_c} + 1) * static_cast<int64_t>(split.plane));
  EXPECT_EQ(taps[7], (int64_t{g.in_c} + 4) * static_cast<int64_t>(split.plane) + split.phase_w);
}

}  // namespace
}  // namespace cocopie
