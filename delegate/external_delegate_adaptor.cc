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
#include <initializer_list>
#include <string>
#include <utility>

#include "delegate/abi/c_boundary.h"
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

// Sets *out to the value `v` names among `choices`; otherwise returns the
// error message, which lists them in the order given.
template <typename Enum>
std::string ApplyChoice(const std::string& key, const std::string& v,
                        std::initializer_list<std::pair<const char*, Enum>> choices,
                        Enum* out) {
  std::string names;
  size_t i = 0;
  for (const auto& [name, value] : choices) {
    if (v == name) {
      *out = value;
      return "";
    }
    names += (i == 0 ? "'" : i + 1 == choices.size() ? " or '" : ", '");
    names += name;
    names += "'";
    ++i;
  }
  return "option " + key + " expects " + names + ". Received: " + key + "=" + v;
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
    return ApplyChoice(k, v,
                       {{"auto", kCocopieKernelAuto}, {"block", kCocopieKernelBlock},
                        {"rows", kCocopieKernelRows}, {"reference", kCocopieKernelReference}},
                       &options->kernel);
  } else if (k == "tuning") {
    return ApplyChoice(k, v,
                       {{"cache", kCocopieTuningCache}, {"on", kCocopieTuningOn},
                        {"retune", kCocopieTuningRetune}, {"off", kCocopieTuningOff}},
                       &options->tuning);
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
  const std::string target_error = CocopieDelegateSimdTargetError();
  if (!target_error.empty()) {
    const std::string message = "cocopie delegate: " + target_error;
    if (report_error != nullptr) report_error(message.c_str());
    *reported = true;
    return nullptr;
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
