// The delegate is C++ behind a C interface: the runtime calls it through
// function pointers (TfLiteDelegate::Prepare, TfLiteRegistration's init /
// free / prepare / invoke) and exported C functions. An exception must not
// unwind into the runtime's C frames, which cannot handle it (the process
// would abort, or worse), so every entry point runs its body through one of
// these guards: an exception becomes an error the runtime understands.
#ifndef COCOPIE_DELEGATE_ABI_C_BOUNDARY_H_
#define COCOPIE_DELEGATE_ABI_C_BOUNDARY_H_

#include <exception>
#include <new>

#include "delegate/abi/tflite_abi.h"

namespace cocopie {

// Says through `context` (when it can report) that `where` failed.
inline void ReportFailure(TfLiteContext* context, const char* where, const char* why) {
  if (context != nullptr && context->ReportError != nullptr) {
    context->ReportError(context, "cocopie delegate: %s failed: %s", where, why);
  }
}

// Runs `body` (returning a TfLiteStatus); an exception is reported through
// `context` and returned as kTfLiteError.
template <typename Body>
TfLiteStatus GuardStatus(TfLiteContext* context, const char* where, Body&& body) noexcept {
  try {
    return body();
  } catch (const std::bad_alloc&) {
    ReportFailure(context, where, "out of memory");
  } catch (const std::exception& e) {
    ReportFailure(context, where, e.what());
  } catch (...) {
    ReportFailure(context, where, "unknown exception");
  }
  return kTfLiteError;
}

// Runs `body`; an exception gives `on_error` (e.g. nullptr) instead. For
// entry points without a context to report through.
template <typename T, typename Body>
T GuardValue(T on_error, Body&& body) noexcept {
  try {
    return body();
  } catch (...) {
    return on_error;
  }
}

}  // namespace cocopie

#endif  // COCOPIE_DELEGATE_ABI_C_BOUNDARY_H_
