// broker/broker.h: the protocol-neutral core every network front end calls.
//
// The HTTP handlers (src/server) and the later Kafka and MQTT front ends translate their wire
// requests into Broker calls and the results back; nothing here knows about HTTP. The broker
// owns the two things every front end needs around the embedded Store:
//   * a bounded pool of worker threads for blocking Store calls (reads, queries, admin).
//     Calls beyond worker_queue_max fail fast with limit_exceeded instead of queueing
//     without bound. Publishing appends on the event loop (small publishes) or the pool and
//     waits for fdatasync as a completion from the store's sync threads
//     (Store::publish_async), so concurrent publishers share each fdatasync (group commit)
//     without a blocked thread each.
//   * long polls: fetch(wait_ms) waits on an Asio timer that a Store data listener wakes.
//     The listener only sets a flag and posts (coalesced: one wake-up pass however many
//     publishes happened meanwhile); it never blocks a publisher.
//
// Coroutines: every operation is an asio::awaitable that resumes on the caller's executor
// (an event loop), so front ends `co_await broker.publish_to(...)`.
//
// Lifetime and threads: construct after the Store, call stop() before the event loops stop,
// destroy before the Store. Every method may be called from any event-loop thread.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "base/latency_histogram.h"
#include "msgstore/query.h"
#include "msgstore/status.h"
#include "msgstore/store.h"

namespace msgstore::broker {

namespace asio = boost::asio;

struct BrokerOptions {
  std::uint32_t worker_threads = 64;
  std::uint32_t worker_queue_max = 4096;
};

// Counters every front end feeds (publish/fetch counts and bytes); read by /metrics.
struct BrokerStatistics {
  std::atomic<std::uint64_t> published_messages{0};
  std::atomic<std::uint64_t> published_bytes{0};  // payload bytes
  std::atomic<std::uint64_t> publish_failures{0};
  // Store appends the broker made for publishes: fewer than publishes when the publishes one
  // event loop handled in one pass were combined (broker.cc, "Combined publishes").
  std::atomic<std::uint64_t> store_appends{0};
  std::atomic<std::uint64_t> fetched_messages{0};
  std::atomic<std::uint64_t> fetched_bytes{0};    // payload bytes
  std::atomic<std::uint64_t> fetch_requests{0};
  std::atomic<std::uint64_t> long_poll_waits{0};  // fetches that had to wait for data
  std::atomic<std::uint64_t> worker_rejections{0};  // blocking calls refused: queue full
  std::atomic<std::uint64_t> worker_in_flight{0};   // blocking calls queued or running now
  // Publish calls from entering the worker queue to the store's answer (fsync included).
  LatencyHistogram publish_latency;
  std::atomic<std::uint64_t> queries{0};            // query calls, failed ones included
  std::atomic<std::uint64_t> queried_messages{0};   // matches returned by queries
};

// One page of a query, each match already encoded by the caller's `encode` on the worker.
struct QueryPage {
  std::vector<std::string> encoded;
  QueryResult result;  // next_cursor and statistics
};

// Turns one match into the front end's wire text (runs on a worker thread).
using QueryEncoder = std::function<std::string(const QueryMatch& match)>;

struct FetchRequest {
  std::string stream;
  std::uint32_t partition = 0;
  StartPosition start = StartPosition::from_beginning();
  ReadOptions read_options;
  std::chrono::milliseconds wait{0};  // long poll: wait up to this long for a first message
};

class Broker {
 public:
  Broker(Store& store, BrokerOptions options);
  ~Broker();  // stop() and join the worker threads
  Broker(const Broker&) = delete;
  Broker& operator=(const Broker&) = delete;

  Store& store() { return store_; }
  BrokerStatistics& statistics() { return statistics_; }

  // Streams.
  asio::awaitable<Status> create_stream(StreamConfig config);
  asio::awaitable<Status> update_stream(StreamConfig config);
  asio::awaitable<Result<std::vector<StreamConfig>>> list_streams();
  asio::awaitable<Result<StreamInfo>> describe_stream(std::string name);
  asio::awaitable<Status> delete_stream(std::string name);

  // Publishing. The messages' views must stay valid until the call completes (they live in
  // the caller's coroutine frame). Positions come in message order (Position::message_index).
  asio::awaitable<Result<std::vector<Position>>> publish_to(std::string stream, std::span<const OutgoingMessage> messages);
  asio::awaitable<Result<std::vector<Position>>> publish(std::span<const OutgoingMessage> messages);

  // Reads one partition from a start position; with request.wait > 0 and nothing readable,
  // waits until a message is readable, the wait ends, or the broker stops.
  asio::awaitable<Result<ReadResult>> fetch(FetchRequest request);

  // Runs Store::query on the worker pool, encoding each match there. Stops after the match that
  // brings the encoded text to `encoded_bytes_max` (so a page holds at least one match and
  // overshoots by at most one), and then the page's next_cursor continues after it.
  asio::awaitable<Result<QueryPage>> query(Query query, QueryEncoder encode, std::size_t encoded_bytes_max);

  // Waits (on the caller's executor) until the store's data generation moves past
  // `seen_generation`, `deadline` passes, or the broker stops. For front ends that long-poll
  // something other than fetch (durable consumers, live streams).
  asio::awaitable<void> wait_for_data(std::uint64_t seen_generation, std::chrono::steady_clock::time_point deadline);

  // Runs `function` (a blocking Store call returning Status or Result<T>) on the worker pool
  // and resumes the caller on its own executor. Fails with limit_exceeded when
  // worker_queue_max calls are already queued or running.
  template <typename Function>
  asio::awaitable<std::invoke_result_t<Function&>> run_blocking(Function function);

  // Wakes every long poll and refuses new waits (they return at once). Idempotent.
  void stop();
  bool stopping() const { return stopping_.load(); }
  // stop(), then wait for the blocking calls in progress to finish and for every publish the
  // store has not answered yet (its fdatasync in progress) to be answered. Idempotent.
  void join();

 private:
  struct Waiter;
  void on_data();
  void wake_all();
  bool admit();
  void record_publish(bool succeeded, std::span<const OutgoingMessage> messages);
  // Store::publish_async, on this event loop or the pool (see broker.cc), resuming here.
  asio::awaitable<Result<std::vector<Position>>> publish_without_blocking(std::string_view stream,
                                                                          std::span<const OutgoingMessage> messages);

  // Publish combining (broker.cc, "Combined publishes"): the small publishes to one stream
  // that an event loop handles in one pass of its ready handlers go to the store as one append,
  // so they share one write(), one durability wait and one answer post.
  struct PublishWaiter {  // resumes one publisher; answer() runs on the publisher's event loop
    virtual ~PublishWaiter() = default;
    virtual void answer(Result<std::vector<Position>> result) = 0;
  };
  struct CombinedPublish {
    std::string_view stream;
    std::span<const OutgoingMessage> messages;
    std::unique_ptr<PublishWaiter> waiter;
  };
  struct PublishPass;   // the publishes one event loop collected since its last flush
  struct PublishGroup;  // one store append: consecutive publishes to one stream
  struct PoolPublish;   // a publish too large for the event loop, on the pool
  void combine_publish(const asio::any_io_executor& executor, CombinedPublish publish);
  void flush_publishes(PublishPass& pass);
  void submit_publishes(const asio::any_io_executor& executor, std::string_view stream,
                        std::vector<CombinedPublish> publishes);
  void deliver_publishes(PublishGroup& group, Result<std::vector<Position>> result);
  // This thread's pass (weak: the flush posted to the loop owns it).
  static thread_local std::weak_ptr<PublishPass> current_publish_pass_;

  Store& store_;
  BrokerOptions options_;
  BrokerStatistics statistics_;
  asio::thread_pool workers_;
  asio::thread_pool notifier_{1};  // runs the coalesced wake-up passes
  std::atomic<bool> wake_pending_{false};
  // Store appends whose answer the store has not posted yet: join() waits for them (atomic
  // wait), so no answer is ever posted to an event loop that is being destroyed.
  std::atomic<std::uint64_t> answers_pending_{0};
  // Long polls registered in waiters_: with none, a data notification posts nothing.
  std::atomic<std::uint64_t> waiter_count_{0};
  std::atomic<bool> stopping_{false};
  std::once_flag joined_;
  std::mutex waiters_mutex_;
  std::list<std::shared_ptr<Waiter>> waiters_;
  std::unique_ptr<DataListenerHandle> listener_;
};

template <typename Function>
asio::awaitable<std::invoke_result_t<Function&>> Broker::run_blocking(Function function) {
  using Value = std::invoke_result_t<Function&>;
  if (!admit()) {
    co_return Value(Status(ErrorCode::limit_exceeded,
                           "the server is busy: " + std::to_string(options_.worker_queue_max) +
                               " store calls are already queued (worker_queue_max)"));
  }
  struct Release {
    BrokerStatistics& statistics;
    ~Release() { statistics.worker_in_flight.fetch_sub(1); }
  } release{statistics_};
  // co_spawn needs a default-constructible result; Status and Result<T> are not.
  // as_tuple: a call the pool abandons (it stopped during shutdown) comes back as an error value,
  // never as an exception thrown into the caller's event loop or into the pool's destructor.
  auto [failure, value] = co_await asio::co_spawn(
      workers_.get_executor(), [&function]() -> asio::awaitable<std::optional<Value>> { co_return function(); },
      // No cancellation slot: a cancelled caller (its connection closed, the server stopping)
      // must not cancel the child on the pool, whose entry would then throw on a pool thread
      // (std::terminate). A blocking store call runs to its end anyway.
      asio::bind_cancellation_slot(asio::cancellation_slot(), asio::as_tuple(asio::use_awaitable)));
  if (failure || !value) {
    co_return Value(Status(ErrorCode::closed, "the server is shutting down: the store call was not run"));
  }
  co_return std::move(*value);
}

}  // namespace msgstore::broker
