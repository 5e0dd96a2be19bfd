#include "broker/broker.h"

#include <algorithm>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/this_coro.hpp>

#include "log/message_policy.h"
#include "msgstore/limits.h"

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
    for (std::uint64_t pending = answers_pending_.load(); pending != 0; pending = answers_pending_.load()) {
      answers_pending_.wait(pending);
    }
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
  // seq_cst here and in wait_for_data (register, then read the generation): a waiter that
  // registers concurrently either sees the new generation or is counted here.
  if (waiter_count_.load() == 0) return;
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
  waiter_count_.fetch_add(1);
  struct Unregister {
    Broker& broker;
    std::list<std::shared_ptr<Waiter>>::iterator registered;
    ~Unregister() {
      broker.waiter_count_.fetch_sub(1);
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

// A publish too large for the event loop, run on the pool alone. If the pool drops it unrun (it
// stopped at shutdown), the publisher is still answered, with an error value.
struct Broker::PoolPublish {
  Broker* broker;
  asio::any_io_executor executor;
  std::optional<CombinedPublish> publish;
  PoolPublish(Broker* broker, asio::any_io_executor executor, CombinedPublish publish)
      : broker(broker), executor(std::move(executor)), publish(std::move(publish)) {}
  PoolPublish(PoolPublish&& other) noexcept
      : broker(other.broker), executor(std::move(other.executor)), publish(std::move(other.publish)) {
    other.publish.reset();
  }
  PoolPublish(const PoolPublish&) = delete;
  ~PoolPublish() {
    if (!publish) return;
    broker->statistics_.worker_in_flight.fetch_sub(1);
    std::unique_ptr<PublishWaiter> waiter = std::move(publish->waiter);
    asio::post(executor, [waiter = std::move(waiter)]() mutable {
      waiter->answer(Status(ErrorCode::closed, "the server is shutting down: the publish was not run"));
    });
  }
  void operator()() {
    const std::string_view stream = publish->stream;
    std::vector<CombinedPublish> alone;
    alone.push_back(std::move(*publish));
    publish.reset();
    broker->submit_publishes(executor, stream, std::move(alone));
    broker->statistics_.worker_in_flight.fetch_sub(1);
  }
};

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
        struct Waiter final : PublishWaiter {
          explicit Waiter(Handler handler) : handler(std::move(handler)) {}
          void answer(Positions result) override { std::move(handler)(std::make_shared<Positions>(std::move(result))); }
          Handler handler;
        };
        const asio::any_io_executor executor = asio::get_associated_executor(handler);
        CombinedPublish publish{stream, messages, std::make_unique<Waiter>(std::move(handler))};
        if (on_event_loop) {
          combine_publish(executor, std::move(publish));
          return;
        }
        asio::post(workers_, PoolPublish(this, executor, std::move(publish)));
      },
      asio::use_awaitable);
  co_return std::move(*outcome);
}

// ---- Combined publishes ------------------------------------------------------------------------
//
// An event loop runs, one after another, the handlers of every connection that was readable
// when it last polled. Each small publish among them is queued in the loop's current pass
// instead of going to the store at once; the first one posts the pass's flush, which runs
// after the handlers already queued, so every publish those connections carried is in the pass
// by then. The flush appends each stream's share as one batch: one write(), one wait for the
// fdatasync, one post of the answers back to the loop (instead of one each). No publish waits
// for a timer or for a later one: a lone publish flushes right after its own handler.
//
// The outcome is the one each publish would have had alone. The store refuses bad input
// before it writes anything, so when a combined append is refused for a reason of input (a bad
// subject, an oversize message, an unknown stream), each publish is retried alone and gets its
// own answer; a failure of the log (full disk, I/O error, closing) is every publisher's answer,
// as it would have been alone. Each publisher gets its messages' positions, in message order.

namespace {

// Publishes per combined append. Each is at most event_loop_publish_messages_max messages and
// event_loop_publish_bytes_max bytes, so a group stays far below one on-disk batch and the
// store never splits it: a client's batch stays one atomic append.
constexpr std::size_t combined_publishes_max = 256;
static_assert(combined_publishes_max * (event_loop_publish_bytes_max + event_loop_publish_messages_max * 1024) <
              limits::batch_bytes_max);

// Refusals the store decides before writing anything: the publishes of a refused group are
// retried alone, each with its own messages.
bool refused_before_writing(ErrorCode code) {
  switch (code) {
    case ErrorCode::invalid_argument:
    case ErrorCode::invalid_name:
    case ErrorCode::message_too_large:
    case ErrorCode::stream_not_found:
    case ErrorCode::no_matching_stream:
    case ErrorCode::limit_exceeded: return true;
    default: return false;
  }
}

void sort_by_message(std::vector<Position>& positions) {
  std::stable_sort(positions.begin(), positions.end(),
                   [](const Position& a, const Position& b) { return a.message_index < b.message_index; });
}

}  // namespace

thread_local std::weak_ptr<Broker::PublishPass> Broker::current_publish_pass_;

struct Broker::PublishPass {
  PublishPass(Broker* broker, asio::any_io_executor executor) : broker(broker), executor(std::move(executor)) {}
  Broker* const broker;
  const asio::any_io_executor executor;
  std::mutex mutex;  // a loop run by several threads may queue from any of them
  bool flushed = false;                     // guarded by mutex
  std::vector<CombinedPublish> publishes;  // guarded by mutex
};

struct Broker::PublishGroup {
  PublishGroup(asio::any_io_executor executor, std::string_view stream)
      : executor(executor), work(asio::make_work_guard(executor)), stream(stream) {}
  asio::any_io_executor executor;
  // Keeps the loop running (and its io_context alive) until the answers are posted to it.
  asio::executor_work_guard<asio::any_io_executor> work;
  std::string_view stream;  // lives in a publisher's coroutine frame, like the messages
  std::vector<CombinedPublish> publishes;
  std::vector<std::uint32_t> first_message;  // per publish: its first message in the append
};

void Broker::combine_publish(const asio::any_io_executor& executor, CombinedPublish publish) {
  std::shared_ptr<PublishPass> pass = current_publish_pass_.lock();
  if (pass && pass->broker == this && pass->executor == executor) {
    std::lock_guard lock(pass->mutex);
    if (!pass->flushed) {
      pass->publishes.push_back(std::move(publish));
      return;
    }
  }
  pass = std::make_shared<PublishPass>(this, executor);
  pass->publishes.push_back(std::move(publish));
  current_publish_pass_ = pass;
  // The posted flush owns the pass: if the loop is destroyed unrun, so are its publishers.
  asio::post(executor, [pass] { pass->broker->flush_publishes(*pass); });
}

void Broker::flush_publishes(PublishPass& pass) {
  std::vector<CombinedPublish> publishes;
  {
    std::lock_guard lock(pass.mutex);
    pass.flushed = true;
    publishes = std::move(pass.publishes);
  }
  // Each stream's publishes in arrival order.
  std::stable_sort(publishes.begin(), publishes.end(),
                   [](const CombinedPublish& a, const CombinedPublish& b) { return a.stream < b.stream; });
  std::size_t begin = 0;
  while (begin < publishes.size()) {
    std::size_t end = begin + 1;
    while (end < publishes.size() && end - begin < combined_publishes_max && publishes[end].stream == publishes[begin].stream) ++end;
    std::vector<CombinedPublish> group(std::make_move_iterator(publishes.begin() + static_cast<std::ptrdiff_t>(begin)),
                                       std::make_move_iterator(publishes.begin() + static_cast<std::ptrdiff_t>(end)));
    const std::string_view stream = publishes[begin].stream;
    submit_publishes(pass.executor, stream, std::move(group));
    begin = end;
  }
}

void Broker::submit_publishes(const asio::any_io_executor& executor, std::string_view stream,
                              std::vector<CombinedPublish> publishes) {
  auto group = std::make_shared<PublishGroup>(executor, stream);
  group->publishes = std::move(publishes);
  std::vector<OutgoingMessage> combined;
  std::span<const OutgoingMessage> messages = group->publishes.front().messages;
  if (group->publishes.size() > 1) {
    std::size_t count = 0;
    for (const CombinedPublish& publish : group->publishes) count += publish.messages.size();
    combined.reserve(count);
    group->first_message.reserve(group->publishes.size());
    for (const CombinedPublish& publish : group->publishes) {
      group->first_message.push_back(static_cast<std::uint32_t>(combined.size()));
      combined.insert(combined.end(), publish.messages.begin(), publish.messages.end());
    }
    messages = combined;
  }
  answers_pending_.fetch_add(1);
  statistics_.store_appends.fetch_add(1);
  // The store encodes the messages before it returns (the combined views may go); the answer
  // comes from a sync thread, or inline on a refusal.
  store_.publish_async(messages, stream, [this, group](Result<std::vector<Position>> result) {
    asio::post(group->executor, [this, group, result = std::move(result)]() mutable {
      deliver_publishes(*group, std::move(result));
    });
    group->work.reset();
    if (answers_pending_.fetch_sub(1) == 1) answers_pending_.notify_all();
  });
}

void Broker::deliver_publishes(PublishGroup& group, Result<std::vector<Position>> result) {
  if (group.publishes.size() == 1) {
    if (result) sort_by_message(*result);
    group.publishes.front().waiter->answer(std::move(result));
    return;
  }
  if (!result) {
    if (refused_before_writing(result.status().code())) {
      for (CombinedPublish& publish : group.publishes) {
        std::vector<CombinedPublish> alone;
        alone.push_back(std::move(publish));
        submit_publishes(group.executor, group.stream, std::move(alone));
      }
      return;
    }
    for (CombinedPublish& publish : group.publishes) publish.waiter->answer(result.status());
    return;
  }
  std::vector<std::vector<Position>> shares(group.publishes.size());
  for (Position& position : *result) {
    const auto after = std::upper_bound(group.first_message.begin(), group.first_message.end(), position.message_index);
    const std::size_t owner = static_cast<std::size_t>(after - group.first_message.begin()) - 1;
    position.message_index -= group.first_message[owner];
    shares[owner].push_back(std::move(position));
  }
  for (std::size_t i = 0; i < shares.size(); ++i) {
    sort_by_message(shares[i]);
    group.publishes[i].waiter->answer(std::move(shares[i]));
  }
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
