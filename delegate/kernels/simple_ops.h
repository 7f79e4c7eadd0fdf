// The cheap operators that sit between pattern convolutions in CNNs
// (residual ADD, MAX_POOL_2D, zero PAD). Running them inside the delegate's
// partition keeps a network in one partition: no hand-over to the runtime's
// other kernels (and their thread pool) between two convolutions.
// All float32 NHWC; `pool` may be null (single thread); `release_workers`
// lets the pool's threads sleep afterwards (see pattern_conv.h).
#ifndef COCOPIE_DELEGATE_KERNELS_SIMPLE_OPS_H_
#define COCOPIE_DELEGATE_KERNELS_SIMPLE_OPS_H_

#include <cstdint>

typedef struct pthreadpool* pthreadpool_t;

namespace cocopie {

// out[i] = clamp(a[i] + b[i], lo, hi) for `count` elements (no broadcasting).
void AddF32(const float* a, const float* b, float* out, int64_t count, float lo,
            float hi, pthreadpool_t pool, bool release_workers = false);

struct PoolGeometry {
  int batch = 1, in_h = 0, in_w = 0, channels = 0;
  int out_h = 0, out_w = 0;
  int filter_h = 1, filter_w = 1, stride_h = 1, stride_w = 1;
  int pad_top = 0, pad_left = 0;
  float act_min = -3.402823466e+38f, act_max = 3.402823466e+38f;
};

// Output size and padding from the input size, TFLite's rules (SAME pads so
// that out = ceil(in / stride), the extra cell at the bottom/right; padded
// cells never win the max). False when the output would be empty.
bool ComputePoolGeometry(bool same_padding, PoolGeometry* g);

// Max over each window of the real (unpadded) input cells, then the clamp.
void MaxPoolF32(const PoolGeometry& g, const float* input, float* output,
                pthreadpool_t pool, bool release_workers = false);

struct PadGeometry {
  int batch = 1, in_h = 0, in_w = 0, channels = 0;
  int top = 0, bottom = 0, left = 0, right = 0;  // zeros added (H and W only)
};

// Zero padding of the spatial dimensions.
void PadF32(const PadGeometry& g, const float* input, float* output,
            pthreadpool_t pool, bool release_workers = false);

}  // namespace cocopie

#endif  // COCOPIE_DELEGATE_KERNELS_SIMPLE_OPS_H_
