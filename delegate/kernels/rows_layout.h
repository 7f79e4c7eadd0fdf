// Where the rows kernel (PatternConvSimd, pattern_conv_simd.cc) puts its
// data, decided once per geometry and packing: the padded, phase-split input
// copy, the channel-major output, the register tile shape, each kept tap's
// input offset and the input-channel chunks. No SIMD here: only the lane count
// of the target the kernel dispatched to enters.
#ifndef COCOPIE_DELEGATE_KERNELS_ROWS_LAYOUT_H_
#define COCOPIE_DELEGATE_KERNELS_ROWS_LAYOUT_H_

#include <cstddef>
#include <cstdint>
#include <vector>

#include "delegate/kernels/pattern_conv.h"

namespace cocopie {

// Largest tile: up to 4 vectors per row, and rows per tile for 1..4 vectors.
// At most 12 accumulators (plus the broadcast weight and a load) fit the 16
// vector registers of AVX2/SSE4; the 32-register targets run the same shapes.
// The kernel has one micro-kernel per shape within these bounds.
inline constexpr int kMaxTileVectors = 4;
inline constexpr int kMaxTileRows[kMaxTileVectors] = {8, 6, 4, 3};

struct TileShape {
  int rows = 1, vectors = 1;
};

// Floats between consecutive channel planes of `floats` each: whole cache
// lines, an odd number of them. Planes of a power-of-two-ish size (30 rows of
// 34 floats is 4080 bytes) would otherwise put the same row of every channel
// in one cache set, and a filter's input channels would evict each other.
size_t PlaneStride(size_t floats);

// Where the padded copy, the channel-major output and the tiles lie.
//
// Row-tiled (the default): an output row is out_w pixels rounded up to whole
// tiles of V vectors; a tile is R such rows. Small maps waste most lanes that
// way (an 8x8 output fills half of each 16-lane vector, a 4x4 one a quarter),
// so at stride 1 a flattened layout is also costed: the padded image rows of
// `pitch` columns are laid end to end, output pixel (oh, ow) is flat position
// oh * pitch + ow, and tap (r, c) of flat position f reads padded position
// f + r * dilation_h * pitch + c * dilation_w, so the kernel runs the whole
// map as one long row cut into tiles of R x V consecutive vectors. The
// (kernel_w - 1) * dilation_w columns between image rows are computed and
// dropped; an 8x8 map takes 5 vectors instead of 8.
struct RowsLayout {
  TileShape tile;
  bool flat = false;
  int plane_h = 0;          // rows of the padded copy
  int phase_w = 0;          // floats per row of the padded copy (per phase)
  size_t plane = 0;         // floats per channel plane of the padded copy
  int64_t row_step = 0;     // input floats between a tile's consecutive rows
  size_t out_stride = 0;    // out_chw floats between a tile's consecutive rows
  size_t out_pitch = 0;     // out_chw floats between output image rows
  size_t out_plane = 0;     // out_chw floats per output channel
  size_t row_tiles = 0;
  int64_t tile_input = 0;   // floats of one channel's input that one tile reads
};

// The layout of `g` for vectors of `lanes` floats.
RowsLayout PlanRowsLayout(const ConvGeometry& g, size_t lanes);

// Offset of every kept tap in the padded copy, relative to the input of
// output row 0, column 0.
void FillTapOffsets(const ConvGeometry& g, const PackedPatternWeights& w, size_t plane,
                    int phase_w, std::vector<int64_t>* taps);

// Splits the input channels into chunks whose input for one tile fits
// scratch->chunk_bytes and returns their number. scratch->chunk_kernels gets,
// per filter, the index of its first kernel in each chunk and one past its
// last: filter co's chunk k is kernels [row[k], row[k + 1]) of row = co *
// (chunks + 1). Weights whose filters do not list their kernels in
// input-channel order run in one chunk.
int PlanChunks(const ConvGeometry& g, const PackedPatternWeights& w, const RowsLayout& layout,
               PatternConvScratch* scratch);

}  // namespace cocopie

#endif  // COCOPIE_DELEGATE_KERNELS_ROWS_LAYOUT_H_
