#include "delegate/kernels/planar_copy.h"

#include <cstddef>
#include <string>
#include <vector>

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

float Value(size_t i, size_t c) { return static_cast<float>(i * 1000 + c) + 0.25f; }

std::string Describe(const Shape& s, int64_t target) {
  return std::string(hwy::TargetName(target)) + " count " + std::to_string(s.count) +
         " channels " + std::to_string(s.channels) + " pixel stride " +
         std::to_string(s.pixel_stride) + " plane stride " + std::to_string(s.plane_stride);
}

TEST(PlanarCopy, PixelsToPlanesOnEveryTarget) {
  for (int64_t target : hwy::SupportedAndGeneratedTargets()) {
    hwy::SetSupportedTargetsForTest(target);
    for (const Shape& s : Shapes()) {
      std::vector<float> pixels(s.count * s.pixel_stride + 1, 0.0f);
      for (size_t i = 0; i < s.count; ++i) {
        for (size_t c = 0; c < s.channels; ++c) pixels[i * s.pixel_stride + c] = Value(i, c);
      }
      std::vector<float> planes(s.channels * s.plane_stride + 1, kUntouched);
      CopyPixelsToPlanes(pixels.data(), s.pixel_stride, s.count, s.channels, planes.data(),
                         s.plane_stride);
      size_t mismatches = 0;
      for (size_t c = 0; c < s.channels; ++c) {
        for (size_t j = 0; j < s.plane_stride; ++j) {
          const float expected = j < s.count ? Value(j, c) : kUntouched;
          mismatches += planes[c * s.plane_stride + j] != expected;
        }
      }
      mismatches += planes.back() != kUntouched;
      EXPECT_EQ(mismatches, 0u) << Describe(s, target);
    }
  }
  hwy::SetSupportedTargetsForTest(0);
}

TEST(PlanarCopy, PlanesToPixelsOnEveryTarget) {
  for (int64_t target : hwy::SupportedAndGeneratedTargets()) {
    hwy::SetSupportedTargetsForTest(target);
    for (const Shape& s : Shapes()) {
      std::vector<float> planes(s.channels * s.plane_stride + 1, 0.0f);
      for (size_t c = 0; c < s.channels; ++c) {
        for (size_t i = 0; i < s.count; ++i) planes[c * s.plane_stride + i] = Value(i, c);
      }
      std::vector<float> pixels(s.count * s.pixel_stride + 1, kUntouched);
      CopyPlanesToPixels(planes.data(), s.plane_stride, s.count, s.channels, pixels.data(),
                         s.pixel_stride);
      size_t mismatches = 0;
      for (size_t i = 0; i < s.count; ++i) {
        for (size_t j = 0; j < s.pixel_stride; ++j) {
          const float expected = j < s.channels ? Value(i, j) : kUntouched;
          mismatches += pixels[i * s.pixel_stride + j] != expected;
        }
      }
      mismatches += pixels.back() != kUntouched;
      EXPECT_EQ(mismatches, 0u) << Describe(s, target);
    }
  }
  hwy::SetSupportedTargetsForTest(0);
}

}  // namespace
}  // namespace cocopie
