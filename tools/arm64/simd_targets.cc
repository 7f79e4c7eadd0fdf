// Prints the Highway targets this CPU supports among those compiled into the
// delegate (the set delegate/kernels/pattern_conv_test.cc loops over), then the one
// the delegate dispatches to. Run under qemu with each -cpu to see which
// ARM code paths the emulated tests exercised.
#include <cstdio>

#include "delegate/cocopie_delegate.h"
#include "hwy/targets.h"

int main() {
  std::printf("tested targets:");
  for (int64_t target : hwy::SupportedAndGeneratedTargets()) {
    std::printf(" %s", hwy::TargetName(target));
  }
  std::printf("\ndispatch target: %s\n", CocopieDelegateSimdTarget());
  return 0;
}
