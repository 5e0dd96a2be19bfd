// Runs examples/order_events (ORDER_EVENTS_BINARY) twice on one directory: both runs must exit
// 0, the handlers must run for the created order only, and the replay after reopening must
// show the orders of every run so far.
#include <algorithm>

#include <gtest/gtest.h>

#include "e2e/process.h"
#include "support/temporary_directory.h"

namespace msgstore::e2e {
namespace {

bool has_line(const ProcessResult& result, const std::string& line) {
  const auto lines = result.out_lines();
  return std::find(lines.begin(), lines.end(), line) != lines.end();
}

std::size_t count_lines_starting(const ProcessResult& result, const std::string& prefix) {
  const auto lines = result.out_lines();
  return static_cast<std::size_t>(
      std::count_if(lines.begin(), lines.end(), [&](const std::string& line) { return line.rfind(prefix, 0) == 0; }));
}

TEST(ExampleTest, OrderEventsRunsTwiceOnTheSameDirectory) {
  const std::string binary = binary_from_environment("ORDER_EVENTS_BINARY");
  testing::TemporaryDirectory directory("msgstore-example-test");
  const std::string data = (directory.path() / "example").string();

  ProcessResult first = run_process({binary, data});
  ASSERT_EQ(first.exit_code, 0) << first.out << first.err;
  EXPECT_TRUE(has_line(first, "stream 'orders' created (captures order.>)")) << first.out;
  EXPECT_TRUE(has_line(first, "published order.created \"Order #1234\" -> orders/0@0")) << first.out;
  EXPECT_TRUE(has_line(first, "published order.shipped \"Order #5678\" -> orders/0@1")) << first.out;
  EXPECT_TRUE(has_line(first, "[log] order.created: Order #1234 (orders/0@0)")) << first.out;
  EXPECT_TRUE(has_line(first, "[ALERT] ORDER.CREATED: ORDER #1234")) << first.out;
  EXPECT_EQ(count_lines_starting(first, "[log] "), 1u) << first.out;
  EXPECT_EQ(count_lines_starting(first, "[ALERT] "), 1u) << first.out;
  EXPECT_TRUE(has_line(first, "both handlers ran for order.created; neither ran for order.shipped")) << first.out;
  EXPECT_TRUE(has_line(first, "reopened store: stream 'orders' holds 2 messages")) << first.out;
  EXPECT_TRUE(has_line(first, "[replay] orders/0@0 order.created: Order #1234")) << first.out;
  EXPECT_TRUE(has_line(first, "[replay] orders/0@1 order.shipped: Order #5678")) << first.out;
  EXPECT_EQ(count_lines_starting(first, "[replay] "), 2u) << first.out;
  EXPECT_TRUE(has_line(first, "OK: all expectations met")) << first.out;

  ProcessResult second = run_process({binary, data});
  ASSERT_EQ(second.exit_code, 0) << second.out << second.err;
  EXPECT_TRUE(has_line(second, "stream 'orders' already exists (2 messages)")) << second.out;
  EXPECT_TRUE(has_line(second, "[log] order.created: Order #1234 (orders/0@2)")) << second.out;
  EXPECT_EQ(count_lines_starting(second, "[ALERT] "), 1u) << second.out;
  EXPECT_TRUE(has_line(second, "reopened store: stream 'orders' holds 4 messages")) << second.out;
  EXPECT_EQ(count_lines_starting(second, "[replay] "), 4u) << second.out;
  EXPECT_TRUE(has_line(second, "[replay] orders/0@0 order.created: Order #1234")) << second.out;
  EXPECT_TRUE(has_line(second, "[replay] orders/0@3 order.shipped: Order #5678")) << second.out;
  EXPECT_TRUE(has_line(second, "OK: all expectations met")) << second.out;

  // A usage error is reported, not ignored.
  ProcessResult usage = run_process({binary, data, "extra"});
  EXPECT_EQ(usage.exit_code, 2);
}

}  // namespace
}  // namespace msgstore::e2e
