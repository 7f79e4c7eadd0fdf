// Helpers the kernel tests share; included by *_test.cc files alone (it uses
// the test framework), never by the library's sources.
#ifndef COCOPIE_DELEGATE_KERNELS_CONV_TESTING_H_
#define COCOPIE_DELEGATE_KERNELS_CONV_TESTING_H_

#include <cstdint>
#include <string>
#include <vector>

#include "delegate/kernels/pattern_conv.h"
#include "gtest/gtest.h"
#include "hwy/targets.h"

namespace cocopie {

// `base` with a kernel x kernel filter and the output size `padding` gives,
// into *g. False when the input cannot take that kernel: a test failure
// unless `allow_empty` (random sweeps skip such inputs).
inline bool SizeConvGeometryOrSkip(const ConvGeometry& base, int kernel, Padding padding,
                                   bool allow_empty, ConvGeometry* g) {
  *g = base;
  g->kernel_h = g->kernel_w = kernel;
  std::string error;
  if (ComputeConvGeometry(padding, g, &error)) return true;
  EXPECT_TRUE(allow_empty) << error;
  return false;
}

// Every SIMD target this CPU supports, for tests that run each in turn: the
// process-wide restriction a delegate may have applied (simd_target.h) is
// lifted first, or a test that runs after one would cover that target alone.
inline std::vector<int64_t> EverySimdTarget() {
  hwy::DisableTargets(0);
  return hwy::SupportedAndGeneratedTargets();
}

}  // namespace cocopie

#endif  // COCOPIE_DELEGATE_KERNELS_CONV_TESTING_H_
