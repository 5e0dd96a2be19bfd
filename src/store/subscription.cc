// Subscriptions: one delivery thread per subscription that reads the log itself. Replay and
// live delivery are the same loop (read from the cursor up to the high watermark, then wait for
// the watermark to move), so the switch from history to live can neither skip nor repeat a
// message. The only buffer is one read step (batch_messages_max), so a slow handler costs
// memory for that step alone and never holds up publishers; it simply lags, reading from disk.
#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <thread>

#include "base/subject.h"
#include "store/store_impl.h"

namespace msgstore {
namespace {

constexpr std::chrono::milliseconds idle_recheck{100};  // also picks up new streams

class SubscriptionImpl final : public Subscription {
 public:
  SubscriptionImpl(std::shared_ptr<StoreImpl> store, SubscribeOptions options, SubscriptionHandler handler)
      : store_(std::move(store)), options_(std::move(options)), handler_(std::move(handler)) {}

  ~SubscriptionImpl() override { cancel(); }

  // Resolves where each existing partition starts, synchronously, so "new only" means new
  // after subscribe() returned.
  Status start() {
    auto table = store_->streams();
    if (!options_.stream.empty() && !table->count(options_.stream)) {
      return Status(ErrorCode::stream_not_found, "stream '" + options_.stream + "' does not exist");
    }
    for (const auto& [name, stream] : *table) {
      if (!wanted(name)) continue;
      for (std::uint32_t partition = 0; partition < stream->partitions.size(); ++partition) {
        auto offset = store_->resolve_start(name, partition, options_.start);
        if (!offset) return offset.status();
        cursors_[{name, partition}] = Cursor{stream->partitions[partition], *offset};
      }
    }
    thread_ = std::thread([this] { run(); });
    return Status::ok();
  }

  void cancel() override {
    cancelled_.store(true);
    store_->notify_data();
    std::lock_guard lock(join_mutex_);  // two cancelling threads must not both join
    if (thread_.joinable() && thread_.get_id() != std::this_thread::get_id()) thread_.join();
  }

  std::uint64_t delivered() const override { return delivered_.load(); }
  std::uint64_t skipped() const override { return skipped_.load(); }
  Status status() const override {
    std::lock_guard lock(mutex_);
    return status_;
  }
  bool wait_for_delivered(std::uint64_t count, std::chrono::milliseconds timeout) const override {
    std::unique_lock lock(mutex_);
    return progress_.wait_for(lock, timeout, [&] { return delivered_.load() >= count || !status_.is_ok(); }) &&
           delivered_.load() >= count;
  }

 private:
  bool wanted(const std::string& stream) const { return options_.stream.empty() || options_.stream == stream; }

  void stop_with(Status status) {
    std::lock_guard lock(mutex_);
    status_ = std::move(status);
    progress_.notify_all();
  }

  void run() {
    const std::size_t batch = std::clamp<std::size_t>(options_.batch_messages_max, 1, limits::subscription_read_messages_max);
    while (!cancelled_.load()) {
      if (store_->is_closed()) {
        stop_with(Status(ErrorCode::closed, "store closed"));
        return;
      }
      const std::uint64_t generation = store_->data_generation();
      auto table = store_->streams();
      // Streams created after the subscription started are read from their beginning.
      for (auto it = cursors_.begin(); it != cursors_.end();) {
        it = table->count(it->first.first) ? std::next(it) : cursors_.erase(it);
      }
      bool progressed = false;
      for (const auto& [stream_name, stream] : *table) {
        const std::string& name = stream_name;  // a plain reference: lambdas cannot capture bindings in C++20
        if (!wanted(name) || cancelled_.load()) continue;
        for (std::uint32_t partition = 0; partition < stream->partitions.size(); ++partition) {
          const auto& log = stream->partitions[partition];
          auto [cursor, inserted] = cursors_.try_emplace({name, partition}, Cursor{log, log->log_start_offset()});
          // A stream deleted and re-created under the same name (between two looks at the
          // table) is a new log: read it from its beginning, not from the old log's cursor.
          if (cursor->second.log != log) cursor->second = Cursor{log, log->log_start_offset()};
          Offset& next = cursor->second.next;
          if (next < log->log_start_offset()) {
            skipped_ += log->log_start_offset() - next;  // retention removed them first
            next = log->log_start_offset();
          }
          if (next >= log->high_watermark()) continue;
          auto result = log->scan(next, batch, limits::subscription_read_bytes_max, [&](const MessageView& message) {
            if (cancelled_.load()) return false;
            if (base::subject_matches(options_.subject_pattern, message.subject)) {
              handler_(Delivery{name, partition, message});
              delivered_.fetch_add(1);
              std::lock_guard lock(mutex_);
              progress_.notify_all();
            }
            next = message.offset + 1;
            return true;
          });
          if (!result) {
            if (result.status().code() == ErrorCode::offset_out_of_range) {
              progressed = true;  // re-evaluated against the new log start next round
              continue;
            }
            stop_with(result.status());
            return;
          }
          if (*result > next) next = *result;
          progressed = true;
        }
      }
      if (!progressed) store_->wait_for_data(generation, idle_recheck);
    }
  }

  std::shared_ptr<StoreImpl> store_;
  SubscribeOptions options_;
  SubscriptionHandler handler_;
  struct Cursor {
    std::shared_ptr<log::PartitionLog> log;  // which log the offset belongs to
    Offset next = 0;
  };
  std::map<std::pair<std::string, std::uint32_t>, Cursor> cursors_;  // owned by the delivery thread
  std::atomic<bool> cancelled_{false};
  std::atomic<std::uint64_t> delivered_{0};
  std::atomic<std::uint64_t> skipped_{0};
  mutable std::mutex mutex_;
  mutable std::condition_variable progress_;
  Status status_;
  std::mutex join_mutex_;
  std::thread thread_;
};

}  // namespace

Result<std::unique_ptr<Subscription>> StoreImpl::subscribe(SubscribeOptions options, SubscriptionHandler handler) {
  if (closed_) return Status(ErrorCode::closed, "store is closed");
  if (!handler) return Status(ErrorCode::invalid_argument, "subscription needs a handler");
  MSGSTORE_RETURN_IF_ERROR(base::validate_subject_pattern(options.subject_pattern));
  auto subscription = std::make_unique<SubscriptionImpl>(shared_from_this(), std::move(options), std::move(handler));
  MSGSTORE_RETURN_IF_ERROR(subscription->start());
  return std::unique_ptr<Subscription>(std::move(subscription));
}

}  // namespace msgstore
