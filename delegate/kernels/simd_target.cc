// The process-wide SIMD target choice (simd_target.h).
#include "delegate/kernels/simd_target.h"

#include <cstdint>
#include <cstdlib>
#include <mutex>
#include <string>
#include <vector>

#include "hwy/targets.h"

namespace cocopie {
namespace {

// Highway's supported targets, best first, without the emulated ones.
std::vector<int64_t> NativeTargets() {
  std::vector<int64_t> targets;
  for (int64_t target : hwy::SupportedAndGeneratedTargets()) {
    if (target != HWY_SCALAR && target != HWY_EMU128) targets.push_back(target);
  }
  return targets;
}

}  // namespace

std::string ChooseSimdTarget(const std::string& request, const std::vector<int64_t>& candidates,
                             int64_t* chosen) {
  *chosen = candidates.empty() ? 0 : candidates.front();
  if (request.empty() || request == "best") return "";
  std::string names;
  for (int64_t target : candidates) {
    if (request == hwy::TargetName(target)) {
      *chosen = target;
      return "";
    }
    names += std::string(names.empty() ? "" : ", ") + hwy::TargetName(target);
  }
  return std::string("expected ") + kSimdTargetEnv + " to be best or a SIMD target this CPU " +
         "supports (" + names + "). Received: " + request;
}

const std::string& SelectSimdTarget() {
  static std::once_flag once;
  static std::string error;
  std::call_once(once, [] {
    const char* request = std::getenv(kSimdTargetEnv);
    const std::vector<int64_t> native = NativeTargets();
    int64_t chosen = 0;
    error = ChooseSimdTarget(request != nullptr ? request : "", native, &chosen);
    // Only a narrower choice restricts Highway: the widest is its default.
    if (chosen != 0 && chosen != native.front()) hwy::DisableTargets(~chosen);
  });
  return error;
}

}  // namespace cocopie
