#include "server/dispatcher.h"

#include <chrono>
#include <exception>
#include <string>

#include "server/json_log.h"
#include "server/routes.h"

namespace msgstore::server {

void limit_request_parser(http::request_parser<http::string_body>& parser, const ServerConfig& config) {
  parser.header_limit(config.request_header_bytes_max);
  parser.body_limit(config.request_body_bytes_max);
}

// The query string of a target as a map (the last value of a repeated name wins); nullopt on
// a bad escape. Routes that accept repeated names read query_pairs(target) themselves.
std::optional<QueryParameters> parse_query(std::string_view target) {
  auto pairs = query_pairs(target);
  if (!pairs) return std::nullopt;
  QueryParameters parameters;
  for (auto& pair : *pairs) parameters[std::move(pair.first)] = std::move(pair.second);
  return parameters;
}

Dispatcher::Dispatcher(ServerContext& context) : context_(context) { register_all_routes(router_, context_); }

asio::awaitable<HttpResponse> Dispatcher::dispatch(const HttpRequest& request, beast::tcp_stream& stream,
                                                  beast::flat_buffer& buffer) {
  const auto started = std::chrono::steady_clock::now();
  const std::string_view target = request.target();
  const std::size_t question = target.find('?');
  const std::string_view path = target.substr(0, question);
  RequestContext context{request, path, {}, {}, stream, buffer, context_};
  Router::Match match = router_.match(request.method(), path);
  std::string_view route = match.route_template.empty() ? std::string_view("unmatched") : match.route_template;
  HttpResponse response;
  auto query = parse_query(target);
  if (match.bad_escape || !query) {
    response = error_response(context, Status(ErrorCode::invalid_argument, "invalid percent escape in the request target"));
  } else if (match.handler == nullptr && match.path_known) {
    response = error_response(context, Status(ErrorCode::method_not_allowed,
                                              std::string(request.method_string()) + " is not supported on " + std::string(path)),
                              {{"allowed", match.allowed_methods}});
    response.message.set(http::field::allow, match.allowed_methods);
  } else if (match.handler == nullptr) {
    response = error_response(context, Status(ErrorCode::not_found, "no such endpoint: " + std::string(path)));
  } else {
    context.path_parameters = std::move(match.path_parameters);
    context.query = std::move(*query);
    try {
      response = co_await (*match.handler)(context);
    } catch (const std::exception& exception) {
      log(LogLevel::error, "handler failed", {{"route", route}, {"error", exception.what()}});
      response = error_response(context, Status(ErrorCode::internal_error, "internal error; see the server log"));
    }
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  const unsigned status = response.connection_taken_over ? 101u : response.message.result_int();
  // A metrics label must come from a bounded set: a method Beast does not know (any token is
  // syntactically valid) is counted as "other".
  const std::string_view method_label =
      request.method() == http::verb::unknown ? std::string_view("other") : std::string_view(http::to_string(request.method()));
  context_.metrics().request_finished(method_label, route, status, seconds);
  if (context_.config().log_requests) {
    log(LogLevel::info, "request",
        {{"method", request.method_string()}, {"target", target}, {"status", status}, {"duration_ms", seconds * 1000}});
  }
  co_return response;
}

}  // namespace msgstore::server
