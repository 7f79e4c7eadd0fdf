// Layout conversions between pixel-major (NHWC) rows and channel planes, the
// copies the rows kernel (PatternConvSimd) makes on its way in and out.
//
// Both are a transpose of a `count` x `channels` matrix. Done one float at a
// time, every float is its own store to another plane's cache line; on a
// 16x16x64 map that took as long as a fifth of the convolution. These copy
// 4x4 blocks through vector registers (one store per four floats) on every
// SIMD target, dispatched at run time like the kernels.
#ifndef COCOPIE_DELEGATE_KERNELS_PLANAR_COPY_H_
#define COCOPIE_DELEGATE_KERNELS_PLANAR_COPY_H_

#include <cstddef>

namespace cocopie {

// planes[c * plane_stride + i] = pixels[i * pixel_stride + c]
// for i < count, c < channels.
void CopyPixelsToPlanes(const float* pixels, size_t pixel_stride, size_t count,
                        size_t channels, float* planes, size_t plane_stride);

// pixels[i * pixel_stride + c] = planes[c * plane_stride + i]
// for i < count, c < channels.
void CopyPlanesToPixels(const float* planes, size_t plane_stride, size_t count,
                        size_t channels, float* pixels, size_t pixel_stride);

}  // namespace cocopie

#endif  // COCOPIE_DELEGATE_KERNELS_PLANAR_COPY_H_
