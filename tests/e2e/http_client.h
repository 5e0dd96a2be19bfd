// A plain blocking HTTP/1.1 client over loopback for end-to-end tests that need many requests
// on one keep-alive connection (curl would cost a process per request). It speaks just what
// `msgstore serve` answers with: a status line, headers, and a Content-Length body.
//
// Every call has a deadline (send and receive timeouts on the socket). A request that fails
// at the transport level (refused, reset, closed mid-response, timed out) returns nullopt and
// closes the connection; the outcome of that request is then unknown to the caller (the server
// may or may not have acted on it), which is exactly what a crash test must account for.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace msgstore::e2e {

struct HttpReply {
  int status = 0;
  std::string body;
};

class HttpConnection {
 public:
  // Connects lazily, to 127.0.0.1:`port`.
  explicit HttpConnection(int port, std::chrono::milliseconds timeout = std::chrono::seconds(10))
      : port_(port), timeout_(timeout) {}
  ~HttpConnection();
  HttpConnection(const HttpConnection&) = delete;
  HttpConnection& operator=(const HttpConnection&) = delete;

  // One request on the keep-alive connection (connecting first if needed). `headers` are extra
  // "Name: value" lines. nullopt: transport failure (see above); the next call reconnects.
  std::optional<HttpReply> request(const std::string& method, const std::string& target, const std::string& body = {},
                                   const std::vector<std::pair<std::string, std::string>>& headers = {});
  void close();

 private:
  bool connect_now();
  bool send_all(const std::string& data);
  bool fill();  // reads more bytes into buffer_; false on error, timeout or end of stream

  int port_;
  std::chrono::milliseconds timeout_;
  int fd_ = -1;
  std::string buffer_;
};

}  // namespace msgstore::e2e
