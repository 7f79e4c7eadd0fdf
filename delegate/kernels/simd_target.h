// The SIMD target every kernel of the delegate dispatches to, fixed once per
// process before the first delegate packs any weights.
//
// Highway dispatches to the widest target the CPU supports. The environment
// variable COCOPIE_SIMD_TARGET names another one, as Highway prints it (AVX3,
// AVX2, SSE4, NEON, SVE, ...; "best", the default, keeps the widest): to
// compare targets end to end on one machine, as out/pattern_conv_bench
// --target does for single layers (on an AMD Zen 4, which splits 512-bit
// operations in two, AVX2 and AVX3 ran the CIFAR-10 layers within about 10 %
// of each other once both packed the same channel block). The choice is
// process-wide because Highway's dispatch is: every delegate of the process,
// the packing of weights (PreferredChannelBlock) and the kernel tuning
// records (keyed by PatternConvSimdTarget) all follow it.
#ifndef COCOPIE_DELEGATE_KERNELS_SIMD_TARGET_H_
#define COCOPIE_DELEGATE_KERNELS_SIMD_TARGET_H_

#include <cstdint>
#include <string>
#include <vector>

namespace cocopie {

inline constexpr char kSimdTargetEnv[] = "COCOPIE_SIMD_TARGET";

// Reads COCOPIE_SIMD_TARGET on the first call (thread-safe) and applies it
// to Highway's dispatch; later calls return the same result. Empty when the
// kernels run on the target asked for; otherwise why it was refused (the
// widest target is then kept).
const std::string& SelectSimdTarget();

// The choice itself: `request` ("best", "" or a target name) among
// `candidates` (best first, as Highway orders its supported targets). Sets
// *chosen; returns "" or the reason the request was refused (*chosen is then
// the first candidate).
std::string ChooseSimdTarget(const std::string& request, const std::vector<int64_t>& candidates,
                             int64_t* chosen);

}  // namespace cocopie

#endif  // COCOPIE_DELEGATE_KERNELS_SIMD_TARGET_H_
