#include "broker/broker.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/this_coro.hpp>

#include "log/message_policy.h"

namespace msgstore::broker {

// One waiting long poll: a timer on the waiter's own event loop. Wake-ups are posted to that
// loop, so the timer is only ever touched by the thread that runs its coroutine.
struct Broker::Waiter {
  explicit Waiter(const asio::any_io_executor& executor) : timer(executor) {}
  asio::steady_timer timer;
};

Broker::Broker(Store& store, BrokerOptions options)
    : store_(store), options_(options), workers_(options.worker_threads) {
  listener_ = store_.add_data_listener([this] { on_data(); });
}

Broker::~Broker() {
  stop();
  listener_.reset();  // waits for a listener call in progress; no more calls after this
  join();
}

void Broker::join() {
  stop();
  std::call_once(joined_, [this] {
    workers_.join();
    notifier_.join();
    std::unique_lock lock(answers_mutex_);
    answers_done_.wait(lock, [this] { return answers_pending_ == 0; });
  });
}

void Broker::stop() {
  if (stopping_.exchange(true)) return;
  wake_all();
}

bool Broker::admit() {
  const std::uint64_t in_flight = statistics_.worker_in_flight.fetch_add(1) + 1;
  if (in_flight > options_.worker_queue_max) {
    statistics_.worker_in_flight.fetch_sub(1);
    statistics_.worker_rejections.fetch_add(1);
    return false;
  }
  return true;
}

// Runs on a publisher's thread: set a flag and post at most one wake-up pass.
void Broker::on_data() {
  if (wake_pending_.exchange(true)) return;
  asio::post(notifier_, [this] {
    wake_pending_.store(false);
    wake_all();
  });
}

void Broker::wake_all() {
  std::lock_guard lock(waiters_mutex_);
  for (const std::shared_ptr<Waiter>& waiter : waiters_) {
    asio::post(waiter->timer.get_executor(), [waiter] { waiter->timer.cancel(); });
  }
}

asio::awaitable<void> Broker::wait_for_data(std::uint64_t seen_generation, std::chrono::steady_clock::time_point deadline) {
  if (stopping_.load() || std::chrono::steady_clock::now() >= deadline) co_return;
  auto waiter = std::make_shared<Waiter>(co_await asio::this_coro::executor);
  waiter->timer.expires_at(deadline);
  std::list<std::shared_ptr<Waiter>>::iterator registered;
  {
    std::lock_guard lock(waiters_mutex_);
    registered = waiters_.insert(waiters_.end(), waiter);
  }
  struct Unregister {
    Broker& broker;
    std::list<std::shared_ptr<Waiter>>::iterator registered;
    ~Unregister() {
      std::lock_guard lock(broker.waiters_mutex_);
      broker.waiters_.erase(registered);
    }
  } unregister{*this, registered};
  // A change between the caller's read and the registration above would not wake us: check
  // the generation after registering. Nothing suspends between this check and async_wait,
  // and wake-ups are posted to this same executor, so none can be lost.
  if (store_.data_generation() != seen_generation || stopping_.load()) co_return;
  statistics_.long_poll_waits.fetch_add(1);
  (void)co_await waiter->timer.async_wait(asio::as_tuple(asio::use_awaitable));
}

asio::awaitable<Status> Broker::create_stream(StreamConfig config) {
  co_return co_await run_blocking([&] { return store_.create_stream(config); });
}

asio::awaitable<Status> Broker::update_stream(StreamConfig config) {
  co_return co_await run_blocking([&] { return store_.update_stream(config); });
}

asio::awaitable<Result<std::vector<StreamConfig>>> Broker::list_streams() {
  co_return co_await run_blocking([&] { return Result<std::vector<StreamConfig>>(store_.list_streams()); });
}

asio::awaitable<Result<StreamInfo>> Broker::describe_stream(std::string name) {
  co_return co_await run_blocking([&] { return store_.describe_stream(name); });
}

asio::awaitable<Status> Broker::delete_stream(std::string name) {
  co_return co_await run_blocking([&] { return store_.delete_stream(name); });
}

namespace {

std::uint64_t payload_bytes(std::span<const OutgoingMessage> messages) {
  std::uint64_t bytes = 0;
  for (const OutgoingMessage& message : messages) bytes += message.payload.size();
  return bytes;
}

}  // namespace

void Broker::record_publish(bool succeeded, std::span<const OutgoingMessage> messages) {
  if (!succeeded) {
    statistics_.publish_failures.fetch_add(1);
    return;
  }
  statistics_.published_messages.fetch_add(messages.size());
  statistics_.published_bytes.fetch_add(payload_bytes(messages));
}

namespace {

// Publishes at most this large append on the event loop (publishes_on_event_loop).
constexpr std::size_t event_loop_publish_messages_max = 16;
constexpr std::size_t event_loop_publish_bytes_max = 64 * 1024;


// Small publishes without a message id or an expected offset append on the event loop: the
// append is a write to the page cache under the partition's lock, and the fdatasync runs on
// the store's sync threads. Anything that may take longer (large batches; a claim of a message
// id another publisher holds; an expected_key_offset check that reads an index) goes to the pool.
bool publishes_on_event_loop(std::span<const OutgoingMessage> messages) {
  if (messages.size() > event_loop_publish_messages_max) return false;
  std::size_t bytes = 0;
  for (const OutgoingMessage& message : messages) {
    if (message.message_id || message.expected_offset || message.expected_key_offset) return false;
    for (const HeaderView& header : message.headers) {
      if (log::header_name_equals(header.name, message_id_header)) return false;
      bytes += header.name.size() + header.value.size();
    }
    bytes += message.payload.size() + message.subject.size() + (message.key ? message.key->size() : 0);
  }
  return bytes <= event_loop_publish_bytes_max;
}

}  // namespace

asio::awaitable<Result<std::vector<Position>>> Broker::publish_without_blocking(std::string_view stream,
                                                                              std::span<const OutgoingMessage> messages) {
  using Positions = Result<std::vector<Position>>;
  const bool on_event_loop = publishes_on_event_loop(messages);
  if (!on_event_loop && !admit()) {
    co_return Status(ErrorCode::limit_exceeded, "the server is busy: " + std::to_string(options_.worker_queue_max) +
                                                    " store calls are already queued (worker_queue_max)");
  }
  // The store answers on a sync thread (or inline); the answer is posted to this coroutine's
  // executor, so the caller always resumes on its own event loop.
  std::shared_ptr<Positions> outcome = co_await asio::async_initiate<decltype(asio::use_awaitable), void(std::shared_ptr<Positions>)>(
      [this, stream, messages, on_event_loop](auto handler) {
        using Handler = decltype(handler);
        // The work guard keeps the caller's event loop running (and its io_context alive)
        // until the answer has been posted to it, not just until the post began.
        struct Waiting {
          std::optional<Handler> handler;
          asio::executor_work_guard<asio::associated_executor_t<Handler>> work;
        };
        auto waiting = std::make_shared<Waiting>(Waiting{std::nullopt, asio::make_work_guard(asio::get_associated_executor(handler))});
        waiting->handler.emplace(std::move(handler));
        {
          std::lock_guard lock(answers_mutex_);
          ++answers_pending_;
        }
        Store::PublishCallback done = [this, waiting](Positions result) {
          auto value = std::make_shared<Positions>(std::move(result));
          Handler resume = std::move(*waiting->handler);
          waiting->handler.reset();
          auto executor = asio::get_associated_executor(resume);
          asio::post(executor, [resume = std::move(resume), value]() mutable { std::move(resume)(std::move(value)); });
          waiting->work.reset();
          std::lock_guard lock(answers_mutex_);
          if (--answers_pending_ == 0) answers_done_.notify_all();
        };
        if (on_event_loop) {
          store_.publish_async(messages, stream, std::move(done));
          return;
        }
        // On the pool. If the pool drops the call unrun (it stopped at shutdown), the caller is
        // still answered, with an error value.
        struct PoolCall {
          Store* store;
          std::atomic<std::uint64_t>* in_flight;
          std::string_view stream;
          std::span<const OutgoingMessage> messages;
          Store::PublishCallback done;
          PoolCall(Store* store, std::atomic<std::uint64_t>* in_flight, std::string_view stream,
                   std::span<const OutgoingMessage> messages, Store::PublishCallback done)
              : store(store), in_flight(in_flight), stream(stream), messages(messages), done(std::move(done)) {}
          PoolCall(PoolCall&& other) noexcept
              : store(other.store), in_flight(other.in_flight), stream(other.stream), messages(other.messages),
                done(std::move(other.done)) {
            other.done = nullptr;
          }
          PoolCall(const PoolCall&) = delete;
          ~PoolCall() {
            if (!done) return;
            in_flight->fetch_sub(1);
            done(Status(ErrorCode::closed, "the server is shutting down: the publish was not run"));
          }
          void operator()() {
            Store::PublishCallback answer = std::move(done);
            done = nullptr;
            store->publish_async(messages, stream, std::move(answer));
            in_flight->fetch_sub(1);
          }
        };
        asio::post(workers_, PoolCall(&store_, &statistics_.worker_in_flight, stream, messages, std::move(done)));
      },
      asio::use_awaitable);
  co_return std::move(*outcome);
}

asio::awaitable<Result<std::vector<Position>>> Broker::publish_to(std::string stream,
                                                                  std::span<const OutgoingMessage> messages) {
  const auto started = std::chrono::steady_clock::now();
  auto positions = co_await publish_without_blocking(stream, messages);
  statistics_.publish_latency.observe(std::chrono::steady_clock::now() - started);
  record_publish(positions.is_ok(), messages);
  co_return positions;
}

asio::awaitable<Result<std::vector<Position>>> Broker::publish(std::span<const OutgoingMessage> messages) {
  const auto started = std::chrono::steady_clock::now();
  auto positions = co_await publish_without_blocking({}, messages);
  statistics_.publish_latency.observe(std::chrono::steady_clock::now() - started);
  record_publish(positions.is_ok(), messages);
  co_return positions;
}

asio::awaitable<Result<QueryPage>> Broker::query(Query query, QueryEncoder encode, std::size_t encoded_bytes_max) {
  statistics_.queries.fetch_add(1);
  auto page = co_await run_blocking([&]() -> Result<QueryPage> {
    QueryPage page;
    std::size_t encoded_bytes = 0;
    auto result = store_.query(query, [&](const QueryMatch& match) {
      page.encoded.push_back(encode(match));
      encoded_bytes += page.encoded.back().size();
      // Stopping here counts this match as delivered: the cursor continues after it.
      return encoded_bytes >= encoded_bytes_max ? ScanControl::stop : ScanControl::proceed;
    });
    if (!result) return result.status();
    page.result = std::move(*result);
    return page;
  });
  if (page) statistics_.queried_messages.fetch_add(page->encoded.size());
  co_return page;
}

asio::awaitable<Result<ReadResult>> Broker::fetch(FetchRequest request) {
  statistics_.fetch_requests.fetch_add(1);
  const auto deadline = std::chrono::steady_clock::now() + request.wait;
  auto from = co_await run_blocking([&] { return store_.resolve_start(request.stream, request.partition, request.start); });
  if (!from) co_return from.status();
  for (;;) {
    const std::uint64_t generation = store_.data_generation();
    auto result = co_await run_blocking([&] {
      return store_.read(request.stream, request.partition, *from, request.read_options);
    });
    if (!result) co_return result;
    if (!result->messages.empty() || request.wait.count() <= 0 || stopping_.load() ||
        std::chrono::steady_clock::now() >= deadline) {
      statistics_.fetched_messages.fetch_add(result->messages.size());
      std::uint64_t bytes = 0;
      for (const Message& message : result->messages) bytes += message.payload.size();
      statistics_.fetched_bytes.fetch_add(bytes);
      co_return result;
    }
    // Nothing yet: retention may have moved the log start past `from` while we waited, in
    // which case read() reports it and the caller sees offset_out_of_range.
    co_await wait_for_data(generation, deadline);
  }
}

}  // namespace msgstore::broker
