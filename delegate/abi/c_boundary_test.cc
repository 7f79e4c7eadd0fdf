// No C++ exception leaves the delegate through an entry point the runtime
// calls: each becomes a TfLiteStatus error (or a null result), reported
// through the context.
#include "delegate/abi/c_boundary.h"

#include <cstdarg>
#include <cstdio>
#include <new>
#include <stdexcept>
#include <string>
#include <vector>

#include "delegate/cocopie_delegate.h"
#include "delegate/graph/partition_kernel.h"
#include "gtest/gtest.h"

namespace cocopie {
namespace {

// A context whose every accessor throws, as a runtime callback may when
// memory runs out; it records what the delegate reports.
struct ThrowingContext {
  TfLiteContext context{};
  std::string reported;

  ThrowingContext() {
    context.impl_ = this;
    context.GetExecutionPlan = [](TfLiteContext*, TfLiteIntArray**) -> TfLiteStatus {
      throw std::bad_alloc();
    };
    context.GetNodeAndRegistration = [](TfLiteContext*, int, TfLiteNode**,
                                        TfLiteRegistration**) -> TfLiteStatus {
      throw std::runtime_error("node table unavailable");
    };
    context.ReportError = Report;
  }

  static void Report(TfLiteContext* c, const char* format, ...) {
    char text[512];
    va_list args;
    va_start(args, format);
    std::vsnprintf(text, sizeof(text), format, args);
    va_end(args);
    static_cast<ThrowingContext*>(c->impl_)->reported += text;
  }
};

TEST(CBoundary, GuardsTurnExceptionsIntoErrors) {
  ThrowingContext t;
  EXPECT_EQ(GuardStatus(&t.context, "Step", [] { return kTfLiteOk; }), kTfLiteOk);
  EXPECT_EQ(GuardStatus(&t.context, "Step",
                        []() -> TfLiteStatus { throw std::length_error("too long"); }),
            kTfLiteError);
  EXPECT_NE(t.reported.find("Step failed: too long"), std::string::npos) << t.reported;
  EXPECT_EQ(GuardStatus(nullptr, "Step", []() -> TfLiteStatus { throw 7; }), kTfLiteError);
  EXPECT_EQ(GuardValue<int*>(nullptr, []() -> int* { throw std::bad_alloc(); }), nullptr);
}

TEST(CBoundary, DelegatePrepareReportsInsteadOfThrowing) {
  ThrowingContext t;
  TfLiteDelegate* delegate = CocopieDelegateCreate(nullptr);
  ASSERT_NE(delegate, nullptr);
  // No metadata accessor: the delegate reads the execution plan, which throws.
  EXPECT_EQ(delegate->Prepare(&t.context, delegate), kTfLiteError);
  EXPECT_NE(t.reported.find("Prepare failed: out of memory"), std::string::npos)
      << t.reported;
  CocopieDelegateDelete(delegate);
}

TEST(CBoundary, PartitionInitReturnsNullInsteadOfThrowing) {
  ThrowingContext t;
  TfLiteDelegate* delegate = CocopieDelegateCreate(nullptr);
  ASSERT_NE(delegate, nullptr);
  std::vector<int> nodes = {1, 0}, outputs = {0};  // size-prefixed int arrays
  TfLiteDelegateParams params{};
  params.delegate = delegate;
  params.nodes_to_replace = reinterpret_cast<TfLiteIntArray*>(nodes.data());
  params.output_tensors = reinterpret_cast<TfLiteIntArray*>(outputs.data());
  const TfLiteRegistration registration = PartitionKernelRegistration();
  void* kernel = registration.init(&t.context, reinterpret_cast<const char*>(&params), 0);
  EXPECT_EQ(kernel, nullptr);
  EXPECT_NE(t.reported.find("Init failed"), std::string::npos) << t.reported;
  TfLiteNode node{};
  node.user_data = kernel;
  EXPECT_EQ(registration.prepare(&t.context, &node), kTfLiteError);
  EXPECT_EQ(registration.invoke(&t.context, &node), kTfLiteError);
  registration.free(&t.context, kernel);
  CocopieDelegateDelete(delegate);
}

}  // namespace
}  // namespace cocopie
