#include "msgstore_workloads.h"

#include <algorithm>
#include <atomic>
#include <latch>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "msgstore/store.h"

namespace msgstore::bench {
namespace {

constexpr const char* stream_name = "bench";
constexpr const char* subject = "bench.messages";
constexpr std::size_t replay_page_messages = 1000;
// The replay callback looks at the clock once per this many messages.
constexpr std::uint64_t replay_clock_check_messages = 4096;

bool indexes_enabled = false;  // set_msgstore_indexes

Result<std::unique_ptr<Store>> open_store_with_stream(const std::filesystem::path& directory, FsyncPolicy fsync) {
  auto store = Store::open(directory);
  if (!store) return store.status();
  StreamConfig config;
  config.name = stream_name;
  config.subjects = {"bench.>"};
  config.partitions = 1;
  config.fsync = fsync;
  config.indexes_enabled = indexes_enabled;
  Status created = (*store)->create_stream(config);
  if (!created.is_ok()) return created;
  return store;
}

std::string close_store(std::unique_ptr<Store>& store) {
  if (!store) return {};
  Status closed = store->close();
  store.reset();
  return closed.is_ok() ? std::string() : "close: " + closed.to_string();
}

RunResult replay(const Store& store, std::uint64_t expected_messages, ReplayShape shape, const RunLimits& limits) {
  RunResult result;
  const std::uint64_t messages_max = std::min(expected_messages, limits.messages_max);
  const double cpu_begin = process_cpu_seconds();
  const auto begin = SteadyClock::now();
  const auto deadline = deadline_after(begin, limits.seconds_max);
  Offset next = 0;
  bool out_of_time = false;
  while (result.messages < messages_max && !out_of_time) {
    const std::size_t call_messages = shape == ReplayShape::single_scan
                                          ? static_cast<std::size_t>(messages_max - result.messages)
                                          : std::min<std::size_t>(replay_page_messages, messages_max - result.messages);
    auto scanned = store.scan(stream_name, 0, next, call_messages, [&](const MessageView& message) {
      result.payload_checksum += PayloadSource::touched_byte(message.payload);
      ++result.messages;
      if (result.messages % replay_clock_check_messages == 0 && SteadyClock::now() >= deadline) {
        out_of_time = true;
        return ScanControl::stop;
      }
      return ScanControl::proceed;
    });
    if (!scanned) {
      result.error = "scan: " + scanned.status().to_string();
      break;
    }
    if (*scanned == next && !out_of_time) {
      result.error = "scan made no progress at offset " + std::to_string(next);
      break;
    }
    next = *scanned;
    if (SteadyClock::now() >= deadline) out_of_time = true;
  }
  result.elapsed_seconds = seconds_between(begin, SteadyClock::now());
  result.cpu_seconds = process_cpu_seconds() - cpu_begin;
  result.time_bound_hit = out_of_time && result.messages < messages_max;
  return result;
}

}  // namespace

MsgstorePublishRun msgstore_publish(const std::filesystem::path& directory, const PayloadSource& payloads,
                                    std::size_t batch_messages, FsyncPolicy fsync, const RunLimits& limits,
                                    bool replay_after, const RunLimits& replay_limits) {
  MsgstorePublishRun run;
  auto store = open_store_with_stream(directory, fsync);
  if (!store) {
    run.publish.error = "open: " + store.status().to_string();
    return run;
  }
  std::vector<OutgoingMessage> batch(batch_messages);
  for (OutgoingMessage& message : batch) message.subject = subject;

  std::uint64_t next_index = 0;
  run.publish = run_batches(limits.messages_max, batch_messages, deadline_after(SteadyClock::now(), limits.seconds_max), next_index,
                            [&](std::uint64_t first_index, std::uint64_t count) -> std::string {
                              for (std::uint64_t index = 0; index < count; ++index) {
                                batch[index].key = payloads.key(first_index + index);
                                batch[index].payload = payloads.payload(first_index + index);
                              }
                              auto positions = (*store)->publish_batch(std::span<const OutgoingMessage>(batch.data(), count));
                              if (!positions) return "publish_batch: " + positions.status().to_string();
                              ++run.batches;
                              return {};
                            });
  RunResult& publish = run.publish;

  if (replay_after && publish.ok()) {
    run.replay_single_scan = replay(**store, publish.messages, ReplayShape::single_scan, replay_limits);
    run.replay_pages_of_1000 = replay(**store, publish.messages, ReplayShape::pages_of_1000, replay_limits);
  }
  Status closed = (*store)->close();
  if (!closed.is_ok() && publish.ok()) publish.error = "close: " + closed.to_string();
  store->reset();
  publish.bytes_written = file_bytes_with_suffix(directory, ".log");
  return run;
}

namespace {

class MsgstoreBatchSession final : public PublishSession {
 public:
  MsgstoreBatchSession(const PayloadSource& payloads, std::size_t batch_messages, FsyncPolicy fsync)
      : payloads_(payloads), fsync_(fsync), batch_(batch_messages) {
    for (OutgoingMessage& message : batch_) message.subject = subject;
  }
  std::string name() const override { return "msgstore"; }
  std::string open(const std::filesystem::path& directory) override {
    auto store = open_store_with_stream(directory, fsync_);
    if (!store) return "open: " + store.status().to_string();
    store_ = std::move(*store);
    return {};
  }
  RunResult run_slice(std::uint64_t messages, SteadyClock::time_point deadline) override {
    return run_batches(messages, batch_.size(), deadline, next_index_, [&](std::uint64_t first_index, std::uint64_t count) -> std::string {
      for (std::uint64_t index = 0; index < count; ++index) {
        batch_[index].key = payloads_.key(first_index + index);
        batch_[index].payload = payloads_.payload(first_index + index);
      }
      auto positions = store_->publish_batch(std::span<const OutgoingMessage>(batch_.data(), count));
      if (!positions) return "publish_batch: " + positions.status().to_string();
      return {};
    });
  }
  std::string close() override { return close_store(store_); }

 private:
  const PayloadSource& payloads_;
  FsyncPolicy fsync_;
  std::vector<OutgoingMessage> batch_;
  std::unique_ptr<Store> store_;
  std::uint64_t next_index_ = 0;
};

class MsgstoreConcurrentSession final : public PublishSession {
 public:
  MsgstoreConcurrentSession(const PayloadSource& payloads, unsigned threads, FsyncPolicy fsync)
      : payloads_(payloads), threads_(threads), fsync_(fsync) {}
  std::string name() const override { return "msgstore"; }
  std::string open(const std::filesystem::path& directory) override {
    auto store = open_store_with_stream(directory, fsync_);
    if (!store) return "open: " + store.status().to_string();
    store_ = std::move(*store);
    return {};
  }
  RunResult run_slice(std::uint64_t messages, SteadyClock::time_point deadline) override {
    return run_concurrently(threads_, messages, deadline, next_index_, [&](unsigned, std::uint64_t index, std::string& error) {
      OutgoingMessage message;
      message.subject = subject;
      message.key = payloads_.key(index);
      message.payload = payloads_.payload(index);
      auto positions = store_->publish(message);
      if (!positions) error = "publish: " + positions.status().to_string();
      return positions.is_ok();
    });
  }
  std::string close() override { return close_store(store_); }

 private:
  const PayloadSource& payloads_;
  unsigned threads_;
  FsyncPolicy fsync_;
  std::unique_ptr<Store> store_;
  std::uint64_t next_index_ = 0;
};

}  // namespace

void set_msgstore_indexes(bool enabled) { indexes_enabled = enabled; }

std::unique_ptr<PublishSession> make_msgstore_batch_session(const PayloadSource& payloads, std::size_t batch_messages,
                                                            FsyncPolicy fsync) {
  return std::make_unique<MsgstoreBatchSession>(payloads, batch_messages, fsync);
}

std::unique_ptr<PublishSession> make_msgstore_concurrent_session(const PayloadSource& payloads, unsigned threads,
                                                                 FsyncPolicy fsync) {
  return std::make_unique<MsgstoreConcurrentSession>(payloads, threads, fsync);
}

}  // namespace msgstore::bench
