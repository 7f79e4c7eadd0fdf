#include "delegate/graph/node_handlers.h"

#include <set>
#include <string>

#include <gtest/gtest.h>

namespace cocopie {
namespace {

TEST(NodeHandlers, ConvolutionsAreClaimedThroughTheLrAndSimpleOpsJoinThem) {
  for (int code : {kTfLiteBuiltinConv2d, kTfLiteBuiltinDepthwiseConv2d,
                   kTfLiteBuiltinFullyConnected}) {
    const NodeHandler* handler = FindNodeHandler(code);
    ASSERT_NE(handler, nullptr) << code;
    EXPECT_TRUE(handler->described_by_lr) << handler->op_name;
  }
  for (int code : {kTfLiteBuiltinAdd, kTfLiteBuiltinMaxPool2d, kTfLiteBuiltinPad}) {
    const NodeHandler* handler = FindNodeHandler(code);
    ASSERT_NE(handler, nullptr) << code;
    EXPECT_FALSE(handler->described_by_lr) << handler->op_name;
  }
}

TEST(NodeHandlers, EveryHandlerIsCompleteAndNamedOnce) {
  std::set<std::string> names;
  for (int code = 0; code < 256; ++code) {
    const NodeHandler* handler = FindNodeHandler(code);
    if (handler == nullptr) continue;
    EXPECT_EQ(handler->builtin_code, code);
    EXPECT_NE(handler->check, nullptr) << handler->op_name;
    EXPECT_NE(handler->create, nullptr) << handler->op_name;
    EXPECT_TRUE(names.insert(handler->op_name).second) << handler->op_name;
  }
  EXPECT_EQ(names.size(), 6u);
}

TEST(NodeHandlers, OperatorsTheDelegateNeverRunsHaveNoHandler) {
  for (int code : {static_cast<int>(kTfLiteBuiltinDensify),
                   static_cast<int>(kTfLiteBuiltinDelegate), -1, 100000}) {
    EXPECT_EQ(FindNodeHandler(code), nullptr) << code;
  }
}

}  // namespace
}  // namespace cocopie
