// NHWC rows <-> channel planes (planar_copy.h), 4x4 blocks at a time through
// 128-bit vectors, which every SIMD target has: four pixels' runs of four
// channels are loaded, transposed in registers, and stored as four planes'
// runs of four pixels. Rows and channels beyond the last whole block are
// copied one float at a time.

// Sizeless SVE vectors gain nothing on a fixed 4x4 block; SVE CPUs run NEON.
#ifndef HWY_DISABLED_TARGETS
#define HWY_DISABLED_TARGETS (HWY_SVE | HWY_SVE2 | HWY_SVE_256 | HWY_SVE2_128)
#endif

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "delegate/kernels/planar_copy.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"

#include "delegate/kernels/planar_copy.h"

#ifndef COCOPIE_PLANAR_COPY_SHARED_
#define COCOPIE_PLANAR_COPY_SHARED_
namespace cocopie {
namespace {

constexpr size_t kBlock = 4;

// dst[c * dst_stride + r] = src[r * src_stride + c] for the (r, c) of the
// rows x columns matrix outside its whole 4x4 blocks.
void TransposeRemainder(const float* src, size_t src_stride, size_t rows, size_t columns,
                        float* dst, size_t dst_stride) {
  const size_t whole_rows = rows / kBlock * kBlock;
  const size_t whole_columns = columns / kBlock * kBlock;
  for (size_t r = 0; r < rows; ++r) {
    for (size_t c = r < whole_rows ? whole_columns : 0; c < columns; ++c) {
      dst[c * dst_stride + r] = src[r * src_stride + c];
    }
  }
}

}  // namespace
}  // namespace cocopie
#endif

HWY_BEFORE_NAMESPACE();
namespace cocopie {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// dst[c * dst_stride + r] = src[r * src_stride + c] over the whole 4x4
// blocks of the rows x columns matrix: each block's four source runs become
// four destination runs.
void TransposeBlocks(const float* src, size_t src_stride, size_t rows, size_t columns,
                     float* dst, size_t dst_stride) {
#if HWY_TARGET == HWY_SCALAR
  for (size_t r = 0; r < rows / kBlock * kBlock; ++r) {
    for (size_t c = 0; c < columns / kBlock * kBlock; ++c) {
      dst[c * dst_stride + r] = src[r * src_stride + c];
    }
  }
#else
  const hn::Full128<float> d;
  for (size_t r = 0; r + kBlock <= rows; r += kBlock) {
    const float* in = src + r * src_stride;
    float* out = dst + r;
    for (size_t c = 0; c + kBlock <= columns; c += kBlock) {
      const auto r0 = hn::LoadU(d, in + c);
      const auto r1 = hn::LoadU(d, in + src_stride + c);
      const auto r2 = hn::LoadU(d, in + 2 * src_stride + c);
      const auto r3 = hn::LoadU(d, in + 3 * src_stride + c);
      // Pairs of rows interleaved: (r0[0] r1[0] r0[1] r1[1]) and so on; the
      // 64-bit halves of two such pairs are then the columns.
      const auto low01 = hn::InterleaveLower(d, r0, r1);
      const auto low23 = hn::InterleaveLower(d, r2, r3);
      const auto high01 = hn::InterleaveUpper(d, r0, r1);
      const auto high23 = hn::InterleaveUpper(d, r2, r3);
      float* column = out + c * dst_stride;
      hn::StoreU(hn::ConcatLowerLower(d, low23, low01), d, column);
      hn::StoreU(hn::ConcatUpperUpper(d, low23, low01), d, column + dst_stride);
      hn::StoreU(hn::ConcatLowerLower(d, high23, high01), d, column + 2 * dst_stride);
      hn::StoreU(hn::ConcatUpperUpper(d, high23, high01), d, column + 3 * dst_stride);
    }
  }
#endif
}

}  // namespace HWY_NAMESPACE
}  // namespace cocopie
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace cocopie {

HWY_EXPORT(TransposeBlocks);

namespace {

void Transpose(const float* src, size_t src_stride, size_t rows, size_t columns, float* dst,
               size_t dst_stride) {
  HWY_DYNAMIC_DISPATCH(TransposeBlocks)(src, src_stride, rows, columns, dst, dst_stride);
  TransposeRemainder(src, src_stride, rows, columns, dst, dst_stride);
}

}  // namespace

void CopyPixelsToPlanes(const float* pixels, size_t pixel_stride, size_t count,
                        size_t channels, float* planes, size_t plane_stride) {
  Transpose(pixels, pixel_stride, count, channels, planes, plane_stride);
}

void CopyPlanesToPixels(const float* planes, size_t plane_stride, size_t count,
                        size_t channels, float* pixels, size_t pixel_stride) {
  Transpose(planes, plane_stride, channels, count, pixels, pixel_stride);
}

}  // namespace cocopie
#endif  // HWY_ONCE
