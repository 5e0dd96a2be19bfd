// Durable consumers (msgstore/consumer.h): sharing, redelivery with real timers, backoff, dead
// letters, nak/term/in_progress, counts, restarts, and power loss on the fault file system.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "io/fault_file_system.h"
#include "msgstore/consumer.h"
#include "msgstore/store.h"
#include "support/temporary_directory.h"

namespace msgstore {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

StreamConfig stream_config(std::string name, std::vector<std::string> subjects, std::uint32_t partitions = 1) {
  return StreamConfig{.name = std::move(name), .subjects = std::move(subjects), .partitions = partitions};
}

std::unique_ptr<Store> open_store(const std::filesystem::path& directory, std::shared_ptr<FileSystem> file_system = nullptr) {
  StoreOptions options;
  options.file_system = std::move(file_system);
  options.background_maintenance = false;
  auto store = Store::open(directory, std::move(options));
  EXPECT_TRUE(store.is_ok()) << store.status().to_string();
  if (!store) return nullptr;
  return std::move(*store);
}

void publish(Store& store, std::string_view subject, std::string_view payload) {
  OutgoingMessage message;
  message.subject = subject;
  message.payload = payload;
  auto positions = store.publish(message);
  ASSERT_TRUE(positions.is_ok()) << positions.status().to_string();
}

std::vector<ConsumedMessage> fetch(Store& store, std::string_view stream, std::string_view name, std::size_t max_messages,
                                   milliseconds wait = milliseconds(0)) {
  auto fetched = store.consumers().fetch(stream, name, {.max_messages = max_messages, .wait = wait});
  EXPECT_TRUE(fetched.is_ok()) << fetched.status().to_string();
  return fetched ? std::move(*fetched) : std::vector<ConsumedMessage>{};
}

std::int64_t elapsed_ms(Clock::time_point since) {
  return std::chrono::duration_cast<milliseconds>(Clock::now() - since).count();
}

const Header* find_header(const Message& message, std::string_view name) {
  for (const Header& header : message.headers) {
    if (header.name == name) return &header;
  }
  return nullptr;
}

class ConsumerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    file_system_ = std::make_shared<FaultFileSystem>();
    store_ = open_store("/data", file_system_);
    ASSERT_NE(store_, nullptr);
    ASSERT_TRUE(store_->create_stream(stream_config("orders", {"orders.>"})).is_ok());
    ASSERT_TRUE(store_->create_stream(stream_config("dead", {"dead.>"})).is_ok());
  }
  Consumers& consumers() { return store_->consumers(); }
  void publish_orders(int count, std::string_view subject = "orders.created") {
    for (int i = 0; i < count; ++i) publish(*store_, subject, "order-" + std::to_string(next_order_++));
  }

  std::shared_ptr<FaultFileSystem> file_system_;
  std::unique_ptr<Store> store_;
  int next_order_ = 0;
};

// ---- Admin ------------------------------------------------------------------------------------
TEST_F(ConsumerTest, CreateDescribeListRemove) {
  ASSERT_TRUE(consumers().create("orders", {.name = "billing"}).is_ok());
  EXPECT_EQ(consumers().create("orders", {.name = "billing"}).code(), ErrorCode::consumer_exists);
  EXPECT_EQ(consumers().create("orders", {.name = "bad/name"}).code(), ErrorCode::invalid_name);
  EXPECT_EQ(consumers().create("orders", {.name = "x", .subject_filter = "orders..x"}).code(), ErrorCode::invalid_argument);
  EXPECT_EQ(consumers().create("orders", {.name = "x", .ack_wait_ms = 0}).code(), ErrorCode::invalid_argument);
  EXPECT_EQ(consumers().create("nope", {.name = "x"}).code(), ErrorCode::stream_not_found);
  EXPECT_EQ(consumers().create("orders", {.name = "x", .dead_letter_stream = "missing"}).code(), ErrorCode::stream_not_found);
  EXPECT_EQ(consumers().create("orders", {.name = "x", .dead_letter_stream = "orders"}).code(), ErrorCode::invalid_argument);
  ASSERT_TRUE(consumers().create("orders", {.name = "audit", .subject_filter = "orders.*.eu", .ack_wait_ms = 5000,
                                            .max_deliveries = 3, .backoff_ms = {100, 200}, .dead_letter_stream = "dead",
                                            .max_ack_pending = 7})
                  .is_ok());
  publish_orders(4);
  auto info = consumers().describe("orders", "billing");
  ASSERT_TRUE(info.is_ok()) << info.status().to_string();
  EXPECT_EQ(info->lag, 4u);
  EXPECT_EQ(info->pending, 0u);
  ASSERT_EQ(info->partitions.size(), 1u);
  EXPECT_EQ(info->partitions[0].ack_floor, 0u);
  auto audit = consumers().describe("orders", "audit");
  ASSERT_TRUE(audit.is_ok());
  EXPECT_EQ(audit->config.backoff_ms, (std::vector<std::int64_t>{100, 200}));
  EXPECT_EQ(audit->config.dead_letter_stream, "dead");
  EXPECT_EQ(audit->config.max_ack_pending, 7u);
  auto listed = consumers().list("orders");
  ASSERT_TRUE(listed.is_ok());
  ASSERT_EQ(listed->size(), 2u);
  EXPECT_EQ((*listed)[0].config.name, "audit");
  EXPECT_EQ((*listed)[1].config.name, "billing");
  ASSERT_TRUE(consumers().remove("orders", "billing").is_ok());
  EXPECT_EQ(consumers().describe("orders", "billing").status().code(), ErrorCode::consumer_not_found);
  EXPECT_EQ(consumers().remove("orders", "billing").code(), ErrorCode::consumer_not_found);
  EXPECT_EQ(consumers().list("orders")->size(), 1u);
  // The name is free again.
  EXPECT_TRUE(consumers().create("orders", {.name = "billing"}).is_ok());
}

TEST_F(ConsumerTest, StartPositions) {
  publish_orders(5);
  ASSERT_TRUE(consumers().create("orders", {.name = "from-end", .start = StartPosition::new_only()}).is_ok());
  ASSERT_TRUE(consumers().create("orders", {.name = "from-3", .start = StartPosition::from_offset(3)}).is_ok());
  ASSERT_TRUE(consumers().create("orders", {.name = "from-all"}).is_ok());
  publish_orders(1);
  auto from_end = fetch(*store_, "orders", "from-end", 100);
  ASSERT_EQ(from_end.size(), 1u);
  EXPECT_EQ(from_end[0].message.offset, 5u);
  auto from_three = fetch(*store_, "orders", "from-3", 100);
  ASSERT_EQ(from_three.size(), 3u);
  EXPECT_EQ(from_three[0].message.offset, 3u);
  EXPECT_EQ(fetch(*store_, "orders", "from-all", 100).size(), 6u);
}

TEST_F(ConsumerTest, StreamDeletionTakesItsConsumers) {
  ASSERT_TRUE(consumers().create("orders", {.name = "billing"}).is_ok());
  publish_orders(2);
  ASSERT_EQ(fetch(*store_, "orders", "billing", 1).size(), 1u);
  ASSERT_TRUE(store_->delete_stream("orders").is_ok());
  EXPECT_EQ(consumers().describe("orders", "billing").status().code(), ErrorCode::stream_not_found);
  EXPECT_EQ(consumers().fetch("orders", "billing", {}).status().code(), ErrorCode::stream_not_found);
  // Created again: a new stream without consumers.
  ASSERT_TRUE(store_->create_stream(stream_config("orders", {"orders.>"})).is_ok());
  EXPECT_EQ(consumers().describe("orders", "billing").status().code(), ErrorCode::consumer_not_found);
  EXPECT_TRUE(consumers().list("orders")->empty());
}

// ---- Delivery and sharing ---------------------------------------------------------------------
TEST_F(ConsumerTest, FetchAckAdvancesTheFloorAndCounts) {
  ASSERT_TRUE(consumers().create("orders", {.name = "billing"}).is_ok());
  publish_orders(10);
  auto batch = fetch(*store_, "orders", "billing", 4);
  ASSERT_EQ(batch.size(), 4u);
  for (std::size_t i = 0; i < batch.size(); ++i) {
    EXPECT_EQ(batch[i].message.offset, i);
    EXPECT_EQ(batch[i].deliveries, 1u);
    EXPECT_EQ(batch[i].delivery.to_string(), "orders/0/" + std::to_string(i) + "/1");
    EXPECT_EQ(batch[i].message.payload, "order-" + std::to_string(i));
  }
  auto info = consumers().describe("orders", "billing");
  EXPECT_EQ(info->pending, 4u);
  EXPECT_EQ(info->partitions[0].out, 4u);
  EXPECT_EQ(info->lag, 6u);
  // Acking 1 and 2 leaves the floor at 0 (sparse acks above it); acking 0 moves it to 3.
  std::vector<std::string> tokens = {batch[1].delivery.to_string(), batch[2].delivery.to_string()};
  auto results = consumers().settle("orders", "billing", AckKind::ack, tokens);
  ASSERT_TRUE(results.is_ok());
  EXPECT_TRUE((*results)[0].is_ok());
  EXPECT_TRUE((*results)[1].is_ok());
  EXPECT_EQ(consumers().describe("orders", "billing")->partitions[0].ack_floor, 0u);
  ASSERT_TRUE(consumers().ack("orders", "billing", batch[0].delivery.to_string()).is_ok());
  info = consumers().describe("orders", "billing");
  EXPECT_EQ(info->partitions[0].ack_floor, 3u);
  EXPECT_EQ(info->pending, 1u);
  // Acking twice, a never-made delivery, a malformed token, another stream's token.
  EXPECT_EQ(consumers().ack("orders", "billing", batch[0].delivery.to_string()).code(), ErrorCode::stale_delivery);
  EXPECT_EQ(consumers().ack("orders", "billing", "orders/0/9/1").code(), ErrorCode::stale_delivery);
  EXPECT_EQ(consumers().ack("orders", "billing", "garbage").code(), ErrorCode::invalid_argument);
  EXPECT_EQ(consumers().ack("orders", "billing", "dead/0/0/1").code(), ErrorCode::invalid_argument);
  EXPECT_EQ(consumers().ack("orders", "billing", "orders/5/0/1").code(), ErrorCode::invalid_argument);
  EXPECT_EQ(consumers().ack("orders", "nobody", "orders/0/0/1").code(), ErrorCode::consumer_not_found);
}

TEST_F(ConsumerTest, SubjectFilterAndMaxAckPending) {
  ASSERT_TRUE(consumers().create("orders", {.name = "eu", .subject_filter = "orders.eu.*", .max_ack_pending = 3}).is_ok());
  for (int i = 0; i < 10; ++i) publish(*store_, i % 2 ? "orders.eu.created" : "orders.us.created", std::to_string(i));
  auto first = fetch(*store_, "orders", "eu", 100);
  ASSERT_EQ(first.size(), 3u);  // max_ack_pending
  for (const ConsumedMessage& consumed : first) EXPECT_EQ(consumed.message.subject, "orders.eu.created");
  EXPECT_TRUE(fetch(*store_, "orders", "eu", 100).empty());
  ASSERT_TRUE(consumers().ack("orders", "eu", first[0].delivery.to_string()).is_ok());
  auto second = fetch(*store_, "orders", "eu", 100);
  ASSERT_EQ(second.size(), 1u);
  EXPECT_EQ(second[0].message.offset, 7u);
  for (const ConsumedMessage& consumed : first) (void)consumers().ack("orders", "eu", consumed.delivery.to_string());
  ASSERT_TRUE(consumers().ack("orders", "eu", second[0].delivery.to_string()).is_ok());
  auto last = fetch(*store_, "orders", "eu", 100);
  ASSERT_EQ(last.size(), 1u);
  EXPECT_EQ(last[0].message.offset, 9u);
  ASSERT_TRUE(consumers().ack("orders", "eu", last[0].delivery.to_string()).is_ok());
  auto info = consumers().describe("orders", "eu");
  EXPECT_EQ(info->partitions[0].ack_floor, 10u);  // filtered messages count as done
  EXPECT_EQ(info->lag, 0u);
}

TEST_F(ConsumerTest, ConcurrentFetchersShareWithoutDuplicates) {
  StreamConfig jobs = stream_config("jobs", {"jobs.>"}, 3);
  ASSERT_TRUE(store_->create_stream(jobs).is_ok());
  ASSERT_TRUE(consumers().create("jobs", {.name = "workers", .ack_wait_ms = 60'000, .max_ack_pending = 50}).is_ok());
  constexpr int total = 600;
  std::mutex mutex;
  std::map<std::pair<std::uint32_t, Offset>, int> seen;
  std::atomic<int> acked{0};
  std::vector<std::thread> workers;
  for (int worker = 0; worker < 4; ++worker) {
    workers.emplace_back([&] {
      const auto start = Clock::now();
      while (acked.load() < total && elapsed_ms(start) < 20'000) {
        auto batch = store_->consumers().fetch("jobs", "workers", {.max_messages = 7, .wait = milliseconds(50)});
        ASSERT_TRUE(batch.is_ok()) << batch.status().to_string();
        std::vector<std::string> tokens;
        for (const ConsumedMessage& consumed : *batch) {
          std::lock_guard lock(mutex);
          ++seen[{consumed.partition, consumed.message.offset}];
          tokens.push_back(consumed.delivery.to_string());
        }
        if (tokens.empty()) continue;
        auto results = store_->consumers().settle("jobs", "workers", AckKind::ack, tokens);
        ASSERT_TRUE(results.is_ok());
        for (const Status& result : *results) ASSERT_TRUE(result.is_ok()) << result.to_string();
        acked.fetch_add(static_cast<int>(tokens.size()));
      }
    });
  }
  for (int i = 0; i < total; ++i) {
    publish(*store_, "jobs.run", "job-" + std::to_string(i));
    if (i % 50 == 0) std::this_thread::sleep_for(milliseconds(2));
  }
  for (std::thread& worker : workers) worker.join();
  EXPECT_EQ(acked.load(), total);
  EXPECT_EQ(seen.size(), static_cast<std::size_t>(total));
  for (const auto& [position, count] : seen) EXPECT_EQ(count, 1) << position.first << "/" << position.second;
  auto info = consumers().describe("jobs", "workers");
  EXPECT_EQ(info->pending, 0u);
  EXPECT_EQ(info->lag, 0u);
}

// A disk whose fdatasync takes a while, as a real one does: concurrent syncs can overlap.
class SlowSyncFileSystem final : public FileSystem {
 public:
  explicit SlowSyncFileSystem(std::shared_ptr<FaultFileSystem> disk) : disk_(std::move(disk)) {}
  std::uint64_t data_syncs() const { return data_syncs_.load(); }

  Result<std::unique_ptr<File>> open(const std::filesystem::path& path, OpenMode mode) override {
    auto file = disk_->open(path, mode);
    if (!file) return file.status();
    return std::unique_ptr<File>(new SlowFile(std::move(*file), data_syncs_));
  }
  Status create_directories(const std::filesystem::path& path) override { return disk_->create_directories(path); }
  Status sync_directory(const std::filesystem::path& path) override { return disk_->sync_directory(path); }
  Status rename(const std::filesystem::path& from, const std::filesystem::path& to) override { return disk_->rename(from, to); }
  Status remove(const std::filesystem::path& path) override { return disk_->remove(path); }
  Status remove_all(const std::filesystem::path& path) override { return disk_->remove_all(path); }
  Result<std::vector<std::string>> list_directory(const std::filesystem::path& path) override { return disk_->list_directory(path); }
  bool exists(const std::filesystem::path& path) override { return disk_->exists(path); }
  bool is_directory(const std::filesystem::path& path) override { return disk_->is_directory(path); }
  Result<std::unique_ptr<FileLock>> lock(const std::filesystem::path& path) override { return disk_->lock(path); }

 private:
  class SlowFile final : public File {
   public:
    SlowFile(std::unique_ptr<File> file, std::atomic<std::uint64_t>& syncs) : file_(std::move(file)), syncs_(syncs) {}
    Status write_at(std::uint64_t offset, const void* data, std::size_t size) override { return file_->write_at(offset, data, size); }
    Result<std::size_t> read_at(std::uint64_t offset, void* buffer, std::size_t size) const override {
      return file_->read_at(offset, buffer, size);
    }
    Status sync_data() override {
      syncs_.fetch_add(1);
      std::this_thread::sleep_for(milliseconds(2));
      return file_->sync_data();
    }
    Status sync() override { return file_->sync(); }
    Status truncate(std::uint64_t size) override { return file_->truncate(size); }
    Result<std::uint64_t> size() const override { return file_->size(); }

   private:
    std::unique_ptr<File> file_;
    std::atomic<std::uint64_t>& syncs_;
  };
  std::shared_ptr<FaultFileSystem> disk_;
  std::atomic<std::uint64_t> data_syncs_{0};
};

// Acks from concurrent clients share fdatasync calls (group commit), and each returns only once
// its record is durable.
TEST_F(ConsumerTest, ConcurrentAcksShareSyncs) {
  store_.reset();
  auto slow = std::make_shared<SlowSyncFileSystem>(file_system_);
  store_ = open_store("/data", slow);
  ASSERT_TRUE(consumers().create("orders", {.name = "billing", .max_ack_pending = 10'000}).is_ok());
  constexpr int threads = 8;
  constexpr int per_thread = 40;
  publish_orders(threads * per_thread);
  auto batch = fetch(*store_, "orders", "billing", threads * per_thread);
  ASSERT_EQ(batch.size(), static_cast<std::size_t>(threads * per_thread));
  const std::uint64_t syncs_before = slow->data_syncs();
  std::vector<std::thread> clients;
  std::atomic<int> failures{0};
  for (int thread = 0; thread < threads; ++thread) {
    clients.emplace_back([&, thread] {
      for (int i = thread; i < threads * per_thread; i += threads) {
        const std::string token = batch[static_cast<std::size_t>(i)].delivery.to_string();
        if (!store_->consumers().ack("orders", "billing", token).is_ok()) failures.fetch_add(1);
      }
    });
  }
  for (std::thread& client : clients) client.join();
  EXPECT_EQ(failures.load(), 0);
  const std::uint64_t syncs = slow->data_syncs() - syncs_before;
  EXPECT_GE(syncs, 1u);
  EXPECT_LT(syncs, static_cast<std::uint64_t>(threads * per_thread) / 2) << "acks did not share syncs";
  // Every ack returned after a sync: a power loss now keeps all of them.
  file_system_->simulate_power_loss(1, PowerLossMode::drop_all_unsynced);
  store_.reset();
  store_ = open_store("/data", file_system_);
  auto info = store_->consumers().describe("orders", "billing");
  ASSERT_TRUE(info.is_ok()) << info.status().to_string();
  EXPECT_EQ(info->pending, 0u);
  EXPECT_EQ(info->partitions[0].ack_floor, static_cast<Offset>(threads * per_thread));
}

TEST_F(ConsumerTest, LongPollReturnsWhenAMessageArrives) {
  ASSERT_TRUE(consumers().create("orders", {.name = "billing"}).is_ok());
  const auto start = Clock::now();
  std::thread publisher([&] {
    std::this_thread::sleep_for(milliseconds(150));
    publish(*store_, "orders.created", "late");
  });
  auto batch = fetch(*store_, "orders", "billing", 10, milliseconds(5000));
  publisher.join();
  ASSERT_EQ(batch.size(), 1u);
  EXPECT_GE(elapsed_ms(start), 140);
  EXPECT_LT(elapsed_ms(start), 3000);
  // An empty long poll lasts its wait.
  const auto empty_start = Clock::now();
  EXPECT_TRUE(fetch(*store_, "orders", "billing", 10, milliseconds(200)).empty());
  EXPECT_GE(elapsed_ms(empty_start), 190);
}

// ---- Timers -----------------------------------------------------------------------------------
TEST_F(ConsumerTest, UnackedMessagesAreRedeliveredAfterTheAckWait) {
  ASSERT_TRUE(consumers().create("orders", {.name = "billing", .ack_wait_ms = 200}).is_ok());
  publish_orders(1);
  const auto start = Clock::now();
  auto first = fetch(*store_, "orders", "billing", 10);
  ASSERT_EQ(first.size(), 1u);
  EXPECT_TRUE(fetch(*store_, "orders", "billing", 10).empty());  // out to the first fetcher
  // Waiters on store data (the server's long polls) learn of the expiry too.
  const std::uint64_t generation = store_->data_generation();
  store_->wait_for_data(generation, milliseconds(3000));
  EXPECT_NE(store_->data_generation(), generation);
  EXPECT_GE(elapsed_ms(start), 195);
  EXPECT_LT(elapsed_ms(start), 2500);
  auto second = fetch(*store_, "orders", "billing", 10, milliseconds(3000));
  ASSERT_EQ(second.size(), 1u);
  EXPECT_GE(elapsed_ms(start), 195);
  EXPECT_EQ(second[0].message.offset, 0u);
  EXPECT_EQ(second[0].deliveries, 2u);
  EXPECT_EQ(consumers().describe("orders", "billing")->redelivered, 1u);
  // The first fetcher's token is stale now; the second's works.
  EXPECT_EQ(consumers().ack("orders", "billing", first[0].delivery.to_string()).code(), ErrorCode::stale_delivery);
  EXPECT_TRUE(consumers().ack("orders", "billing", second[0].delivery.to_string()).is_ok());
  EXPECT_EQ(consumers().describe("orders", "billing")->pending, 0u);
}

TEST_F(ConsumerTest, BackoffDelaysEachRedelivery) {
  ASSERT_TRUE(consumers().create("orders", {.name = "billing", .ack_wait_ms = 50, .backoff_ms = {300, 600}}).is_ok());
  publish_orders(1);
  // Times are measured from before the first delivery: a start taken after a fetch returned
  // could be late by however long the test thread waited for a core, and then a correct
  // redelivery would look early.
  auto start = Clock::now();
  ASSERT_EQ(fetch(*store_, "orders", "billing", 1).size(), 1u);
  auto second = fetch(*store_, "orders", "billing", 1, milliseconds(5000));
  ASSERT_EQ(second.size(), 1u);
  EXPECT_GE(elapsed_ms(start), 50 + 300 - 5);  // ack wait, then the first backoff
  auto third = fetch(*store_, "orders", "billing", 1, milliseconds(5000));
  ASSERT_EQ(third.size(), 1u);
  EXPECT_EQ(third[0].deliveries, 3u);
  EXPECT_GE(elapsed_ms(start), (50 + 300) + (50 + 600) - 5);  // then the second backoff
  // A nak without a delay uses the backoff too (the last entry repeats).
  start = Clock::now();
  ASSERT_TRUE(consumers().nak("orders", "billing", third[0].delivery.to_string()).is_ok());
  auto fourth = fetch(*store_, "orders", "billing", 1, milliseconds(5000));
  ASSERT_EQ(fourth.size(), 1u);
  EXPECT_GE(elapsed_ms(start), 600 - 5);
}

TEST_F(ConsumerTest, NakWithDelayTermAndInProgress) {
  ASSERT_TRUE(consumers().create("orders", {.name = "billing", .ack_wait_ms = 300, .dead_letter_stream = "dead"}).is_ok());
  publish_orders(3);
  auto batch = fetch(*store_, "orders", "billing", 3);
  ASSERT_EQ(batch.size(), 3u);
  // nak with a delay: back after the delay, not before.
  auto start = Clock::now();
  ASSERT_TRUE(consumers().nak("orders", "billing", batch[0].delivery.to_string(), milliseconds(150)).is_ok());
  EXPECT_TRUE(fetch(*store_, "orders", "billing", 1).empty());
  // The end of the nak delay is announced to waiters on store data.
  const std::uint64_t generation = store_->data_generation();
  store_->wait_for_data(generation, milliseconds(3000));
  EXPECT_GE(elapsed_ms(start), 140);
  auto again = fetch(*store_, "orders", "billing", 1, milliseconds(3000));
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again[0].message.offset, 0u);
  EXPECT_EQ(again[0].deliveries, 2u);
  EXPECT_GE(elapsed_ms(start), 145);
  EXPECT_TRUE(consumers().ack("orders", "billing", again[0].delivery.to_string()).is_ok());
  // term: dead-lettered at once with reason "term", never delivered again.
  ASSERT_TRUE(consumers().term("orders", "billing", batch[1].delivery.to_string()).is_ok());
  auto dead = store_->read("dead", 0, 0);
  ASSERT_TRUE(dead.is_ok());
  ASSERT_EQ(dead->messages.size(), 1u);
  EXPECT_EQ(find_header(dead->messages[0], dead_letter_reason_header)->value, "term");
  EXPECT_EQ(find_header(dead->messages[0], dead_letter_offset_header)->value, "1");
  EXPECT_EQ(dead->messages[0].payload, "order-1");
  // in_progress keeps the third out past its first ack wait.
  start = Clock::now();
  std::this_thread::sleep_for(milliseconds(200));
  ASSERT_TRUE(consumers().in_progress("orders", "billing", batch[2].delivery.to_string()).is_ok());
  std::this_thread::sleep_for(milliseconds(200));  // 400 ms since the fetch: past the original wait
  auto none = fetch(*store_, "orders", "billing", 10);
  for (const ConsumedMessage& consumed : none) EXPECT_NE(consumed.message.offset, 2u) << "redelivered despite in_progress";
  EXPECT_TRUE(consumers().ack("orders", "billing", batch[2].delivery.to_string()).is_ok());
  auto info = consumers().describe("orders", "billing");
  EXPECT_EQ(info->pending, 0u);
  EXPECT_EQ(info->dead_lettered, 1u);
  EXPECT_EQ(info->partitions[0].ack_floor, 3u);
}

TEST_F(ConsumerTest, MaxDeliveriesDeadLettersWithHeadersAndTimers) {
  ASSERT_TRUE(consumers().create("orders", {.name = "billing", .ack_wait_ms = 100, .max_deliveries = 2,
                                            .dead_letter_stream = "dead"}).is_ok());
  OutgoingMessage original;
  original.subject = "orders.eu.created";
  original.key = "customer-7";
  const HeaderView trace{"trace", "abc"};
  original.headers = std::span<const HeaderView>(&trace, 1);
  original.payload = "poison";
  ASSERT_TRUE(store_->publish(original).is_ok());
  ASSERT_EQ(fetch(*store_, "orders", "billing", 1).size(), 1u);
  auto second = fetch(*store_, "orders", "billing", 1, milliseconds(3000));
  ASSERT_EQ(second.size(), 1u);
  EXPECT_EQ(second[0].deliveries, 2u);
  // Nobody acks or fetches: the timer thread moves it once the second ack wait ends.
  const auto start = Clock::now();
  Result<ReadResult> dead = Status(ErrorCode::timed_out, "");
  while (elapsed_ms(start) < 5000) {
    dead = store_->read("dead", 0, 0);
    ASSERT_TRUE(dead.is_ok());
    if (!dead->messages.empty()) break;
    std::this_thread::sleep_for(milliseconds(20));
  }
  ASSERT_EQ(dead->messages.size(), 1u);
  const Message& letter = dead->messages[0];
  EXPECT_EQ(letter.subject, "orders.eu.created");
  EXPECT_EQ(letter.key, std::optional<std::string>("customer-7"));
  EXPECT_EQ(letter.payload, "poison");
  EXPECT_EQ(find_header(letter, "trace")->value, "abc");
  EXPECT_EQ(find_header(letter, dead_letter_reason_header)->value, "max_deliveries");
  EXPECT_EQ(find_header(letter, dead_letter_stream_header)->value, "orders");
  EXPECT_EQ(find_header(letter, dead_letter_partition_header)->value, "0");
  EXPECT_EQ(find_header(letter, dead_letter_offset_header)->value, "0");
  EXPECT_EQ(find_header(letter, dead_letter_subject_header)->value, "orders.eu.created");
  EXPECT_EQ(find_header(letter, dead_letter_consumer_header)->value, "billing");
  EXPECT_EQ(find_header(letter, dead_letter_deliveries_header)->value, "2");
  EXPECT_TRUE(fetch(*store_, "orders", "billing", 1, milliseconds(300)).empty());  // done: not delivered again
  auto info = consumers().describe("orders", "billing");
  EXPECT_EQ(info->pending, 0u);
  EXPECT_EQ(info->dead_lettered, 1u);
  EXPECT_EQ(info->partitions[0].ack_floor, 1u);
  EXPECT_EQ(consumers().ack("orders", "billing", second[0].delivery.to_string()).code(), ErrorCode::stale_delivery);
}

TEST_F(ConsumerTest, NakPastMaxDeliveriesWithoutADeadLetterStreamDrops) {
  ASSERT_TRUE(consumers().create("orders", {.name = "billing", .max_deliveries = 1}).is_ok());
  publish_orders(2);
  auto batch = fetch(*store_, "orders", "billing", 1);
  ASSERT_EQ(batch.size(), 1u);
  ASSERT_TRUE(consumers().nak("orders", "billing", batch[0].delivery.to_string()).is_ok());
  auto next = fetch(*store_, "orders", "billing", 5);
  ASSERT_EQ(next.size(), 1u);
  EXPECT_EQ(next[0].message.offset, 1u);
  EXPECT_EQ(consumers().describe("orders", "billing")->dropped, 1u);
}

TEST_F(ConsumerTest, RetentionRemovedMessagesAreSkippedAndCounted) {
  StreamConfig small = stream_config("small", {"small.>"});
  small.segment_bytes = limits::segment_bytes_min;
  small.max_messages = 20;
  ASSERT_TRUE(store_->create_stream(small).is_ok());
  ASSERT_TRUE(consumers().create("small", {.name = "slow"}).is_ok());
  for (int i = 0; i < 400; ++i) publish(*store_, "small.x", std::string(100, 'x'));
  ASSERT_TRUE(store_->run_maintenance().is_ok());
  const Offset log_start = *store_->resolve_start("small", 0, StartPosition::from_beginning());
  ASSERT_GT(log_start, 0u);
  auto batch = fetch(*store_, "small", "slow", 1);
  ASSERT_EQ(batch.size(), 1u);
  EXPECT_EQ(batch[0].message.offset, log_start);
  auto info = consumers().describe("small", "slow");
  EXPECT_EQ(info->skipped, log_start);
  EXPECT_EQ(info->partitions[0].ack_floor, log_start);
}

// ---- Restarts and crashes ---------------------------------------------------------------------
TEST(ConsumerDurability, RestartKeepsAckedPositionsAndConfig) {
  testing::TemporaryDirectory directory;
  std::vector<std::string> unacked;
  {
    auto store = open_store(directory.path());
    ASSERT_TRUE(store->create_stream(stream_config("orders", {"orders.>"}, 2)).is_ok());
    ASSERT_TRUE(store->consumers().create("orders", {.name = "billing", .ack_wait_ms = 100, .max_deliveries = 5}).is_ok());
    for (int i = 0; i < 20; ++i) publish(*store, "orders.created", "m" + std::to_string(i));
    auto batch = fetch(*store, "orders", "billing", 20);
    ASSERT_EQ(batch.size(), 20u);
    for (std::size_t i = 0; i < batch.size(); ++i) {
      if (i % 3 == 0) {
        unacked.push_back(batch[i].message.payload);
      } else {
        ASSERT_TRUE(store->consumers().ack("orders", "billing", batch[i].delivery.to_string()).is_ok());
      }
    }
  }
  auto store = open_store(directory.path());
  auto info = store->consumers().describe("orders", "billing");
  ASSERT_TRUE(info.is_ok()) << info.status().to_string();
  EXPECT_EQ(info->config.max_deliveries, 5u);
  EXPECT_EQ(info->pending, unacked.size());
  EXPECT_EQ(info->lag, 0u);
  std::vector<std::string> redelivered;
  const auto start = Clock::now();
  while (redelivered.size() < unacked.size() && elapsed_ms(start) < 5000) {
    for (ConsumedMessage& consumed : fetch(*store, "orders", "billing", 100, milliseconds(500))) {
      EXPECT_EQ(consumed.deliveries, 2u);  // the delivery count survived too
      redelivered.push_back(consumed.message.payload);
      ASSERT_TRUE(store->consumers().ack("orders", "billing", consumed.delivery.to_string()).is_ok());
    }
  }
  std::sort(unacked.begin(), unacked.end());
  std::sort(redelivered.begin(), redelivered.end());
  EXPECT_EQ(redelivered, unacked);
}

TEST(ConsumerDurability, CompactionKeepsTheStateAcrossGenerations) {
  auto file_system = std::make_shared<FaultFileSystem>();
  auto store = open_store("/data", file_system);
  StreamConfig config = stream_config("orders", {"orders.>"});
  config.fsync = FsyncPolicy::never;  // keep the test fast; compaction syncs anyway
  ASSERT_TRUE(store->create_stream(config).is_ok());
  ASSERT_TRUE(store->consumers().create("orders", {.name = "billing", .max_ack_pending = 100'000}).is_ok());
  constexpr int total = 60'000;  // enough records to pass the compaction threshold
  std::vector<OutgoingMessage> messages(1000);
  for (OutgoingMessage& message : messages) message.subject = "orders.x";
  for (int i = 0; i < total / 1000; ++i) ASSERT_TRUE(store->publish_batch(messages).is_ok());
  std::set<Offset> kept;  // every 7th stays unacked
  for (int round = 0; round < total / 2000; ++round) {
    auto batch = fetch(*store, "orders", "billing", 2000);
    std::vector<std::string> tokens;
    for (const ConsumedMessage& consumed : batch) {
      if (consumed.message.offset % 7 == 0) kept.insert(consumed.message.offset);
      else tokens.push_back(consumed.delivery.to_string());
    }
    ASSERT_TRUE(store->consumers().settle("orders", "billing", AckKind::ack, tokens).is_ok());
  }
  // The timer compacts within a second once the log passed the threshold.
  std::this_thread::sleep_for(milliseconds(1500));
  std::size_t logs = 0;
  for (const auto& path : file_system->all_files()) {
    if (path.filename().string().starts_with("state-")) {
      ++logs;
      EXPECT_NE(path.filename().string(), "state-00000000000000000001.log") << "never compacted";
    }
  }
  EXPECT_EQ(logs, 1u);
  store.reset();
  store = open_store("/data", file_system);
  auto info = store->consumers().describe("orders", "billing");
  ASSERT_TRUE(info.is_ok()) << info.status().to_string();
  EXPECT_EQ(info->pending, kept.size());
  EXPECT_EQ(info->partitions[0].ack_floor, 0u);
  EXPECT_EQ(info->partitions[0].delivered_offset, static_cast<Offset>(total));
}

// Drains a consumer: acks everything it delivers until nothing is pending or lagging.
std::set<std::pair<std::uint32_t, Offset>> drain(Store& store, std::string_view stream, std::string_view name) {
  std::set<std::pair<std::uint32_t, Offset>> delivered;
  const auto start = Clock::now();
  while (elapsed_ms(start) < 5000) {
    auto batch = store.consumers().fetch(stream, name, {.max_messages = 100, .wait = milliseconds(100)});
    if (!batch) {
      ADD_FAILURE() << batch.status().to_string();
      break;
    }
    if (batch->empty()) {
      auto info = store.consumers().describe(stream, name);
      if (!info || (info->pending == 0 && info->lag == 0)) break;
      continue;
    }
    std::vector<std::string> tokens;
    for (const ConsumedMessage& consumed : *batch) {
      delivered.insert({consumed.partition, consumed.message.offset});
      tokens.push_back(consumed.delivery.to_string());
    }
    auto results = store.consumers().settle(stream, name, AckKind::ack, tokens);
    if (!results) ADD_FAILURE() << results.status().to_string();
  }
  return delivered;
}

// Forwards to the disk until the "process" dies; then every call fails, so the threads of the
// dead store cannot touch the rebooted disk. It can also die by itself right after the k-th
// namespace-changing call (open for writing, rename, remove, directory create or sync), which
// puts a crash between every two steps of creation, compaction and recovery.
class DyingFileSystem final : public FileSystem {
 public:
  explicit DyingFileSystem(std::shared_ptr<FaultFileSystem> disk) : disk_(std::move(disk)) {}
  void kill() { dead_ = true; }
  bool dead() const { return dead_; }
  void die_after(std::uint64_t operations) { countdown_ = operations; }
  std::uint64_t operations() const { return operations_; }

  Result<std::unique_ptr<File>> open(const std::filesystem::path& path, OpenMode mode) override {
    if (dead_) return gone();
    auto file = disk_->open(path, mode);
    if (mode != OpenMode::read_only) step();
    return file;
  }
  Status create_directories(const std::filesystem::path& path) override { return dead_ ? gone() : mutate(disk_->create_directories(path)); }
  Status sync_directory(const std::filesystem::path& path) override { return dead_ ? gone() : mutate(disk_->sync_directory(path)); }
  Status rename(const std::filesystem::path& from, const std::filesystem::path& to) override {
    return dead_ ? gone() : mutate(disk_->rename(from, to));
  }
  Status remove(const std::filesystem::path& path) override { return dead_ ? gone() : mutate(disk_->remove(path)); }
  Status remove_all(const std::filesystem::path& path) override { return dead_ ? gone() : mutate(disk_->remove_all(path)); }
  Result<std::vector<std::string>> list_directory(const std::filesystem::path& path) override {
    if (dead_) return gone();
    return disk_->list_directory(path);
  }
  bool exists(const std::filesystem::path& path) override { return !dead_ && disk_->exists(path); }
  bool is_directory(const std::filesystem::path& path) override { return !dead_ && disk_->is_directory(path); }
  Result<std::unique_ptr<FileLock>> lock(const std::filesystem::path& path) override {
    if (dead_) return gone();
    return disk_->lock(path);
  }

 private:
  static Status gone() { return Status(ErrorCode::io_error, "process is dead"); }
  Status mutate(Status status) {
    step();
    return status;
  }
  void step() {
    ++operations_;
    if (countdown_ > 0 && --countdown_ == 0) dead_ = true;
  }
  std::shared_ptr<FaultFileSystem> disk_;
  std::atomic<bool> dead_{false};
  std::atomic<std::uint64_t> countdown_{0};
  std::atomic<std::uint64_t> operations_{0};
};

// After a power loss no acked message is delivered again (fsync=always) and no message that
// was not acked is lost: it is delivered again (or is still ahead of the consumer).
TEST(ConsumerDurability, PowerLossKeepsEveryAckAndLosesNoUnackedMessage) {
  std::uint64_t acked_checked = 0;
  for (std::uint64_t seed = 1; seed <= 40; ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    std::mt19937_64 random(seed);
    auto disk = std::make_shared<FaultFileSystem>();
    auto process = std::make_shared<DyingFileSystem>(disk);
    auto store = open_store("/data", process);
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->create_stream(stream_config("orders", {"orders.>"}, 2)).is_ok());
    ASSERT_TRUE(store->consumers().create("orders", {.name = "billing", .ack_wait_ms = 50}).is_ok());
    std::set<std::pair<std::uint32_t, Offset>> published;
    std::set<std::pair<std::uint32_t, Offset>> acked;
    for (int round = 0; round < 3; ++round) {
      // Everything published and settled before a crash must survive it (fsync=always).
      for (int cycle = 0; cycle < 4; ++cycle) {
        const int count = 1 + static_cast<int>(random() % 20);
        for (int i = 0; i < count; ++i) {
          OutgoingMessage message;
          message.subject = "orders.created";
          message.payload = "x";
          auto positions = store->publish(message);
          ASSERT_TRUE(positions.is_ok()) << positions.status().to_string();
          published.insert({(*positions)[0].partition, (*positions)[0].offset});
        }
        auto batch = store->consumers().fetch("orders", "billing", {.max_messages = 1 + random() % 30});
        ASSERT_TRUE(batch.is_ok()) << batch.status().to_string();
        std::vector<std::string> tokens;
        std::vector<std::pair<std::uint32_t, Offset>> positions;
        for (const ConsumedMessage& consumed : *batch) {
          const std::pair<std::uint32_t, Offset> position{consumed.partition, consumed.message.offset};
          EXPECT_FALSE(acked.count(position)) << "acked message delivered again: " << position.first << "/" << position.second;
          if (random() % 3 != 0) {
            tokens.push_back(consumed.delivery.to_string());
            positions.push_back(position);
          }
        }
        auto results = store->consumers().settle("orders", "billing", AckKind::ack, tokens);
        ASSERT_TRUE(results.is_ok()) << results.status().to_string();
        for (std::size_t i = 0; i < tokens.size(); ++i) {
          if ((*results)[i].is_ok()) acked.insert(positions[i]);
        }
      }
      // Power loss while the store runs, then a new process.
      process->kill();
      disk->simulate_power_loss(seed * 10 + static_cast<std::uint64_t>(round), PowerLossMode::random);
      store.reset();
      process = std::make_shared<DyingFileSystem>(disk);
      store = open_store("/data", process);
      ASSERT_NE(store, nullptr);
    }
    // Drain: every published message that was not acked comes back; no acked one does.
    const auto delivered_after = drain(*store, "orders", "billing");
    for (const auto& position : delivered_after) {
      EXPECT_FALSE(acked.count(position)) << "acked message delivered again: " << position.first << "/" << position.second;
    }
    for (const auto& position : published) {
      if (acked.count(position)) {
        ++acked_checked;
        continue;
      }
      EXPECT_TRUE(delivered_after.count(position)) << "unacked message lost: " << position.first << "/" << position.second;
    }
    if (HasFailure()) return;
  }
  EXPECT_GT(acked_checked, 100u);
}

// A crash between any two file-system steps of opening a store with a consumer (load, replay,
// compaction into a new generation) and of the fetches and acks after it, then a power loss:
// the consumer is intact, no message acked (ok returned) is delivered again, none is lost.
TEST(ConsumerDurability, CrashAtEveryStepOfRecoveryAndCompaction) {
  std::uint64_t steps = 0;
  std::uint64_t crashes = 0;
  for (std::uint64_t crash_at = 1; steps == 0 || crash_at <= steps + 1; ++crash_at) {
    SCOPED_TRACE("crash after step " + std::to_string(crash_at));
    auto disk = std::make_shared<FaultFileSystem>();
    std::set<std::pair<std::uint32_t, Offset>> acked;
    {
      auto store = open_store("/data", disk);
      ASSERT_TRUE(store->create_stream(stream_config("orders", {"orders.>"}, 2)).is_ok());
      ASSERT_TRUE(store->consumers().create("orders", {.name = "billing", .ack_wait_ms = 30}).is_ok());
      for (int i = 0; i < 12; ++i) publish(*store, "orders.created", "m" + std::to_string(i));
      auto batch = fetch(*store, "orders", "billing", 8);
      for (std::size_t i = 0; i < batch.size(); i += 2) {
        ASSERT_TRUE(store->consumers().ack("orders", "billing", batch[i].delivery.to_string()).is_ok());
        acked.insert({batch[i].partition, batch[i].message.offset});
      }
    }
    auto process = std::make_shared<DyingFileSystem>(disk);
    process->die_after(crash_at);
    {
      StoreOptions options;
      options.file_system = process;
      options.background_maintenance = false;
      auto store = Store::open("/data", options);
      if (store) {
        // Loading the stream's consumers replays and compacts; then more fetches and acks.
        for (int round = 0; round < 3 && !process->dead(); ++round) {
          auto batch = (*store)->consumers().fetch("orders", "billing", {.max_messages = 3});
          if (!batch) break;
          for (const ConsumedMessage& consumed : *batch) {
            if ((*store)->consumers().ack("orders", "billing", consumed.delivery.to_string()).is_ok()) {
              acked.insert({consumed.partition, consumed.message.offset});
            }
          }
        }
      }
      if (!process->dead()) steps = process->operations();
      process->kill();
      disk->simulate_power_loss(crash_at, PowerLossMode::random);
    }
    if (process->operations() >= crash_at) ++crashes;
    auto store = open_store("/data", disk);
    ASSERT_NE(store, nullptr);
    auto info = store->consumers().describe("orders", "billing");
    ASSERT_TRUE(info.is_ok()) << info.status().to_string();
    auto delivered = drain(*store, "orders", "billing");
    for (const auto& position : delivered) {
      EXPECT_FALSE(acked.count(position)) << "acked message delivered again: " << position.first << "/" << position.second;
    }
    EXPECT_EQ(delivered.size() + acked.size(), 12u) << "a message that was not acked was lost";
    if (HasFailure()) return;
  }
  EXPECT_GT(steps, 10u);
  EXPECT_GE(crashes, steps);
}

// fsync=interval: an ack is durable once the interval sync that follows it ran. Acks older than
// that survive a power loss; newer ones may come back as redeliveries. The stream itself may
// lose its unsynced suffix, which takes the consumer's state for it along (clamped).
TEST(ConsumerDurability, PowerLossWithIntervalSyncKeepsAcksOlderThanTheInterval) {
  std::uint64_t old_acks_checked = 0;
  for (std::uint64_t seed = 1; seed <= 15; ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    std::mt19937_64 random(seed);
    auto disk = std::make_shared<FaultFileSystem>();
    auto process = std::make_shared<DyingFileSystem>(disk);
    auto store = open_store("/data", process);
    StreamConfig config = stream_config("orders", {"orders.>"});
    config.fsync = FsyncPolicy::interval;
    config.fsync_interval_ms = 20;
    ASSERT_TRUE(store->create_stream(config).is_ok());
    ASSERT_TRUE(store->consumers().create("orders", {.name = "billing", .ack_wait_ms = 30}).is_ok());
    std::set<Offset> old_acks;  // acked, then an interval sync (of log and state) certainly ran
    std::set<Offset> recent_acks;
    for (int cycle = 0; cycle < 4; ++cycle) {
      for (int i = 0; i < 10; ++i) publish(*store, "orders.created", "x");
      ASSERT_TRUE(store->run_maintenance().is_ok());  // the stream's own interval sync
      auto batch = fetch(*store, "orders", "billing", 1 + random() % 10);
      for (const ConsumedMessage& consumed : batch) {
        if (random() % 4 == 0) continue;
        ASSERT_TRUE(store->consumers().ack("orders", "billing", consumed.delivery.to_string()).is_ok());
        recent_acks.insert(consumed.message.offset);
      }
      if (random() % 2) {
        std::this_thread::sleep_for(milliseconds(120));  // several consumer timer passes
        old_acks.insert(recent_acks.begin(), recent_acks.end());
        recent_acks.clear();
      }
    }
    process->kill();
    disk->simulate_power_loss(seed, PowerLossMode::random);
    store.reset();
    store = open_store("/data", disk);
    ASSERT_NE(store, nullptr);
    const Offset end = *store->resolve_start("orders", 0, StartPosition::new_only());
    auto delivered = drain(*store, "orders", "billing");
    for (Offset offset : old_acks) {
      if (offset >= end) continue;  // the stream lost it (and the offset may be reused)
      ++old_acks_checked;
      EXPECT_FALSE(delivered.count({0, offset})) << "ack older than the interval lost: offset " << offset;
    }
    for (Offset offset = 0; offset < end; ++offset) {
      if (old_acks.count(offset) || recent_acks.count(offset)) continue;
      EXPECT_TRUE(delivered.count({0, offset})) << "unacked message lost: offset " << offset;
    }
    if (HasFailure()) return;
  }
  EXPECT_GT(old_acks_checked, 20u);
}

// EIO on the state log's fdatasync: the ack fails, and so does every later one (sticky);
// after a restart the acks that had succeeded are still there.
TEST(ConsumerDurability, SyncFailureIsStickyAndEarlierAcksSurvive) {
  auto disk = std::make_shared<FaultFileSystem>();
  std::set<std::pair<std::uint32_t, Offset>> acked;
  {
    auto store = open_store("/data", disk);
    ASSERT_TRUE(store->create_stream(stream_config("orders", {"orders.>"})).is_ok());
    ASSERT_TRUE(store->consumers().create("orders", {.name = "billing", .ack_wait_ms = 30}).is_ok());
    for (int i = 0; i < 6; ++i) publish(*store, "orders.created", "m");
    auto batch = fetch(*store, "orders", "billing", 6);
    ASSERT_EQ(batch.size(), 6u);
    ASSERT_TRUE(store->consumers().ack("orders", "billing", batch[0].delivery.to_string()).is_ok());
    acked.insert({0, 0});
    disk->fail_after(FaultFileSystem::Operation::sync, 1);
    EXPECT_EQ(store->consumers().ack("orders", "billing", batch[1].delivery.to_string()).code(), ErrorCode::log_failed);
    EXPECT_EQ(store->consumers().ack("orders", "billing", batch[2].delivery.to_string()).code(), ErrorCode::log_failed);
    EXPECT_EQ(store->consumers().fetch("orders", "billing", {}).status().code(), ErrorCode::log_failed);
  }
  disk->simulate_power_loss(5, PowerLossMode::drop_all_unsynced);
  auto store = open_store("/data", disk);
  auto delivered = drain(*store, "orders", "billing");
  EXPECT_EQ(delivered.size(), 5u);
  EXPECT_FALSE(delivered.count({0, 0}));
}

}  // namespace
}  // namespace msgstore
