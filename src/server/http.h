// server/http.h: what a route handler sees and returns, and the one JSON error shape.
//
// Errors: every failure is answered as
//   {"error":{"code":"<error_code_name>","message":"...","details":{...}}}
// with the HTTP status that http_status_for() picks for the code (400 invalid input, 404
// unknown stream, 409 exists, 412 failed precondition, 413 too large, 429/503 limits, 507 no
// space, 500 internal). The codes are the stable catalogue of include/msgstore/status.h.
//
// Thread safety: a RequestContext belongs to one connection's coroutine; handlers run on that
// connection's event loop and must not block (use Broker::run_blocking for Store calls).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

#include "msgstore/status.h"

namespace msgstore::server {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
namespace json = boost::json;

class ServerContext;

using HttpRequest = http::request<http::string_body>;

struct HttpResponse {
  http::response<http::string_body> message;
  // Set by handlers that took the connection over (WebSocket upgrade, Server-Sent Events):
  // the session then neither writes `message` nor reads another request.
  bool connection_taken_over = false;
};

using PathParameters = std::map<std::string, std::string, std::less<>>;
using QueryParameters = std::map<std::string, std::string, std::less<>>;

struct RequestContext {
  const HttpRequest& request;
  std::string_view path;        // without the query string
  PathParameters path_parameters;  // {name} in the route template -> the decoded segment
  QueryParameters query;        // decoded; the last value wins for a repeated name
  beast::tcp_stream& stream;    // for handlers that take the connection over
  beast::flat_buffer& buffer;   // bytes read after the request (hand them to a WebSocket)
  ServerContext& server;

  // The path parameter `name` (the route guarantees it exists).
  const std::string& parameter(std::string_view name) const;
  // The query parameter `name`, if present.
  std::optional<std::string_view> query_value(std::string_view name) const;
};

// The HTTP status for an error code (see the table in docs/http-api.md).
http::status http_status_for(ErrorCode code);

// A JSON response with `status`; keep-alive follows the request.
HttpResponse json_response(const RequestContext& context, http::status status, const json::value& body);
HttpResponse text_response(const RequestContext& context, http::status status, std::string body, std::string_view content_type);

// The error shape, with the status from http_status_for unless `status` overrides it.
HttpResponse error_response(const RequestContext& context, const Status& error, json::object details = {},
                            std::optional<http::status> status = std::nullopt);
// The same body, for places without a RequestContext (the session's own errors).
std::string error_body(const Status& error, const json::object& details = {});

// The bytes of a response with a Content-Length body (status line, fields in their order, blank
// line, body), the same bytes Beast's serializer writes, built in one buffer so the session
// writes a response with one call instead of Beast's buffer-sequence serializer (a quarter of
// the server's instructions per request before this). Chunked messages are not accepted here.
std::string serialize_response(const http::response<http::string_body>& message);

// Query parameter parsing with errors that name the parameter.
Result<std::uint64_t> query_unsigned(const RequestContext& context, std::string_view name, std::uint64_t default_value,
                                     std::uint64_t max);
Result<std::int64_t> query_signed(const RequestContext& context, std::string_view name, std::int64_t default_value);

// Every "name=value" pair of a request target's query string, decoded, in order, repeats kept
// ("/v1/query?header.a=1&header.b=2"); nullopt on a bad percent escape. RequestContext::query
// is built from it (the last value of a repeated name wins there).
std::optional<std::vector<std::pair<std::string, std::string>>> query_pairs(std::string_view target);

// "%2F" -> "/", "+" stays "+" in paths and becomes " " in queries. nullopt on a bad escape.
std::optional<std::string> percent_decode(std::string_view text, bool plus_is_space);

// True if the request's Content-Type (ignoring parameters and case) is `media_type`.
bool content_type_is(const HttpRequest& request, std::string_view media_type);

}  // namespace msgstore::server
