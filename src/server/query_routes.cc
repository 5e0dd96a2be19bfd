// Queries over the shared query model (include/msgstore/query.h, docs/query.md):
//   GET /v1/query?...                  every stream
//   GET /v1/streams/{stream}/query?... one stream
// The parameters are the CLI's `msgstore query` flags by the same names
// (index/query_parameters.h); docs/http-api.md ("Query") describes them and the response.
#include <boost/json/serialize.hpp>

#include "index/query_parameters.h"
#include "server/json_codec.h"
#include "server/routes.h"

namespace msgstore::server {
namespace {

json::object statistics_to_json(const QueryStatistics& statistics) {
  json::object object{{"plan", statistics.plan}};
  index::for_each_query_statistic(statistics, [&object](std::string_view name, std::uint64_t value) { object[name] = value; });
  return object;
}

// The body is assembled from the matches' text, which the workers encoded while the query ran
// (a page can hold many messages: no second pass over them on the event loop).
std::string page_body(const broker::QueryPage& page, bool explain) {
  std::size_t bytes = 64;
  for (const std::string& message : page.encoded) bytes += message.size() + 1;
  std::string body;
  body.reserve(bytes);
  body += "{\"messages\":[";
  for (std::size_t i = 0; i < page.encoded.size(); ++i) {
    if (i > 0) body += ',';
    body += page.encoded[i];
  }
  body += "],\"next_cursor\":";
  body += page.result.next_cursor.empty() ? std::string("null") : json::serialize(json::string(page.result.next_cursor));
  if (explain) {
    body += ",\"statistics\":";
    body += json::serialize(statistics_to_json(page.result.statistics));
  }
  body += "}\n";
  return body;
}

asio::awaitable<HttpResponse> run_query(RequestContext& context, std::string stream) {
  auto pairs = query_pairs(context.request.target());
  if (!pairs) co_return error_response(context, Status(ErrorCode::invalid_argument, "invalid percent escape in the request target"));
  auto request = index::parse_query_parameters(stream, *pairs, index::ParameterSpelling::http_query);
  if (!request) co_return error_response(context, request.status());
  // Like reads, a page stays within half of what a connection may hold; the query stops after
  // the match that reaches it, and next_cursor continues from there.
  const std::size_t encoded_bytes_max =
      std::max<std::uint64_t>(1, context.server.config().connection_in_flight_bytes_max / 2);
  auto page = co_await context.server.broker().query(
      std::move(request->query),
      [](const QueryMatch& match) { return json::serialize(located_message_to_json(match.stream, match.partition, match.message)); },
      encoded_bytes_max);
  if (!page) {
    json::object details;
    if (!stream.empty()) details["stream"] = stream;
    co_return error_response(context, page.status(), std::move(details));
  }
  co_return text_response(context, http::status::ok, page_body(*page, request->explain), "application/json");
}

asio::awaitable<HttpResponse> query_all_streams(RequestContext& context) { co_return co_await run_query(context, ""); }

asio::awaitable<HttpResponse> query_stream(RequestContext& context) {
  co_return co_await run_query(context, context.parameter("stream"));
}

}  // namespace

void register_query_routes(Router& router, ServerContext&) {
  router.add(http::verb::get, "/v1/query", query_all_streams);
  router.add(http::verb::get, "/v1/streams/{stream}/query", query_stream);
}

}  // namespace msgstore::server
