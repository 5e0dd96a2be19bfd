// Tests of subscriptions (src/store/subscription.cc): replay then live delivery without gaps
// or duplicates, start positions, subject filtering, independence from publishers, cancel,
// store shutdown, and messages skipped because retention removed them first.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "io/fault_file_system.h"
#include "msgstore/store.h"
#include "store/store_test_support.h"
#include "support/temporary_directory.h"

namespace msgstore {
namespace {

using namespace std::chrono_literals;
using testing::Maintenance;
using testing::TemporaryDirectory;
using testing::message;
using testing::stream_config;

constexpr auto generous = 20s;  // only ever reached when something is broken

struct Received {
  std::string stream;
  std::uint32_t partition;
  Offset offset;
  std::string subject;
  std::string payload;
  TimestampMs timestamp_ms;
};

// Records every delivery; safe to inspect from the test thread.
class Collector {
 public:
  SubscriptionHandler handler() {
    return [this](const Delivery& delivery) {
      std::lock_guard lock(mutex_);
      received_.push_back({std::string(delivery.stream), delivery.partition, delivery.message.offset,
                           std::string(delivery.message.subject), std::string(delivery.message.payload),
                           delivery.message.timestamp_ms});
    };
  }
  std::vector<Received> received() const {
    std::lock_guard lock(mutex_);
    return received_;
  }
  // Offsets delivered per (stream, partition), in delivery order.
  std::map<std::pair<std::string, std::uint32_t>, std::vector<Offset>> offsets() const {
    std::map<std::pair<std::string, std::uint32_t>, std::vector<Offset>> result;
    for (const Received& r : received()) result[{r.stream, r.partition}].push_back(r.offset);
    return result;
  }

 private:
  mutable std::mutex mutex_;
  std::vector<Received> received_;
};

// Subscriptions are tested beside the background maintenance thread, as users run them.
std::unique_ptr<Store> open_store(const std::filesystem::path& directory, StoreOptions options = {}) {
  return testing::open_store(directory, std::move(options), Maintenance::as_configured);
}

std::vector<Offset> range(Offset from, Offset to) {
  std::vector<Offset> result;
  for (Offset o = from; o < to; ++o) result.push_back(o);
  return result;
}

std::unique_ptr<Subscription> subscribe(Store& store, SubscribeOptions options, SubscriptionHandler handler) {
  auto subscription = store.subscribe(std::move(options), std::move(handler));
  EXPECT_TRUE(subscription.is_ok()) << subscription.status().to_string();
  if (!subscription) return nullptr;
  return std::move(*subscription);
}

// Replay of 300 stored messages, then 600 live ones published concurrently: each partition's
// deliveries are exactly its offsets 0..end, in order, with the stored payloads.
void replay_then_live(Store& store, FsyncPolicy fsync) {
  constexpr std::uint32_t partitions = 3;
  ASSERT_TRUE(store.create_stream(stream_config("events", {"ev.>"}, partitions, fsync)).is_ok());
  for (int i = 0; i < 300; ++i) ASSERT_TRUE(store.publish(message("ev.history", "h" + std::to_string(i))).is_ok());

  Collector collector;
  auto subscription = subscribe(store, {.start = StartPosition::from_beginning()}, collector.handler());
  ASSERT_NE(subscription, nullptr);
  std::atomic<int> publish_failures{0};
  std::thread publisher([&] {
    for (int i = 0; i < 600; ++i) {
      if (i % 60 == 0) {
        std::vector<std::string> payloads;
        for (int j = 0; j < 10; ++j) payloads.push_back("b" + std::to_string(i) + "." + std::to_string(j));
        std::vector<OutgoingMessage> batch;
        for (const std::string& payload : payloads) batch.push_back(message("ev.batch", payload));
        if (!store.publish_batch(batch)) ++publish_failures;
      }
      if (!store.publish(message("ev.live", "l" + std::to_string(i)))) ++publish_failures;
    }
  });
  publisher.join();
  ASSERT_EQ(publish_failures.load(), 0);
  constexpr std::uint64_t total = 300 + 600 + 100;
  ASSERT_TRUE(subscription->wait_for_delivered(total, generous)) << subscription->delivered();
  std::this_thread::sleep_for(50ms);  // nothing more may arrive
  EXPECT_EQ(subscription->delivered(), total);
  EXPECT_EQ(subscription->skipped(), 0u);
  EXPECT_TRUE(subscription->status().is_ok());

  auto offsets = collector.offsets();
  std::uint64_t seen = 0;
  for (std::uint32_t p = 0; p < partitions; ++p) {
    auto page = store.read("events", p, 0, ReadOptions{.max_messages = 10000});
    ASSERT_TRUE(page.is_ok());
    EXPECT_EQ((offsets[{"events", p}]), range(0, page->high_watermark)) << "partition " << p;
    seen += page->high_watermark;
  }
  EXPECT_EQ(seen, total);
  // Payloads match the log.
  for (const Received& r : collector.received()) {
    auto page = store.read(r.stream, r.partition, r.offset, ReadOptions{.max_messages = 1});
    ASSERT_TRUE(page.is_ok());
    ASSERT_EQ(page->messages.size(), 1u);
    EXPECT_EQ(page->messages[0].payload, r.payload);
    EXPECT_EQ(page->messages[0].subject, r.subject);
  }
}

TEST(Subscription, ReplaysHistoryThenContinuesLiveWithFsyncAlways) {
  auto file_system = std::make_shared<FaultFileSystem>();
  auto store = open_store("/store", StoreOptions{.file_system = file_system});
  ASSERT_NE(store, nullptr);
  replay_then_live(*store, FsyncPolicy::always);
}

TEST(Subscription, ReplaysHistoryThenContinuesLiveOnDiskWithFsyncNever) {
  TemporaryDirectory temporary;
  auto store = open_store(temporary.path());
  ASSERT_NE(store, nullptr);
  replay_then_live(*store, FsyncPolicy::never);
}

TEST(Subscription, NewOnlySeesOnlyLaterMessages) {
  TemporaryDirectory temporary;
  auto store = open_store(temporary.path());
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->create_stream(stream_config("s", {"s.*"}, 2, FsyncPolicy::never)).is_ok());
  for (int i = 0; i < 50; ++i) ASSERT_TRUE(store->publish(message("s.old", "old")).is_ok());
  Collector collector;
  auto subscription = subscribe(*store, {.start = StartPosition::new_only()}, collector.handler());
  ASSERT_NE(subscription, nullptr);
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(store->publish(message("s.new", "new" + std::to_string(i))).is_ok());
  ASSERT_TRUE(subscription->wait_for_delivered(20, generous));
  std::this_thread::sleep_for(50ms);
  EXPECT_EQ(subscription->delivered(), 20u);
  auto received = collector.received();
  ASSERT_EQ(received.size(), 20u);
  for (const Received& r : received) {
    EXPECT_EQ(r.subject, "s.new");
    EXPECT_GE(r.offset, 25u);  // 50 old ones, round robin over 2 partitions
  }
  auto offsets = collector.offsets();
  EXPECT_EQ((offsets[{"s", 0}]), range(25, 35));
  EXPECT_EQ((offsets[{"s", 1}]), range(25, 35));
}

TEST(Subscription, FromOffsetAndFromTime) {
  TemporaryDirectory temporary;
  auto store = open_store(temporary.path());
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->create_stream(stream_config("one", {"one"}, 1, FsyncPolicy::never)).is_ok());
  ASSERT_TRUE(store->create_stream(stream_config("other", {"one"}, 1, FsyncPolicy::never)).is_ok());
  for (int i = 0; i < 100; ++i) {
    const std::string payload = "m" + std::to_string(i);
    OutgoingMessage m = message("one", payload);
    m.timestamp_ms = 10'000 + 10 * i;
    ASSERT_TRUE(store->publish(m).is_ok());
  }
  {
    Collector collector;
    auto subscription =
        subscribe(*store, {.stream = "one", .start = StartPosition::from_offset(40)}, collector.handler());
    ASSERT_NE(subscription, nullptr);
    ASSERT_TRUE(subscription->wait_for_delivered(60, generous));
    ASSERT_TRUE(store->publish(message("one", "m100")).is_ok());
    ASSERT_TRUE(subscription->wait_for_delivered(61, generous));
    std::this_thread::sleep_for(50ms);
    auto offsets = collector.offsets();
    EXPECT_EQ(offsets.size(), 1u);  // restricted to "one"
    EXPECT_EQ((offsets[{"one", 0}]), range(40, 101));
    auto received = collector.received();
    ASSERT_FALSE(received.empty());
    EXPECT_EQ(received.front().payload, "m40");
    EXPECT_EQ(received.back().payload, "m100");
  }
  {
    Collector collector;
    // 10'495 lies between offsets 49 (10'490) and 50 (10'500).
    auto subscription =
        subscribe(*store, {.stream = "one", .start = StartPosition::from_time(10'495)}, collector.handler());
    ASSERT_NE(subscription, nullptr);
    ASSERT_TRUE(subscription->wait_for_delivered(51, generous));
    std::this_thread::sleep_for(50ms);
    EXPECT_EQ(subscription->delivered(), 51u);
    EXPECT_EQ((collector.offsets()[{"one", 0}]), range(50, 101));
    EXPECT_EQ(collector.received().front().timestamp_ms, 10'500);
  }
  // Invalid requests fail at subscribe time.
  auto out_of_range = store->subscribe({.stream = "one", .start = StartPosition::from_offset(500)}, [](const Delivery&) {});
  EXPECT_EQ(out_of_range.status().code(), ErrorCode::offset_out_of_range);
  auto unknown = store->subscribe({.stream = "nope"}, [](const Delivery&) {});
  EXPECT_EQ(unknown.status().code(), ErrorCode::stream_not_found);
  auto bad_pattern = store->subscribe({.subject_pattern = "one..two"}, [](const Delivery&) {});
  EXPECT_EQ(bad_pattern.status().code(), ErrorCode::invalid_argument);
  auto no_handler = store->subscribe({}, SubscriptionHandler{});
  EXPECT_EQ(no_handler.status().code(), ErrorCode::invalid_argument);
}

TEST(Subscription, SubjectPatternFilters) {
  TemporaryDirectory temporary;
  auto store = open_store(temporary.path());
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->create_stream(stream_config("orders", {"order.>"}, 1, FsyncPolicy::never)).is_ok());
  Collector exact;
  Collector wildcard;
  Collector single;
  auto exact_subscription =
      subscribe(*store, {.subject_pattern = "order.created", .start = StartPosition::from_beginning()}, exact.handler());
  auto wildcard_subscription =
      subscribe(*store, {.subject_pattern = "order.>", .start = StartPosition::from_beginning()}, wildcard.handler());
  auto single_subscription =
      subscribe(*store, {.subject_pattern = "order.*", .start = StartPosition::from_beginning()}, single.handler());
  ASSERT_NE(exact_subscription, nullptr);
  ASSERT_NE(wildcard_subscription, nullptr);
  ASSERT_NE(single_subscription, nullptr);
  const std::vector<std::string> subjects = {"order.created", "order.updated", "order.eu.created", "order.created.v2"};
  for (int i = 0; i < 40; ++i) {
    ASSERT_TRUE(store->publish(message(subjects[i % 4], std::to_string(i))).is_ok());
  }
  ASSERT_TRUE(wildcard_subscription->wait_for_delivered(40, generous));
  ASSERT_TRUE(exact_subscription->wait_for_delivered(10, generous));
  ASSERT_TRUE(single_subscription->wait_for_delivered(20, generous));
  // The filtered subscriptions have read past the last message before they can be "done":
  // publish a marker each of them accepts and wait for it.
  ASSERT_TRUE(store->publish(message("order.created", "marker")).is_ok());
  ASSERT_TRUE(exact_subscription->wait_for_delivered(11, generous));
  ASSERT_TRUE(single_subscription->wait_for_delivered(21, generous));
  ASSERT_TRUE(wildcard_subscription->wait_for_delivered(41, generous));
  EXPECT_EQ(exact_subscription->delivered(), 11u);
  EXPECT_EQ(single_subscription->delivered(), 21u);
  EXPECT_EQ(wildcard_subscription->delivered(), 41u);
  for (const Received& r : exact.received()) EXPECT_EQ(r.subject, "order.created");
  std::vector<Offset> exact_offsets;
  for (const Received& r : exact.received()) exact_offsets.push_back(r.offset);
  std::vector<Offset> expected_exact;
  for (Offset o = 0; o < 40; o += 4) expected_exact.push_back(o);
  expected_exact.push_back(40);
  EXPECT_EQ(exact_offsets, expected_exact);
  for (const Received& r : single.received()) EXPECT_TRUE(r.subject == "order.created" || r.subject == "order.updated") << r.subject;
  EXPECT_EQ((wildcard.offsets()[{"orders", 0}]), range(0, 41));
}

TEST(Subscription, TwoSubscriptionsEachGetEverything) {
  TemporaryDirectory temporary;
  auto store = open_store(temporary.path());
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->create_stream(stream_config("a", {"x.>"}, 2, FsyncPolicy::never)).is_ok());
  ASSERT_TRUE(store->create_stream(stream_config("b", {"x.b"}, 1, FsyncPolicy::never)).is_ok());
  Collector first;
  Collector second;
  auto one = subscribe(*store, {.start = StartPosition::from_beginning()}, first.handler());
  auto two = subscribe(*store, {.start = StartPosition::from_beginning()}, second.handler());
  ASSERT_NE(one, nullptr);
  ASSERT_NE(two, nullptr);
  for (int i = 0; i < 200; ++i) ASSERT_TRUE(store->publish(message(i % 2 ? "x.a" : "x.b", std::to_string(i))).is_ok());
  // 200 into a (two partitions), 100 into b: 300 deliveries each.
  ASSERT_TRUE(one->wait_for_delivered(300, generous));
  ASSERT_TRUE(two->wait_for_delivered(300, generous));
  std::this_thread::sleep_for(50ms);
  EXPECT_EQ(one->delivered(), 300u);
  EXPECT_EQ(two->delivered(), 300u);
  auto expected = std::map<std::pair<std::string, std::uint32_t>, std::vector<Offset>>{
      {{"a", 0}, range(0, 100)}, {{"a", 1}, range(0, 100)}, {{"b", 0}, range(0, 100)}};
  EXPECT_EQ(first.offsets(), expected);
  EXPECT_EQ(second.offsets(), expected);
}

TEST(Subscription, StreamsCreatedLaterAreDeliveredFromTheirBeginning) {
  TemporaryDirectory temporary;
  auto store = open_store(temporary.path());
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->create_stream(stream_config("first", {"f"}, 1, FsyncPolicy::never)).is_ok());
  Collector collector;
  auto subscription = subscribe(*store, {.start = StartPosition::new_only()}, collector.handler());
  ASSERT_NE(subscription, nullptr);
  ASSERT_TRUE(store->create_stream(stream_config("late", {"l"}, 1, FsyncPolicy::never)).is_ok());
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(store->publish(message("l", "late")).is_ok());
  ASSERT_TRUE(subscription->wait_for_delivered(5, generous));
  EXPECT_EQ((collector.offsets()[{"late", 0}]), range(0, 5));
}

TEST(Subscription, AStreamDeletedAndRecreatedIsDeliveredFromItsNewBeginning) {
  TemporaryDirectory temporary;
  auto store = open_store(temporary.path());
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->create_stream(stream_config("a_hold", {"hold"}, 1, FsyncPolicy::never)).is_ok());
  ASSERT_TRUE(store->create_stream(stream_config("x", {"x"}, 1, FsyncPolicy::never)).is_ok());
  std::mutex gate_mutex;
  std::condition_variable gate_opened;
  bool gate_open = false;
  Collector collector;
  auto record = collector.handler();
  auto subscription = subscribe(*store, {.start = StartPosition::from_beginning()}, [&](const Delivery& delivery) {
    record(delivery);
    if (delivery.stream == "a_hold") {
      std::unique_lock lock(gate_mutex);
      gate_opened.wait_for(lock, generous, [&] { return gate_open; });
    }
  });
  ASSERT_NE(subscription, nullptr);
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(store->publish(message("x", "old" + std::to_string(i))).is_ok());
  ASSERT_TRUE(subscription->wait_for_delivered(5, generous));
  // Hold the delivery thread in the handler while "x" is replaced by a longer stream.
  ASSERT_TRUE(store->publish(message("hold", "h")).is_ok());
  const auto deadline = std::chrono::steady_clock::now() + generous;
  while (collector.received().size() < 6 && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(1ms);
  ASSERT_EQ(collector.received().size(), 6u);
  ASSERT_TRUE(store->delete_stream("x").is_ok());
  ASSERT_TRUE(store->create_stream(stream_config("x", {"x"}, 1, FsyncPolicy::never)).is_ok());
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(store->publish(message("x", "new" + std::to_string(i))).is_ok());
  {
    std::lock_guard lock(gate_mutex);
    gate_open = true;
  }
  gate_opened.notify_all();
  ASSERT_TRUE(subscription->wait_for_delivered(16, generous)) << subscription->delivered();
  std::vector<std::string> payloads;
  for (const Received& r : collector.received()) {
    if (r.stream == "x") payloads.push_back(r.payload);
  }
  std::vector<std::string> expected;
  for (int i = 0; i < 5; ++i) expected.push_back("old" + std::to_string(i));
  for (int i = 0; i < 10; ++i) expected.push_back("new" + std::to_string(i));
  EXPECT_EQ(payloads, expected);
}

TEST(Subscription, SlowHandlerDoesNotSlowPublishers) {
  auto file_system = std::make_shared<FaultFileSystem>();
  auto store = open_store("/store", StoreOptions{.file_system = file_system});
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->create_stream(stream_config("s", {"s"}, 1)).is_ok());
  // The handler is held at its first message until the publisher is done, then sleeps per message.
  std::mutex gate_mutex;
  std::condition_variable gate_opened;
  bool gate_open = false;
  std::atomic<int> handled{0};
  Collector collector;
  auto record = collector.handler();
  auto subscription = subscribe(*store, {.start = StartPosition::new_only(), .batch_messages_max = 16},
                                [&](const Delivery& delivery) {
                                  {
                                    std::unique_lock lock(gate_mutex);
                                    gate_opened.wait_for(lock, generous, [&] { return gate_open; });
                                  }
                                  std::this_thread::sleep_for(1ms);
                                  record(delivery);
                                  ++handled;
                                });
  ASSERT_NE(subscription, nullptr);
  constexpr int total = 300;
  std::atomic<bool> publisher_done{false};
  std::thread publisher([&] {
    for (int i = 0; i < total; ++i) {
      const std::string payload = "p" + std::to_string(i);
      if (!store->publish(message("s", payload))) ADD_FAILURE() << "publish " << i;
    }
    publisher_done = true;
  });
  publisher.join();
  // Publishing finished while the handler had not even finished its first message.
  EXPECT_TRUE(publisher_done.load());
  EXPECT_EQ(handled.load(), 0);
  EXPECT_LT(subscription->delivered(), static_cast<std::uint64_t>(total));
  {
    std::lock_guard lock(gate_mutex);
    gate_open = true;
  }
  gate_opened.notify_all();
  ASSERT_TRUE(subscription->wait_for_delivered(total, generous));
  EXPECT_EQ((collector.offsets()[{"s", 0}]), range(0, total));
}

TEST(Subscription, CancelStopsDelivery) {
  TemporaryDirectory temporary;
  auto store = open_store(temporary.path());
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->create_stream(stream_config("c", {"c"}, 1, FsyncPolicy::never)).is_ok());
  std::atomic<int> calls{0};
  auto subscription = subscribe(*store, {.start = StartPosition::from_beginning()}, [&](const Delivery&) { ++calls; });
  ASSERT_NE(subscription, nullptr);
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(store->publish(message("c", "x")).is_ok());
  ASSERT_TRUE(subscription->wait_for_delivered(10, generous));
  subscription->cancel();
  const int after_cancel = calls.load();
  EXPECT_EQ(after_cancel, 10);
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(store->publish(message("c", "y")).is_ok());
  std::this_thread::sleep_for(150ms);
  EXPECT_EQ(calls.load(), after_cancel);
  EXPECT_EQ(subscription->delivered(), 10u);
  subscription->cancel();  // idempotent
  EXPECT_FALSE(subscription->wait_for_delivered(11, 10ms));
  subscription.reset();
  // An idle subscription (waiting for data) cancels promptly too.
  auto idle = subscribe(*store, {.subject_pattern = "never.matches"}, [&](const Delivery&) { ++calls; });
  ASSERT_NE(idle, nullptr);
  const auto started = std::chrono::steady_clock::now();
  idle->cancel();
  EXPECT_LT(std::chrono::steady_clock::now() - started, 5s);
}

TEST(Subscription, DestroyingTheStoreStopsSubscriptionsWithClosed) {
  TemporaryDirectory temporary;
  auto store = open_store(temporary.path());
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->create_stream(stream_config("d", {"d"}, 2, FsyncPolicy::never)).is_ok());
  Collector collector;
  auto subscription = subscribe(*store, {.start = StartPosition::from_beginning()}, collector.handler());
  auto idle = subscribe(*store, {.subject_pattern = "nothing"}, [](const Delivery&) {});
  ASSERT_NE(subscription, nullptr);
  ASSERT_NE(idle, nullptr);
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(store->publish(message("d", "x")).is_ok());
  ASSERT_TRUE(subscription->wait_for_delivered(10, generous));
  store.reset();
  // wait_for_delivered returns (false) once the subscription stopped.
  EXPECT_FALSE(subscription->wait_for_delivered(11, generous));
  EXPECT_EQ(subscription->status().code(), ErrorCode::closed);
  EXPECT_FALSE(idle->wait_for_delivered(1, generous));
  EXPECT_EQ(idle->status().code(), ErrorCode::closed);
  EXPECT_EQ(subscription->delivered(), 10u);
  subscription->cancel();
  subscription.reset();
  idle.reset();  // destroyed without cancel
  // The directory is free again.
  EXPECT_NE(open_store(temporary.path()), nullptr);
}

TEST(Subscription, SkippedCountsMessagesRetentionRemovedFirst) {
  TemporaryDirectory temporary;
  auto store = open_store(temporary.path(), StoreOptions{.background_maintenance = false});
  ASSERT_NE(store, nullptr);
  StreamConfig config = stream_config("r", {"r"}, 1, FsyncPolicy::never);
  config.max_messages = 50;
  config.segment_bytes = limits::segment_bytes_min;
  ASSERT_TRUE(store->create_stream(config).is_ok());
  for (int i = 0; i < 500; ++i) ASSERT_TRUE(store->publish(message("r", "payload-" + std::to_string(i) + std::string(40, '.'))).is_ok());

  // The handler holds the first message until retention has run.
  std::mutex gate_mutex;
  std::condition_variable gate_opened;
  bool gate_open = false;
  Collector collector;
  auto record = collector.handler();
  auto subscription = subscribe(*store, {.start = StartPosition::from_beginning(), .batch_messages_max = 1},
                                [&](const Delivery& delivery) {
                                  record(delivery);
                                  std::unique_lock lock(gate_mutex);
                                  gate_opened.wait_for(lock, generous, [&] { return gate_open; });
                                });
  ASSERT_NE(subscription, nullptr);
  // Retention runs while the delivery thread is inside the handler for offset 0.
  const auto deadline = std::chrono::steady_clock::now() + generous;
  while (collector.received().empty() && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(1ms);
  ASSERT_EQ(collector.received().size(), 1u);
  ASSERT_TRUE(store->run_maintenance().is_ok());
  auto info = store->describe_stream("r");
  ASSERT_TRUE(info.is_ok());
  const Offset log_start = info->partitions[0].first_offset;
  ASSERT_GT(log_start, 1u);
  {
    std::lock_guard lock(gate_mutex);
    gate_open = true;
  }
  gate_opened.notify_all();
  const std::uint64_t expected_delivered = 1 + (500 - log_start);
  ASSERT_TRUE(subscription->wait_for_delivered(expected_delivered, generous));
  std::this_thread::sleep_for(50ms);
  EXPECT_EQ(subscription->delivered(), expected_delivered);
  EXPECT_EQ(subscription->skipped(), log_start - 1);
  std::vector<Offset> expected = {0};
  for (Offset o = log_start; o < 500; ++o) expected.push_back(o);
  EXPECT_EQ((collector.offsets()[{"r", 0}]), expected);
  EXPECT_TRUE(subscription->status().is_ok());
}

// Data listeners (Store::add_data_listener): called after publishes, unregistered by the handle.
TEST(DataListener, IsCalledAfterPublishAndNotAfterItsHandleIsGone) {
  TemporaryDirectory directory;
  auto store = Store::open(directory.path()).value();
  ASSERT_TRUE(store->create_stream(stream_config("orders", {"orders.>"})).is_ok());
  std::atomic<int> calls{0};
  auto handle = store->add_data_listener([&] { calls.fetch_add(1); });
  const std::uint64_t generation = store->data_generation();
  ASSERT_TRUE(store->publish(message("orders.created", "one")).is_ok());
  EXPECT_GE(calls.load(), 1);
  EXPECT_NE(store->data_generation(), generation);
  handle.reset();
  const int after_unregister = calls.load();
  ASSERT_TRUE(store->publish(message("orders.created", "two")).is_ok());
  EXPECT_EQ(calls.load(), after_unregister);
}

TEST(DataListener, WaitForDataReturnsWhenAnotherThreadPublishes) {
  TemporaryDirectory directory;
  auto store = Store::open(directory.path()).value();
  ASSERT_TRUE(store->create_stream(stream_config("orders", {"orders.>"})).is_ok());
  const std::uint64_t generation = store->data_generation();
  std::thread publisher([&] { ASSERT_TRUE(store->publish(message("orders.created", "one")).is_ok()); });
  const auto started = std::chrono::steady_clock::now();
  while (store->data_generation() == generation && std::chrono::steady_clock::now() - started < generous) {
    store->wait_for_data(generation, generous);
  }
  publisher.join();
  EXPECT_NE(store->data_generation(), generation);
}

TEST(DataListener, HandleMayOutliveTheStore) {
  TemporaryDirectory directory;
  auto store = Store::open(directory.path()).value();
  auto handle = store->add_data_listener([] {});
  store.reset();
  handle.reset();  // must not touch the destroyed store
}

}  // namespace
}  // namespace msgstore
