// Broker: blocking calls on the worker pool, long polls woken by publishes, deadlines, stop,
// and the worker queue limit. Each test runs coroutines on a real io_context over a real Store.
#include "broker/broker.h"

#include <future>
#include <thread>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <gtest/gtest.h>

#include "support/temporary_directory.h"

namespace msgstore::broker {
namespace {

using namespace std::chrono_literals;

class BrokerTest : public ::testing::Test {
 protected:
  BrokerTest() {
    StoreOptions options;
    options.background_maintenance = false;
    store_ = Store::open(directory_.path() / "data", options).value();
    EXPECT_TRUE(store_->create_stream({.name = "orders", .subjects = {"orders.>"}}).is_ok());
  }
  ~BrokerTest() override { EXPECT_TRUE(store_->close().is_ok()); }

  // Runs `coroutine` on a fresh io_context until it completes; returns its value.
  template <typename T>
  T run(asio::awaitable<T> coroutine) {
    asio::io_context loop;
    std::optional<T> value;
    // co_spawn's completion needs a default-constructible value; Result<T> is not.
    asio::co_spawn(loop, capture(std::move(coroutine), value), asio::detached);
    loop.run();
    return std::move(*value);
  }

  template <typename T>
  static asio::awaitable<void> capture(asio::awaitable<T> coroutine, std::optional<T>& value) {
    value.emplace(co_await std::move(coroutine));
  }

  Position publish(Broker& broker, std::string_view payload) {
    OutgoingMessage message{.subject = "orders.created", .payload = payload};
    auto positions = run(broker.publish(std::span<const OutgoingMessage>(&message, 1)));
    EXPECT_TRUE(positions.is_ok()) << positions.status().to_string();
    return positions.is_ok() ? positions->front() : Position{};
  }

  msgstore::testing::TemporaryDirectory directory_;
  std::unique_ptr<Store> store_;
};

TEST_F(BrokerTest, PublishAndFetchThroughTheWorkerPool) {
  Broker broker(*store_, {.worker_threads = 4, .worker_queue_max = 16});
  EXPECT_EQ(publish(broker, "one").offset, 0u);
  OutgoingMessage direct{.subject = "anything.at.all", .payload = "two"};
  auto positions = run(broker.publish_to("orders", std::span<const OutgoingMessage>(&direct, 1)));
  ASSERT_TRUE(positions.is_ok()) << positions.status().to_string();
  EXPECT_EQ(positions->front().offset, 1u);

  auto result = run(broker.fetch({.stream = "orders", .partition = 0, .start = StartPosition::from_offset(0)}));
  ASSERT_TRUE(result.is_ok());
  ASSERT_EQ(result->messages.size(), 2u);
  EXPECT_EQ(result->messages[0].payload, "one");
  EXPECT_EQ(result->messages[1].subject, "anything.at.all");
  EXPECT_EQ(result->next_offset, 2u);
  EXPECT_EQ(broker.statistics().published_messages.load(), 2u);
  EXPECT_EQ(broker.statistics().published_bytes.load(), 6u);
  EXPECT_EQ(broker.statistics().fetched_messages.load(), 2u);
}

TEST_F(BrokerTest, ErrorsComeBackAsValues) {
  Broker broker(*store_, {.worker_threads = 2, .worker_queue_max = 16});
  auto missing = run(broker.fetch({.stream = "nope", .partition = 0}));
  EXPECT_EQ(missing.status().code(), ErrorCode::stream_not_found);
  OutgoingMessage unrouted{.subject = "nobody.listens", .payload = "x"};
  auto positions = run(broker.publish(std::span<const OutgoingMessage>(&unrouted, 1)));
  EXPECT_EQ(positions.status().code(), ErrorCode::no_matching_stream);
  EXPECT_EQ(broker.statistics().publish_failures.load(), 1u);
}

TEST_F(BrokerTest, LongPollReturnsWhenAMessageArrives) {
  Broker broker(*store_, {.worker_threads = 4, .worker_queue_max = 16});
  std::thread publisher([&] {
    std::this_thread::sleep_for(200ms);
    OutgoingMessage message{.subject = "orders.late", .payload = "late"};
    EXPECT_TRUE(store_->publish(message).is_ok());
  });
  const auto started = std::chrono::steady_clock::now();
  auto result = run(broker.fetch({.stream = "orders", .partition = 0, .start = StartPosition::from_offset(0), .wait = 10s}));
  const auto waited = std::chrono::steady_clock::now() - started;
  publisher.join();
  ASSERT_TRUE(result.is_ok());
  ASSERT_EQ(result->messages.size(), 1u);
  EXPECT_EQ(result->messages[0].payload, "late");
  EXPECT_GE(waited, 150ms);
  EXPECT_LT(waited, 5s);  // woken by the listener, not by the deadline
  EXPECT_EQ(broker.statistics().long_poll_waits.load(), 1u);
}

TEST_F(BrokerTest, LongPollEndsEmptyAtItsDeadline) {
  Broker broker(*store_, {.worker_threads = 2, .worker_queue_max = 16});
  const auto started = std::chrono::steady_clock::now();
  auto result = run(broker.fetch({.stream = "orders", .partition = 0, .start = StartPosition::from_offset(0), .wait = 300ms}));
  const auto waited = std::chrono::steady_clock::now() - started;
  ASSERT_TRUE(result.is_ok());
  EXPECT_TRUE(result->messages.empty());
  EXPECT_EQ(result->next_offset, 0u);
  EXPECT_GE(waited, 290ms);
  EXPECT_LT(waited, 3s);
}

TEST_F(BrokerTest, StopWakesWaitingLongPolls) {
  Broker broker(*store_, {.worker_threads = 2, .worker_queue_max = 16});
  std::thread stopper([&] {
    std::this_thread::sleep_for(200ms);
    broker.stop();
  });
  const auto started = std::chrono::steady_clock::now();
  auto result = run(broker.fetch({.stream = "orders", .partition = 0, .start = StartPosition::from_offset(0), .wait = 30s}));
  stopper.join();
  ASSERT_TRUE(result.is_ok());
  EXPECT_TRUE(result->messages.empty());
  EXPECT_LT(std::chrono::steady_clock::now() - started, 5s);
  // After stop, waits return at once.
  const auto again = std::chrono::steady_clock::now();
  (void)run(broker.fetch({.stream = "orders", .partition = 0, .wait = 30s}));
  EXPECT_LT(std::chrono::steady_clock::now() - again, 1s);
}

TEST_F(BrokerTest, WorkerQueueLimitRejectsInsteadOfQueueing) {
  Broker broker(*store_, {.worker_threads = 1, .worker_queue_max = 1});
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  asio::io_context loop;
  std::optional<Status> first;
  std::optional<Status> second;
  asio::co_spawn(loop, broker.run_blocking([released] { released.wait(); return Status::ok(); }),
                 [&](std::exception_ptr, Status status) { first = status; });
  asio::co_spawn(loop, broker.run_blocking([] { return Status::ok(); }),
                 [&](std::exception_ptr, Status status) {
                   second = status;
                   release.set_value();
                 });
  loop.run();
  ASSERT_TRUE(first && second);
  EXPECT_TRUE(first->is_ok());
  EXPECT_EQ(second->code(), ErrorCode::limit_exceeded);
  EXPECT_EQ(broker.statistics().worker_rejections.load(), 1u);
  EXPECT_EQ(broker.statistics().worker_in_flight.load(), 0u);
}

TEST_F(BrokerTest, ConcurrentPublishersAllLand) {
  Broker broker(*store_, {.worker_threads = 16, .worker_queue_max = 1024});
  asio::io_context loop;
  constexpr int publishers = 64;
  std::vector<std::string> payloads;
  for (int i = 0; i < publishers; ++i) payloads.push_back("message-" + std::to_string(i));
  std::vector<OutgoingMessage> messages;
  for (const std::string& payload : payloads) messages.push_back({.subject = "orders.bulk", .payload = payload});
  std::vector<std::optional<Result<std::vector<Position>>>> results(publishers);
  for (int i = 0; i < publishers; ++i) {
    asio::co_spawn(loop, capture(broker.publish(std::span<const OutgoingMessage>(&messages[i], 1)), results[i]),
                   asio::detached);
  }
  loop.run();
  int succeeded = 0;
  for (const auto& result : results) succeeded += result.has_value() && result->is_ok();
  EXPECT_EQ(succeeded, publishers);
  auto info = store_->describe_stream("orders");
  ASSERT_TRUE(info.is_ok());
  EXPECT_EQ(info->messages, static_cast<std::uint64_t>(publishers));
}

}  // namespace
}  // namespace msgstore::broker

namespace msgstore::broker {
namespace {

// Many publishes started on one event loop before it runs any of them: they reach the store as
// fewer appends than publishes, and each publisher gets exactly its own messages' positions.
TEST_F(BrokerTest, PublishesOfOneLoopPassAreCombinedAndEachGetsItsOwnPositions) {
  Broker broker(*store_, {.worker_threads = 2, .worker_queue_max = 16});
  asio::io_context loop;
  constexpr std::size_t publishers = 40;
  std::vector<std::string> payloads(publishers);
  std::vector<std::vector<OutgoingMessage>> messages(publishers);
  std::vector<std::optional<Result<std::vector<Position>>>> answers(publishers);
  for (std::size_t i = 0; i < publishers; ++i) {
    payloads[i] = "payload-" + std::to_string(i);
    // Publishers of one and of three messages, interleaved.
    for (std::size_t m = 0; m < (i % 2 == 0 ? 1u : 3u); ++m) {
      messages[i].push_back({.subject = "orders.created", .payload = payloads[i]});
    }
    asio::co_spawn(loop, capture(broker.publish_to("orders", messages[i]), answers[i]), asio::detached);
  }
  loop.run();
  std::vector<bool> offset_seen(publishers * 3, false);
  for (std::size_t i = 0; i < publishers; ++i) {
    ASSERT_TRUE(answers[i].has_value());
    ASSERT_TRUE(answers[i]->is_ok()) << answers[i]->status().to_string();
    const std::vector<Position>& positions = **answers[i];
    ASSERT_EQ(positions.size(), messages[i].size());
    for (std::size_t m = 0; m < positions.size(); ++m) {
      EXPECT_EQ(positions[m].message_index, m);
      EXPECT_EQ(positions[m].stream, "orders");
      ASSERT_LT(positions[m].offset, offset_seen.size());
      EXPECT_FALSE(offset_seen[positions[m].offset]) << "offset " << positions[m].offset << " answered twice";
      offset_seen[positions[m].offset] = true;
      if (m > 0) {
        EXPECT_EQ(positions[m].offset, positions[m - 1].offset + 1);  // one publish stays contiguous
      }
      auto read = store_->read("orders", 0, positions[m].offset, {.max_messages = 1});
      ASSERT_TRUE(read.is_ok());
      ASSERT_EQ(read->messages.size(), 1u);
      EXPECT_EQ(read->messages[0].payload, payloads[i]);
    }
  }
  EXPECT_LT(broker.statistics().store_appends.load(), publishers);
  EXPECT_GE(broker.statistics().store_appends.load(), 1u);
}

// A bad publish combined with good ones fails alone, with its own error; the others are stored.
TEST_F(BrokerTest, ARefusedPublishInACombinedPassFailsAloneAndTheOthersAreStored) {
  Broker broker(*store_, {.worker_threads = 2, .worker_queue_max = 16});
  asio::io_context loop;
  OutgoingMessage good_first{.subject = "orders.created", .payload = "first"};
  OutgoingMessage bad{.subject = "orders..broken", .payload = "bad"};
  OutgoingMessage good_last{.subject = "orders.created", .payload = "last"};
  std::optional<Result<std::vector<Position>>> first, refused, last, unknown_stream;
  asio::co_spawn(loop, capture(broker.publish_to("orders", std::span<const OutgoingMessage>(&good_first, 1)), first), asio::detached);
  asio::co_spawn(loop, capture(broker.publish_to("orders", std::span<const OutgoingMessage>(&bad, 1)), refused), asio::detached);
  asio::co_spawn(loop, capture(broker.publish_to("orders", std::span<const OutgoingMessage>(&good_last, 1)), last), asio::detached);
  asio::co_spawn(loop, capture(broker.publish_to("missing", std::span<const OutgoingMessage>(&good_last, 1)), unknown_stream),
                 asio::detached);
  loop.run();
  ASSERT_TRUE(first && last && refused && unknown_stream);
  ASSERT_TRUE(first->is_ok()) << first->status().to_string();
  ASSERT_TRUE(last->is_ok()) << last->status().to_string();
  EXPECT_EQ(refused->status().code(), ErrorCode::invalid_argument) << refused->status().to_string();
  EXPECT_NE(refused->status().message().find("message 0"), std::string::npos) << refused->status().message();
  EXPECT_EQ(unknown_stream->status().code(), ErrorCode::stream_not_found);
  auto read = store_->read("orders", 0, 0, {.max_messages = 10});
  ASSERT_TRUE(read.is_ok());
  ASSERT_EQ(read->messages.size(), 2u);
  EXPECT_EQ(read->messages[(*first)->front().offset].payload, "first");
  EXPECT_EQ(read->messages[(*last)->front().offset].payload, "last");
}

}  // namespace
}  // namespace msgstore::broker
