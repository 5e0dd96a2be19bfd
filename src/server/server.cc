#include "server/server.h"

#include <atomic>
#include <chrono>
#include <exception>
#include <list>
#include <mutex>
#include <thread>
#include <tuple>
#include <vector>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/write.hpp>

#include "broker/broker.h"
#include "server/dispatcher.h"
#include "server/json_log.h"
#include "server/metrics.h"
#include "server/server_context.h"

namespace msgstore::server {

using tcp = asio::ip::tcp;
using namespace std::chrono_literals;

namespace {

constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

// A response written by the session itself (no RequestContext: malformed or refused requests).
http::response<http::string_body> session_error(http::status status, const Status& error, unsigned version = 11) {
  http::response<http::string_body> response{status, version};
  response.set(http::field::content_type, "application/json");
  response.keep_alive(false);
  response.body() = error_body(error);
  response.prepare_payload();
  return response;
}

}  // namespace

// What shutdown needs to reach a live session: its stream (null once the session ended) and
// whether it is idle between requests. Touched only on the session's own event loop.
struct SessionHandle {
  asio::any_io_executor executor;
  beast::tcp_stream* stream = nullptr;
  bool idle = true;
};

class ServerImpl {
 public:
  ServerImpl(const ServerConfig& config, Store& store)
      : config_(config),
        store_(store),
        broker_(store, broker::BrokerOptions{config.worker_threads, config.worker_queue_max}),
        context_(config_, store_, broker_, metrics_),
        dispatcher_(context_) {
    // Default: half the cores. The loops parse, append and answer; fdatasync runs on the store's sync
    // threads and blocking calls on the worker pool, which need cores too. Measured with 50
    // connections publishing on 2 cores: one loop used 19-21 us of server CPU per publish,
    // two loops 25-27 us (more wake-ups, fewer events per epoll_wait).
    const std::uint32_t loops = config.io_threads != 0 ? config.io_threads : std::max(1u, std::thread::hardware_concurrency() / 2);
    for (std::uint32_t i = 0; i < loops; ++i) {
      loops_.push_back(std::make_unique<asio::io_context>(1));
      work_.push_back(asio::make_work_guard(*loops_.back()));
    }
    acceptor_ = std::make_unique<tcp::acceptor>(*loops_.front());
  }

  ~ServerImpl() {
    // Order matters: no loop thread runs any more; finish the worker pool's calls (their
    // completions are queued on stopped loops and destroyed with them), then the loops.
    broker_.stop();
    broker_.join();
    // I/O objects before the io_contexts they belong to.
    signals_.reset();
    acceptor_.reset();
    loops_.clear();
  }

  Status start();
  void run();
  void request_stop() {
    asio::post(*loops_.front(), [this] { begin_shutdown(); });
  }

 private:
  asio::awaitable<void> accept_loop();
  asio::awaitable<void> refuse(tcp::socket socket);
  asio::awaitable<void> session(tcp::socket socket);
  void begin_shutdown();
  asio::awaitable<void> finish_shutdown();

  const ServerConfig& config_;
  Store& store_;
  Metrics metrics_;
  broker::Broker broker_;
  ServerContext context_;
  Dispatcher dispatcher_;
  std::vector<std::unique_ptr<asio::io_context>> loops_;
  std::vector<asio::executor_work_guard<asio::io_context::executor_type>> work_;
  std::unique_ptr<tcp::acceptor> acceptor_;
  std::unique_ptr<asio::signal_set> signals_;
  std::atomic<bool> shutting_down_{false};
  std::atomic<std::uint64_t> refusing_{0};
  std::size_t next_loop_ = 0;
  std::mutex sessions_mutex_;
  std::list<std::shared_ptr<SessionHandle>> sessions_;
};

Status ServerImpl::start() {
  auto address = parse_listen_address(config_.listen);
  if (!address) return address.status();
  boost::system::error_code error;
  tcp::resolver resolver(*loops_.front());
  const auto endpoints = resolver.resolve(address->host, std::to_string(address->port),
                                          tcp::resolver::numeric_service | tcp::resolver::passive, error);
  if (error || endpoints.empty()) {
    return Status(ErrorCode::invalid_argument, "listen " + config_.listen + ": cannot resolve host: " + error.message());
  }
  const tcp::endpoint endpoint = endpoints.begin()->endpoint();
  const auto fail = [&](std::string_view what) {
    return Status(ErrorCode::io_error, "listen " + config_.listen + ": " + std::string(what) + ": " + error.message());
  };
  if (acceptor_->open(endpoint.protocol(), error)) return fail("socket");
  if (acceptor_->set_option(asio::socket_base::reuse_address(true), error)) return fail("SO_REUSEADDR");
  if (acceptor_->bind(endpoint, error)) return fail("bind");
  if (acceptor_->listen(asio::socket_base::max_listen_connections, error)) return fail("listen");
  const tcp::endpoint bound = acceptor_->local_endpoint(error);
  if (error) return fail("local address");
  const std::string host = bound.address().is_v6() ? "[" + bound.address().to_string() + "]" : bound.address().to_string();
  log(LogLevel::info, "listening",
      {{"address", host + ":" + std::to_string(bound.port())},
       {"port", bound.port()},
       {"io_threads", loops_.size()},
       {"worker_threads", config_.worker_threads},
       {"data_directory", config_.data_directory}});
  return Status::ok();
}

void ServerImpl::run() {
  signals_ = std::make_unique<asio::signal_set>(*loops_.front(), SIGINT, SIGTERM);
  signals_->async_wait([this](const boost::system::error_code& error, int signal_number) {
    if (error) return;
    log(LogLevel::info, "shutting down", {{"signal", signal_number == SIGTERM ? "SIGTERM" : "SIGINT"}});
    begin_shutdown();
  });
  asio::co_spawn(*loops_.front(), accept_loop(), asio::detached);
  // A handler that throws (a coroutine resumed with a cancelled operation during shutdown, for
  // one) must not end the process: log it and keep the loop running until it stops.
  const auto run_loop = [this](asio::io_context& loop) {
    for (;;) {
      try {
        loop.run();
        return;
      } catch (const std::exception& exception) {
        if (!shutting_down_.load()) log(LogLevel::error, "event loop handler failed", {{"error", exception.what()}});
      }
    }
  };
  std::vector<std::thread> threads;
  for (std::size_t i = 1; i < loops_.size(); ++i) {
    threads.emplace_back([this, i, &run_loop] { run_loop(*loops_[i]); });
  }
  run_loop(*loops_.front());
  for (std::thread& thread : threads) thread.join();
  log(LogLevel::info, "stopped");
}

asio::awaitable<void> ServerImpl::accept_loop() {
  while (!shutting_down_.load()) {
    asio::io_context& loop = *loops_[next_loop_];
    next_loop_ = (next_loop_ + 1) % loops_.size();
    auto [error, socket] = co_await acceptor_->async_accept(loop, use_tuple);
    if (shutting_down_.load()) break;
    if (error) {
      if (error == asio::error::operation_aborted) break;
      // EMFILE/ENFILE/ENOBUFS: the process is out of descriptors or memory. Back off briefly
      // instead of spinning; established connections keep being served.
      log(LogLevel::warning, "accept failed", {{"error", error.message()}});
      asio::steady_timer pause(co_await asio::this_coro::executor, 50ms);
      co_await pause.async_wait(use_tuple);
      continue;
    }
    if (metrics_.connections_open() >= config_.max_connections) {
      metrics_.rejected(RejectReason::max_connections);
      // Answer with a clear error while that costs little; under a flood just close.
      if (refusing_.load() < config_.max_connections) {
        asio::co_spawn(loop, refuse(std::move(socket)), asio::detached);
      }
      continue;
    }
    metrics_.connection_opened();
    // A connection's coroutine that ends by an exception (a blocking call cancelled because the
    // worker pool stopped during shutdown, for one) ends that connection only, never the server.
    asio::co_spawn(loop, session(std::move(socket)), [this](std::exception_ptr failure) {
      if (!failure) return;
      try {
        std::rethrow_exception(failure);
      } catch (const std::exception& exception) {
        if (!shutting_down_.load()) log(LogLevel::error, "connection failed", {{"error", exception.what()}});
      }
    });
  }
}

asio::awaitable<void> ServerImpl::refuse(tcp::socket socket) {
  refusing_.fetch_add(1);
  beast::tcp_stream stream(std::move(socket));
  auto response = session_error(http::status::service_unavailable,
                                Status(ErrorCode::limit_exceeded, "too many connections (max_connections = " +
                                                                      std::to_string(config_.max_connections) + ")"));
  response.set(http::field::retry_after, "1");
  stream.expires_after(1s);
  (void)co_await http::async_write(stream, response, use_tuple);
  boost::system::error_code ignored;
  stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
  refusing_.fetch_sub(1);
}

namespace {

// Feeds the bytes already in `buffer` to `parser`: up to the end of the headers, or through the
// body too. Returns the parser's error (need_more is not one: the caller reads more).
boost::system::error_code parse_buffered(http::request_parser<http::string_body>& parser, beast::flat_buffer& buffer,
                                         bool through_body) {
  boost::system::error_code error;
  while (buffer.size() > 0 && !(through_body ? parser.is_done() : parser.is_header_done())) {
    const std::size_t used = parser.put(buffer.data(), error);
    buffer.consume(used);
    if (error == http::error::need_more) return {};
    if (error || used == 0) break;
  }
  return error;
}

}  // namespace

asio::awaitable<void> ServerImpl::session(tcp::socket socket) {
  beast::tcp_stream stream(std::move(socket));
  auto handle = std::make_shared<SessionHandle>();
  handle->executor = co_await asio::this_coro::executor;
  handle->stream = &stream;
  std::list<std::shared_ptr<SessionHandle>>::iterator registered;
  {
    std::lock_guard lock(sessions_mutex_);
    registered = sessions_.insert(sessions_.end(), handle);
  }
  struct Unregister {
    ServerImpl& server;
    std::shared_ptr<SessionHandle> handle;
    std::list<std::shared_ptr<SessionHandle>>::iterator registered;
    ~Unregister() {
      handle->stream = nullptr;
      {
        std::lock_guard lock(server.sessions_mutex_);
        server.sessions_.erase(registered);
      }
      server.metrics_.connection_closed();
    }
  } unregister{*this, handle, registered};

  boost::system::error_code ignored;
  stream.socket().set_option(tcp::no_delay(true), ignored);
  // Half-open connections (the peer vanished without a FIN) are found by the read timeouts;
  // TCP keepalive also lets the kernel drop them during a long-lived takeover (SSE, WebSocket).
  stream.socket().set_option(asio::socket_base::keep_alive(true), ignored);
  beast::flat_buffer buffer;
  const auto write_and_close = [&](http::response<http::string_body> response) -> asio::awaitable<void> {
    stream.expires_after(std::chrono::milliseconds(config_.write_timeout_ms));
    (void)co_await http::async_write(stream, response, use_tuple);
  };

  bool first_request = true;
  while (!shutting_down_.load()) {
    // Idle: wait for the first byte of the next request. A new connection gets only the
    // header timeout for its first request (a connection that never speaks is a flood or a
    // slowloris, not a keep-alive client); later requests get the keep-alive idle timeout.
    if (buffer.size() == 0) {
      handle->idle = true;
      stream.expires_after(std::chrono::milliseconds(first_request ? config_.header_read_timeout_ms : config_.idle_timeout_ms));
      auto [error, bytes] = co_await stream.async_read_some(buffer.prepare(4096), use_tuple);
      handle->idle = false;
      if (error) break;  // closed by the client, idle timeout, or shutdown
      buffer.commit(bytes);
    }
    handle->idle = false;

    http::request_parser<http::string_body> parser;
    limit_request_parser(parser, config_);
    {
      // Parse what is buffered first (a keep-alive request usually arrives whole); read only
      // when the headers are not all there.
      boost::system::error_code error = parse_buffered(parser, buffer, /*through_body=*/false);
      if (!error && !parser.is_header_done()) {
        stream.expires_after(std::chrono::milliseconds(config_.header_read_timeout_ms));
        std::tie(error, std::ignore) = co_await http::async_read_header(stream, buffer, parser, use_tuple);
      }
      if (error == beast::error::timeout) {
        metrics_.rejected(RejectReason::header_timeout);
        co_await write_and_close(session_error(http::status::request_timeout,
                                               Status(ErrorCode::timed_out, "request headers not received within " +
                                                                                std::to_string(config_.header_read_timeout_ms) +
                                                                                " ms (header_read_timeout_ms)")));
        break;
      }
      if (error == http::error::header_limit) {
        metrics_.rejected(RejectReason::header_too_large);
        co_await write_and_close(session_error(http::status::request_header_fields_too_large,
                                               Status(ErrorCode::limit_exceeded, "request headers exceed " +
                                                                                     std::to_string(config_.request_header_bytes_max) +
                                                                                     " bytes (request_header_bytes_max)")));
        break;
      }
      if (error == http::error::body_limit) {  // Content-Length above the limit, seen with the headers
        metrics_.rejected(RejectReason::body_too_large);
        co_await write_and_close(session_error(http::status::payload_too_large,
                                               Status(ErrorCode::limit_exceeded, "request body exceeds " +
                                                                                     std::to_string(config_.request_body_bytes_max) +
                                                                                     " bytes (request_body_bytes_max)")));
        break;
      }
      if (error == http::error::end_of_stream || error == asio::error::eof || error == asio::error::connection_reset ||
          error == asio::error::operation_aborted) {
        break;
      }
      if (error) {
        metrics_.rejected(RejectReason::malformed_request);
        co_await write_and_close(session_error(http::status::bad_request,
                                               Status(ErrorCode::invalid_argument, "malformed HTTP request: " + error.message())));
        break;
      }
    }
    const auto& header = parser.get();
    // curl sends "Expect: 100-continue" for larger bodies and waits for this before sending.
    if (beast::iequals(header[http::field::expect], "100-continue")) {
      http::response<http::empty_body> proceed{http::status::continue_, header.version()};
      stream.expires_after(std::chrono::milliseconds(config_.write_timeout_ms));
      auto [error, bytes] = co_await http::async_write(stream, proceed, use_tuple);
      if (error) break;
    }
    if (!parser.is_done()) {
      // A small request usually arrives whole: its body is in the buffer already and is parsed
      // in place; only what is missing is read (Beast's composed read costs more than the
      // parsing itself).
      boost::system::error_code error = parse_buffered(parser, buffer, /*through_body=*/true);
      if (!error && !parser.is_done()) {
        stream.expires_after(std::chrono::milliseconds(config_.body_read_timeout_ms));
        std::tie(error, std::ignore) = co_await http::async_read(stream, buffer, parser, use_tuple);
      }
      if (error == http::error::body_limit) {
        metrics_.rejected(RejectReason::body_too_large);
        co_await write_and_close(session_error(http::status::payload_too_large,
                                               Status(ErrorCode::limit_exceeded, "request body exceeds " +
                                                                                     std::to_string(config_.request_body_bytes_max) +
                                                                                     " bytes (request_body_bytes_max)"),
                                               header.version()));
        break;
      }
      if (error == beast::error::timeout) {
        metrics_.rejected(RejectReason::body_timeout);
        co_await write_and_close(session_error(http::status::request_timeout,
                                               Status(ErrorCode::timed_out, "request body not received within " +
                                                                                std::to_string(config_.body_read_timeout_ms) +
                                                                                " ms (body_read_timeout_ms)"),
                                               header.version()));
        break;
      }
      if (error) {
        if (error != http::error::end_of_stream && error != asio::error::eof && error != asio::error::connection_reset) {
          metrics_.rejected(RejectReason::malformed_request);
          co_await write_and_close(session_error(http::status::bad_request,
                                                 Status(ErrorCode::invalid_argument, "malformed HTTP request body: " + error.message()),
                                                 header.version()));
        }
        break;
      }
    }
    first_request = false;
    HttpRequest request = parser.release();
    metrics_.request_bytes(request.body().size());
    stream.expires_never();  // handlers (long polls) bound their own time
    HttpResponse response = co_await dispatcher_.dispatch(request, stream, buffer);
    if (response.connection_taken_over) co_return;
    if (shutting_down_.load()) response.message.keep_alive(false);
    metrics_.response_bytes(response.message.body().size());
    stream.expires_after(std::chrono::milliseconds(config_.write_timeout_ms));
    boost::system::error_code error;
    if (response.message.chunked()) {
      std::tie(error, std::ignore) = co_await http::async_write(stream, response.message, use_tuple);
    } else {
      const std::string text = serialize_response(response.message);
      std::tie(error, std::ignore) = co_await asio::async_write(stream, asio::buffer(text), use_tuple);
    }
    if (error || !response.message.keep_alive()) break;
  }
  if (handle->stream != nullptr) stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
}

void ServerImpl::begin_shutdown() {
  if (shutting_down_.exchange(true)) return;
  boost::system::error_code ignored;
  acceptor_->close(ignored);
  broker_.stop();  // long polls return now
  {
    std::lock_guard lock(sessions_mutex_);
    for (const auto& handle : sessions_) {
      asio::post(handle->executor, [handle] {
        if (handle->stream != nullptr && handle->idle) handle->stream->cancel();
      });
    }
  }
  asio::co_spawn(*loops_.front(), finish_shutdown(), asio::detached);
}

asio::awaitable<void> ServerImpl::finish_shutdown() {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(config_.shutdown_timeout_ms);
  asio::steady_timer pause(co_await asio::this_coro::executor);
  const auto open_sessions = [this] {
    std::lock_guard lock(sessions_mutex_);
    return sessions_.size();
  };
  while (open_sessions() > 0 && std::chrono::steady_clock::now() < deadline) {
    pause.expires_after(20ms);
    co_await pause.async_wait(use_tuple);
  }
  if (const std::size_t left = open_sessions(); left > 0) {
    log(LogLevel::warning, "closing connections still busy at the shutdown deadline", {{"connections", left}});
    std::lock_guard lock(sessions_mutex_);
    for (const auto& handle : sessions_) {
      asio::post(handle->executor, [handle] {
        if (handle->stream != nullptr) handle->stream->close();
      });
    }
  }
  for (int attempt = 0; attempt < 50 && open_sessions() > 0; ++attempt) {
    pause.expires_after(20ms);
    co_await pause.async_wait(use_tuple);
  }
  signals_->cancel();
  for (auto& guard : work_) guard.reset();
  for (auto& loop : loops_) loop->stop();
}

Server::Server(const ServerConfig& config, Store& store) : impl_(std::make_unique<ServerImpl>(config, store)) {}
Server::~Server() = default;
Status Server::start() { return impl_->start(); }
void Server::run() { impl_->run(); }
void Server::request_stop() { impl_->request_stop(); }

}  // namespace msgstore::server
