// server/server.h: the HTTP server: listener, connections, shutdown.
//
// Threads: `io_threads` event loops (one io_context and one thread each). The acceptor runs on
// loop 0 and hands each new connection to the next loop round robin; a connection's session
// coroutine, its timers and its handlers run only on that loop (no strands needed). Blocking
// Store calls go to the broker's worker pool (broker/broker.h). Signals (SIGTERM, SIGINT) are
// handled on loop 0.
//
// A session reads one request at a time (HTTP/1.1 keep-alive; pipelined requests are answered
// in order), so a connection holds at most one request body and one response: that is what
// connection_in_flight_bytes_max bounds. Every read and write has a deadline:
//   idle_timeout_ms        waiting for the first byte of the next request
//   header_read_timeout_ms from that byte to the end of the headers (slowloris)
//   body_read_timeout_ms   for the body
//   write_timeout_ms       for the response
// A connection beyond max_connections is answered 503 limit_exceeded and closed.
//
// Shutdown (SIGTERM/SIGINT or request_stop): close the listener, stop the broker (long polls
// return at once), close idle keep-alive connections, let requests in progress finish (their
// responses carry Connection: close) for up to shutdown_timeout_ms, then cut what is left and
// stop the loops. run() returns; the caller then destroys the Server and closes the Store.
#pragma once

#include <memory>
#include <string>

#include "msgstore/status.h"
#include "msgstore/store.h"
#include "server/config.h"

namespace msgstore::server {

class ServerImpl;

class Server {
 public:
  Server(const ServerConfig& config, Store& store);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds and listens (fails with invalid_argument / io_error naming the address), then logs
  // {"message":"listening","address":"host:port","port":N}.
  Status start();
  // Runs the event loops until shutdown completes. Installs the SIGTERM/SIGINT handlers.
  void run();
  // Begins a graceful shutdown (thread-safe; what the signal handler does).
  void request_stop();

 private:
  std::unique_ptr<ServerImpl> impl_;
};

}  // namespace msgstore::server
