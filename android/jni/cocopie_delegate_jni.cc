// JNI glue behind org.cocopie.delegate.CocopieDelegate: the Java object holds
// the TfLiteDelegate* from CocopieDelegateCreate as a long, which is what the
// TFLite Java interpreter expects from Delegate.getNativeHandle().
#include <jni.h>

#include <cstdint>
#include <string>

#include "delegate/cocopie_delegate.h"

namespace {

void ThrowIllegalArgument(JNIEnv* env, const std::string& message) {
  jclass type = env->FindClass("java/lang/IllegalArgumentException");
  if (type != nullptr) env->ThrowNew(type, message.c_str());
}

TfLiteDelegate* FromHandle(jlong handle) {
  return reinterpret_cast<TfLiteDelegate*>(static_cast<intptr_t>(handle));
}

// Kernel codes are small non-negative integers in the C API; anything far
// outside is refused before it is converted to the enum type.
constexpr jint kLargestKernelCode = 255;

}  // namespace

extern "C" {

JNIEXPORT jlong JNICALL Java_org_cocopie_delegate_CocopieDelegate_nativeCreate(
    JNIEnv* env, jclass, jint num_threads, jint kernel, jint verbose) {
  const std::string received = "Received: num_threads=" +
                               std::to_string(num_threads) + ", kernel=" +
                               std::to_string(kernel) + ", verbose=" +
                               std::to_string(verbose);
  if (num_threads < 0 || kernel < 0 || kernel > kLargestKernelCode ||
      (verbose != 0 && verbose != 1)) {
    ThrowIllegalArgument(env, "Expected num_threads >= 0, a kernel code of "
                              "the C API and verbose 0 or 1. " + received);
    return 0;
  }
  CocopieDelegateOptions options = CocopieDelegateOptionsDefault();
  options.num_threads = num_threads;
  options.kernel = static_cast<CocopieKernelChoice>(kernel);
  options.verbose = verbose;
  TfLiteDelegate* delegate = CocopieDelegateCreate(&options);
  if (delegate == nullptr) {
    ThrowIllegalArgument(env, "The cocopie delegate library refused these "
                              "options (unknown kernel?). " + received);
    return 0;
  }
  return static_cast<jlong>(reinterpret_cast<intptr_t>(delegate));
}

JNIEXPORT void JNICALL Java_org_cocopie_delegate_CocopieDelegate_nativeDelete(
    JNIEnv*, jclass, jlong handle) {
  CocopieDelegateDelete(FromHandle(handle));
}

JNIEXPORT jint JNICALL
Java_org_cocopie_delegate_CocopieDelegate_nativeClaimedNodes(JNIEnv*, jclass,
                                                            jlong handle) {
  return CocopieDelegateClaimedNodes(FromHandle(handle));
}

JNIEXPORT jstring JNICALL
Java_org_cocopie_delegate_CocopieDelegate_nativeSimdTarget(JNIEnv* env, jclass) {
  return env->NewStringUTF(CocopieDelegateSimdTarget());
}

}  // extern "C"
