// Entry points for hosts that load the library as an "external delegate"
// (LiteRT's and tf.lite's load_delegate(path, options), the benchmark tools):
// string options in, TfLiteDelegate out.
//
// Options:
//   num_threads  integer >= 0; 0 follows the interpreter (default 0)
//   kernel       "auto" (default: per layer, the SIMD kernel expected fastest)
//                | "block" | "rows" (force one SIMD kernel)
//                | "reference" (scalar, for checking)
//   verbose      "0" | "1": report claimed nodes on stderr
//   tuning       "cache" (default: kernel tunings from the LR or the cache
//                file, no timing) | "on" (also time and store untuned layers)
//                | "retune" (time every layer) | "off" (built-in choice)
//   tuning_cache path of the tuning cache file (default: none, in memory)
// Anything else is refused through report_error, and no delegate is made.
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>

#include "delegate/c_boundary.h"
#include "delegate/cocopie_delegate.h"

namespace {

bool ParseInt(const char* text, int min_value, int max_value, int* out) {
  if (text == nullptr || *text == '\0') return false;
  char* end = nullptr;
  errno = 0;
  const long value = std::strtol(text, &end, 10);
  if (errno != 0 || *end != '\0' || value < min_value || value > max_value) {
    return false;
  }
  *out = static_cast<int>(value);
  return true;
}

// Applies one key/value to `options`; returns an error message or "".
std::string ApplyOption(const char* key, const char* value,
                        CocopieDelegateOptions* options) {
  const std::string k = key != nullptr ? key : "";
  const std::string v = value != nullptr ? value : "";
  if (k == "num_threads") {
    if (!ParseInt(value, 0, 1024, &options->num_threads)) {
      return "option num_threads expects an integer in [0, 1024]. Received: "
             "num_threads=" + v;
    }
  } else if (k == "kernel") {
    if (v == "auto") {
      options->kernel = kCocopieKernelAuto;
    } else if (v == "reference") {
      options->kernel = kCocopieKernelReference;
    } else if (v == "rows") {
      options->kernel = kCocopieKernelRows;
    } else if (v == "block") {
      options->kernel = kCocopieKernelBlock;
    } else {
      return "option kernel expects 'auto', 'block', 'rows' or 'reference'. "
             "Received: kernel=" + v;
    }
  } else if (k == "tuning") {
    if (v == "cache") {
      options->tuning = kCocopieTuningCache;
    } else if (v == "off") {
      options->tuning = kCocopieTuningOff;
    } else if (v == "on") {
      options->tuning = kCocopieTuningOn;
    } else if (v == "retune") {
      options->tuning = kCocopieTuningRetune;
    } else {
      return "option tuning expects 'cache', 'on', 'retune' or 'off'. "
             "Received: tuning=" + v;
    }
  } else if (k == "tuning_cache") {
    if (v.empty()) {
      return "option tuning_cache expects a file path. Received: tuning_cache=";
    }
    // CocopieDelegateCreate copies it; `value` outlives that call.
    options->tuning_cache = value;
  } else if (k == "verbose") {
    if (!ParseInt(value, 0, 1, &options->verbose)) {
      return "option verbose expects 0 or 1. Received: verbose=" + v;
    }
  } else {
    return "unknown option '" + k +
           "'. Supported options: num_threads, kernel, verbose, tuning, "
           "tuning_cache.";
  }
  return "";
}

// The options applied, then the delegate; null on a bad option, which is
// reported (*reported set).
TfLiteDelegate* CreateDelegate(char** options_keys, char** options_values,
                               size_t num_options, void (*report_error)(const char*),
                               bool* reported) {
  CocopieDelegateOptions options = CocopieDelegateOptionsDefault();
  options.tuning = kCocopieTuningCache;
  options.tuning_cache = nullptr;
  for (size_t i = 0; i < num_options; ++i) {
    const std::string error =
        ApplyOption(options_keys[i], options_values[i], &options);
    if (!error.empty()) {
      const std::string message = "cocopie delegate: " + error;
      if (report_error != nullptr) report_error(message.c_str());
      *reported = true;
      return nullptr;
    }
  }
  return CocopieDelegateCreate(&options);
}

}  // namespace

extern "C" {

COCOPIE_EXPORT TfLiteDelegate* tflite_plugin_create_delegate(
    char** options_keys, char** options_values, size_t num_options,
    void (*report_error)(const char*)) {
  // No exception may unwind into the host (c_boundary.h).
  bool reported = false;
  TfLiteDelegate* delegate = cocopie::GuardValue<TfLiteDelegate*>(nullptr, [&] {
    return CreateDelegate(options_keys, options_values, num_options, report_error,
                          &reported);
  });
  if (delegate == nullptr && !reported && report_error != nullptr) {
    report_error("cocopie delegate: could not create the delegate");
  }
  return delegate;
}

COCOPIE_EXPORT void tflite_plugin_destroy_delegate(TfLiteDelegate* delegate) {
  CocopieDelegateDelete(delegate);  // catches what it may throw
}

}  // extern "C"
