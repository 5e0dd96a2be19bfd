// The Backend over the embedded store: every call is the Store call of the same name.
#include <atomic>

#include "cli/backend.h"

namespace msgstore::cli {
namespace {

class LocalBackend final : public Backend {
 public:
  explicit LocalBackend(std::unique_ptr<Store> store) : store_(std::move(store)) {}

  Status create_stream(const StreamConfig& config, const std::vector<std::string>&) override {
    return store_->create_stream(config);
  }
  Status update_stream(const StreamConfig& config, const std::vector<std::string>&) override {
    return store_->update_stream(config);
  }
  Result<std::vector<StreamConfig>> list_streams(StreamConfigFields*) override { return store_->list_streams(); }
  Result<StreamInfo> describe_stream(std::string_view name, StreamConfigFields*) override {
    return store_->describe_stream(name);
  }
  Status delete_stream(std::string_view name) override { return store_->delete_stream(name); }

  Result<std::vector<Position>> publish_batch(std::span<const OutgoingMessage> messages) override {
    return store_->publish_batch(messages);
  }

  Status read_partition(std::string_view stream, std::uint32_t partition, const StartPosition& start,
                        const MessageCallback& callback) override {
    constexpr std::size_t scan_messages = 1024;
    auto from = store_->resolve_start(stream, partition, start);
    if (!from) return from.status();
    Offset next = *from;
    bool stopped = false;
    while (!stopped) {
      auto scanned = store_->scan(stream, partition, next, scan_messages, [&](const MessageView& message) {
        if (callback(message) == ScanControl::stop) stopped = true;
        return stopped ? ScanControl::stop : ScanControl::proceed;
      });
      if (!scanned) return scanned.status();
      if (*scanned <= next) break;  // reached the end of what is readable
      next = *scanned;
    }
    return Status::ok();
  }

  // The stop signals must be blocked in every thread before the store started its threads
  // (run_read does that), so they wait for stop_wait's sigtimedwait instead of killing us.
  Status follow(const FollowRequest& request, const DeliveryCallback& deliver, const StopWait& stop_wait) override {
    SubscribeOptions options;
    options.stream = request.stream;
    options.start = request.start;
    // The subscription applies one start to every partition. An offset only makes sense for
    // the one partition asked for: start the others anywhere valid and drop what is below it.
    std::optional<Offset> minimum_offset;
    if (request.partition && request.start.kind == StartPosition::Kind::offset && request.partition_count > 1) {
      auto valid = store_->resolve_start(request.stream, *request.partition, request.start);
      if (!valid) return valid.status();
      minimum_offset = request.start.offset;
      options.start = StartPosition::from_beginning();
    }
    std::atomic<bool> finished{false};
    auto subscription = store_->subscribe(options, [&](const Delivery& delivery) {
      if (finished.load()) return;
      if (request.partition && delivery.partition != *request.partition) return;
      if (minimum_offset && delivery.message.offset < *minimum_offset) return;
      if (deliver(delivery.stream, delivery.partition, delivery.message) == ScanControl::stop) finished = true;
    });
    if (!subscription) return subscription.status();
    constexpr std::chrono::milliseconds poll_interval{50};
    Status result;
    while (!finished.load()) {
      result = (*subscription)->status();
      if (!result.is_ok()) break;
      if (stop_wait(poll_interval)) break;
    }
    (*subscription)->cancel();
    return result;
  }

  Result<QueryResult> query(const Query& query, const QueryCallback& callback) override {
    return store_->query(query, callback);
  }

  Status close() override { return store_->close(); }

 private:
  std::unique_ptr<Store> store_;
};

}  // namespace

std::unique_ptr<Backend> make_local_backend(std::unique_ptr<Store> store) {
  return std::make_unique<LocalBackend>(std::move(store));
}

}  // namespace msgstore::cli
