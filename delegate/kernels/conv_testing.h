// Helpers the kernel tests share; included by *_test.cc files alone (it uses
// the test framework), never by the library's sources.
#ifndef COCOPIE_DELEGATE_KERNELS_CONV_TESTING_H_
#define COCOPIE_DELEGATE_KERNELS_CONV_TESTING_H_

#include <string>

#include "delegate/kernels/pattern_conv.h"
#include "gtest/gtest.h"

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

}  // namespace cocopie

#endif  // COCOPIE_DELEGATE_KERNELS_CONV_TESTING_H_
