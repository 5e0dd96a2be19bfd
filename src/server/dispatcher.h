// server/dispatcher.h: from a parsed HTTP request to its response, without the socket loop.
//
// The session (server.cc) reads a request with a parser limited by limit_request_parser(),
// then calls Dispatcher::dispatch; the HTTP fuzz target (tests/fuzz/http_request_fuzz.cc)
// feeds the same parser from a buffer and calls the same dispatch, so both run one path:
// query parsing, routing (404/405/bad escapes), the handler, exception containment (500) and
// the request metrics.
//
// Thread safety: construct before the server starts; dispatch() from any event loop (the
// router is read-only after construction, the metrics are thread-safe).
#pragma once

#include <optional>
#include <string_view>

#include <boost/beast/http/parser.hpp>

#include "server/http.h"
#include "server/router.h"
#include "server/server_context.h"

namespace msgstore::server {

// Applies request_header_bytes_max and request_body_bytes_max to a request parser.
void limit_request_parser(http::request_parser<http::string_body>& parser, const ServerConfig& config);

// Splits "a=1&b=x%20y" into decoded pairs (the last value wins); nullopt on a bad escape.
std::optional<QueryParameters> parse_query(std::string_view target);

class Dispatcher {
 public:
  // Registers every route (register_all_routes) against `context`.
  explicit Dispatcher(ServerContext& context);

  // Routes `request` and runs its handler. `stream` and `buffer` are the connection's, for
  // handlers that take the connection over (WebSocket, Server-Sent Events).
  asio::awaitable<HttpResponse> dispatch(const HttpRequest& request, beast::tcp_stream& stream, beast::flat_buffer& buffer);

 private:
  ServerContext& context_;
  Router router_;
};

}  // namespace msgstore::server
