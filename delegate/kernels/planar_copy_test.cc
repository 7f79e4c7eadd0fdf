#include "delegate/kernels/planar_copy.h"

#include <cstddef>
#include <string>
#include <vector>

#include "delegate/kernels/conv_testing.h"
#include "gtest/gtest.h"
#include "hwy/targets.h"

namespace cocopie {
namespace {

constexpr float kUntouched = -7.0f;

struct Shape {
  size_t count, channels, pixel_stride, plane_stride;
};

// Counts and channel counts around the 4x4 block (none, part of one, whole
// blocks and a remainder), with strides wider than the data so that a copy
// writing past its region is seen.
std::vector<Shape> Shapes() {
  std::vector<Shape> shapes;
  for (size_t count : {0, 1, 3, 4, 5, 8, 13, 34}) {
    for (size_t channels : {0, 1, 2, 4, 7, 16, 65}) {
      shapes.push_back({count, channels, channels + 3, count + 5});
      shapes.push_back({count, channels, 2 * channels + 1, count + 16});
    }
  }
  return shapes;
}

float Value(size_t row, size_t column) { return static_cast<float>(row * 1000 + column) + 0.25f; }

using CopyFn = void (*)(const float*, size_t, size_t, size_t, float*, size_t);

// Both copies transpose: source rows of `columns` floats (`src_stride` apart)
// become destination rows of `rows` floats (`dst_stride` apart); `count` and
// `channels` are the copy's own arguments. Counts the destination floats that
// differ from the transpose, or that were written outside it.
size_t TransposeMismatches(CopyFn copy, size_t rows, size_t columns, size_t src_stride,
                           size_t dst_stride, size_t count, size_t channels) {
  std::vector<float> src(rows * src_stride + 1, 0.0f);
  for (size_t r = 0; r < rows; ++r) {
    for (size_t c = 0; c < columns; ++c) src[r * src_stride + c] = Value(r, c);
  }
  std::vector<float> dst(columns * dst_stride + 1, kUntouched);
  copy(src.data(), src_stride, count, channels, dst.data(), dst_stride);
  size_t mismatches = dst.back() != kUntouched;
  for (size_t c = 0; c < columns; ++c) {
    for (size_t r = 0; r < dst_stride; ++r) {
      mismatches += dst[c * dst_stride + r] != (r < rows ? Value(r, c) : kUntouched);
    }
  }
  return mismatches;
}

std::string Describe(const Shape& s, int64_t target) {
  return std::string(hwy::TargetName(target)) + " count " + std::to_string(s.count) +
         " channels " + std::to_string(s.channels) + " pixel stride " +
         std::to_string(s.pixel_stride) + " plane stride " + std::to_string(s.plane_stride);
}

TEST(PlanarCopy, PixelsToPlanesOnEveryTarget) {
  for (int64_t target : EverySimdTarget()) {
    hwy::SetSupportedTargetsForTest(target);
    for (const Shape& s : Shapes()) {
      // Source rows are pixels, destination rows are planes.
      EXPECT_EQ(TransposeMismatches(&CopyPixelsToPlanes, s.count, s.channels, s.pixel_stride,
                                    s.plane_stride, s.count, s.channels),
                0u)
          << Describe(s, target);
    }
  }
  hwy::SetSupportedTargetsForTest(0);
}

TEST(PlanarCopy, PlanesToPixelsOnEveryTarget) {
  for (int64_t target : EverySimdTarget()) {
    hwy::SetSupportedTargetsForTest(target);
    for (const Shape& s : Shapes()) {
      // Source rows are planes, destination rows are pixels.
      EXPECT_EQ(TransposeMismatches(&CopyPlanesToPixels, s.channels, s.count, s.plane_stride,
                                    s.pixel_stride, s.count, s.channels),
                0u)
          << Describe(s, target);
    }
  }
  hwy::SetSupportedTargetsForTest(0);
}

}  // namespace
}  // namespace cocopie
