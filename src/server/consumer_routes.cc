// Durable consumers over HTTP (docs/http-api.md, "Durable consumers"): thin handlers over
// Store::consumers() (include/msgstore/consumer.h). Every consumer call may touch files (and
// acks wait for fdatasync), so each runs on the broker's worker pool. The fetch long poll never
// parks an event-loop thread or a worker: it fetches without waiting on a worker, and between
// attempts waits on the broker's timer for the store's data signal, which the consumer registry
// also raises when a redelivery becomes due or a nak releases a message.
#include <algorithm>
#include <chrono>

#include <boost/beast/http/field.hpp>

#include "msgstore/consumer.h"
#include "msgstore/limits.h"
#include "server/json_codec.h"
#include "server/routes.h"

namespace msgstore::server {
namespace {

// Consumer codes are newer than http_status_for's table; their statuses are decided here.
HttpResponse consumer_error(const RequestContext& context, const Status& error, json::object details = {}) {
  std::optional<http::status> status;
  switch (error.code()) {
    case ErrorCode::consumer_not_found: status = http::status::not_found; break;
    case ErrorCode::consumer_exists: status = http::status::conflict; break;
    case ErrorCode::stale_delivery: status = http::status::conflict; break;
    default: break;
  }
  if (!details.contains("stream")) details["stream"] = context.parameter("stream");
  return error_response(context, error, std::move(details), status);
}

Result<json::object> json_object_body(const RequestContext& context, bool empty_allowed) {
  const std::string& body = context.request.body();
  if (body.empty() && empty_allowed) return json::object{};
  if (!content_type_is(context.request, "application/json")) {
    return Status(ErrorCode::unsupported_media_type, "the body must be application/json");
  }
  return parse_json_object(body);
}

json::object consumer_info_to_json(const ConsumerInfo& info) {
  const ConsumerConfig& config = info.config;
  json::object object;
  object["stream"] = info.stream;
  object["name"] = config.name;
  object["subject_filter"] = config.subject_filter;
  switch (config.start.kind) {
    case StartPosition::Kind::beginning: object["start"] = "beginning"; break;
    case StartPosition::Kind::end: object["start"] = "end"; break;
    case StartPosition::Kind::offset: object["start_offset"] = config.start.offset; break;
    case StartPosition::Kind::time: object["start_time_ms"] = config.start.time_ms; break;
  }
  object["ack_wait_ms"] = config.ack_wait_ms;
  object["max_deliveries"] = config.max_deliveries;
  json::array backoff;
  for (std::int64_t delay : config.backoff_ms) backoff.push_back(delay);
  object["backoff_ms"] = std::move(backoff);
  if (!config.dead_letter_stream.empty()) object["dead_letter_stream"] = config.dead_letter_stream;
  object["max_ack_pending"] = config.max_ack_pending;
  object["pending"] = info.pending;
  object["lag"] = info.lag;
  object["redelivered"] = info.redelivered;
  object["skipped"] = info.skipped;
  object["dead_lettered"] = info.dead_lettered;
  object["dropped"] = info.dropped;
  json::array partitions;
  for (const ConsumerPartitionInfo& partition : info.partitions) {
    partitions.push_back(json::object{{"partition", partition.partition},
                                      {"ack_floor", partition.ack_floor},
                                      {"delivered_offset", partition.delivered_offset},
                                      {"pending", partition.pending},
                                      {"out", partition.out},
                                      {"lag", partition.lag},
                                      {"redelivered", partition.redelivered}});
  }
  object["partitions"] = std::move(partitions);
  return object;
}

// POST /v1/streams/{stream}/consumers
asio::awaitable<HttpResponse> create_consumer(RequestContext& context) {
  auto body = json_object_body(context, false);
  if (!body) co_return consumer_error(context, body.status());
  auto config = decode_consumer_config(*body);
  if (!config) co_return consumer_error(context, config.status());
  const std::string stream = context.parameter("stream");
  Store& store = context.server.store();
  auto info = co_await context.server.broker().run_blocking([&store, &stream, &config]() -> Result<ConsumerInfo> {
    MSGSTORE_RETURN_IF_ERROR(store.consumers().create(stream, *config));
    return store.consumers().describe(stream, config->name);
  });
  if (!info) co_return consumer_error(context, info.status(), {{"consumer", config->name}});
  auto response = json_response(context, http::status::created, consumer_info_to_json(*info));
  response.message.set(http::field::location, "/v1/streams/" + stream + "/consumers/" + config->name);
  co_return response;
}

// GET /v1/streams/{stream}/consumers
asio::awaitable<HttpResponse> list_consumers(RequestContext& context) {
  const std::string stream = context.parameter("stream");
  Store& store = context.server.store();
  auto consumers = co_await context.server.broker().run_blocking([&store, &stream] { return store.consumers().list(stream); });
  if (!consumers) co_return consumer_error(context, consumers.status());
  json::array array;
  for (const ConsumerInfo& info : *consumers) array.push_back(consumer_info_to_json(info));
  co_return json_response(context, http::status::ok, json::object{{"consumers", std::move(array)}});
}

// GET /v1/streams/{stream}/consumers/{name}
asio::awaitable<HttpResponse> describe_consumer(RequestContext& context) {
  const std::string stream = context.parameter("stream");
  const std::string name = context.parameter("name");
  Store& store = context.server.store();
  auto info = co_await context.server.broker().run_blocking([&] { return store.consumers().describe(stream, name); });
  if (!info) co_return consumer_error(context, info.status(), {{"consumer", name}});
  co_return json_response(context, http::status::ok, consumer_info_to_json(*info));
}

// DELETE /v1/streams/{stream}/consumers/{name}
asio::awaitable<HttpResponse> delete_consumer(RequestContext& context) {
  const std::string stream = context.parameter("stream");
  const std::string name = context.parameter("name");
  Store& store = context.server.store();
  Status removed = co_await context.server.broker().run_blocking([&] { return store.consumers().remove(stream, name); });
  if (!removed) co_return consumer_error(context, removed, {{"consumer", name}});
  co_return json_response(context, http::status::ok, json::object{{"stream", stream}, {"consumer", name}, {"deleted", true}});
}

// POST /v1/streams/{stream}/consumers/{name}/fetch {"max_messages","max_bytes","wait_ms"}
asio::awaitable<HttpResponse> fetch_from_consumer(RequestContext& context) {
  auto body = json_object_body(context, true);
  if (!body) co_return consumer_error(context, body.status());
  const ServerConfig& config = context.server.config();
  auto fetch = decode_fetch_body(*body);
  if (!fetch) co_return consumer_error(context, fetch.status());
  const std::uint64_t max_messages = fetch->max_messages;
  const std::uint64_t max_bytes = fetch->max_bytes.value_or(config.connection_in_flight_bytes_max / 2);
  const std::uint64_t wait_ms = fetch->wait_ms;
  FetchOptions options;
  options.max_messages = std::max<std::uint64_t>(1, max_messages);
  options.max_bytes = std::max<std::uint64_t>(1, std::min<std::uint64_t>(max_bytes, config.connection_in_flight_bytes_max / 2));
  options.wait = std::chrono::milliseconds(0);  // never block a worker: the wait happens here
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(std::min<std::uint64_t>(wait_ms, config.long_poll_wait_ms_max));
  const std::string stream = context.parameter("stream");
  const std::string name = context.parameter("name");
  Store& store = context.server.store();
  broker::Broker& broker = context.server.broker();
  broker.statistics().fetch_requests.fetch_add(1);
  while (true) {
    // Read the generation before fetching, so a change during the fetch ends the wait at once.
    const std::uint64_t generation = store.data_generation();
    auto fetched = co_await broker.run_blocking([&] { return store.consumers().fetch(stream, name, options); });
    if (!fetched) co_return consumer_error(context, fetched.status(), {{"consumer", name}});
    if (!fetched->empty() || std::chrono::steady_clock::now() >= deadline || context.server.shutting_down()) {
      json::array messages;
      std::uint64_t payload_bytes = 0;
      for (const ConsumedMessage& consumed : *fetched) {
        json::object message = message_to_json(consumed.message);
        message["partition"] = consumed.partition;
        message["delivery"] = consumed.delivery.to_string();
        message["deliveries"] = consumed.deliveries;
        payload_bytes += consumed.message.payload.size();
        messages.push_back(std::move(message));
      }
      broker.statistics().fetched_messages.fetch_add(fetched->size());
      broker.statistics().fetched_bytes.fetch_add(payload_bytes);
      co_return json_response(context, http::status::ok, json::object{{"messages", std::move(messages)}});
    }
    broker.statistics().long_poll_waits.fetch_add(1);
    co_await broker.wait_for_data(generation, deadline);
  }
}

// POST /v1/streams/{stream}/consumers/{name}/ack|nak|term|in_progress
// {"deliveries":["token",...],"delay_ms"(nak only)}. All accepted: 200 {"settled":n}. Otherwise
// the first failure's error (409 stale_delivery, 400 invalid_argument) with every token's
// outcome in details.results; the accepted ones were applied.
asio::awaitable<HttpResponse> settle_deliveries(RequestContext& context, AckKind kind) {
  auto body = json_object_body(context, false);
  if (!body) co_return consumer_error(context, body.status());
  auto settle = decode_settle_body(*body, kind == AckKind::nak);
  if (!settle) co_return consumer_error(context, settle.status());
  const std::vector<std::string>& tokens = settle->tokens;
  const std::optional<std::chrono::milliseconds> delay = settle->delay;
  const std::string stream = context.parameter("stream");
  const std::string name = context.parameter("name");
  Store& store = context.server.store();
  auto results = co_await context.server.broker().run_blocking(
      [&] { return store.consumers().settle(stream, name, kind, tokens, delay); });
  if (!results) co_return consumer_error(context, results.status(), {{"consumer", name}});
  std::size_t settled = 0;
  const Status* first_failure = nullptr;
  json::array outcomes;
  for (std::size_t index = 0; index < results->size(); ++index) {
    const Status& result = (*results)[index];
    json::object outcome{{"delivery", tokens[index]}};
    if (result) {
      ++settled;
      outcome["ok"] = true;
    } else {
      if (!first_failure) first_failure = &result;
      outcome["error"] = json::object{{"code", error_code_name(result.code())}, {"message", result.message()}};
    }
    outcomes.push_back(std::move(outcome));
  }
  if (first_failure) {
    co_return consumer_error(context, *first_failure, {{"consumer", name}, {"settled", settled}, {"results", std::move(outcomes)}});
  }
  co_return json_response(context, http::status::ok, json::object{{"settled", settled}});
}

}  // namespace

void register_consumer_routes(Router& router, ServerContext&) {
  router.add(http::verb::post, "/v1/streams/{stream}/consumers", create_consumer);
  router.add(http::verb::get, "/v1/streams/{stream}/consumers", list_consumers);
  router.add(http::verb::get, "/v1/streams/{stream}/consumers/{name}", describe_consumer);
  router.add(http::verb::delete_, "/v1/streams/{stream}/consumers/{name}", delete_consumer);
  router.add(http::verb::post, "/v1/streams/{stream}/consumers/{name}/fetch", fetch_from_consumer);
  router.add(http::verb::post, "/v1/streams/{stream}/consumers/{name}/ack",
             [](RequestContext& context) { return settle_deliveries(context, AckKind::ack); });
  router.add(http::verb::post, "/v1/streams/{stream}/consumers/{name}/nak",
             [](RequestContext& context) { return settle_deliveries(context, AckKind::nak); });
  router.add(http::verb::post, "/v1/streams/{stream}/consumers/{name}/term",
             [](RequestContext& context) { return settle_deliveries(context, AckKind::term); });
  router.add(http::verb::post, "/v1/streams/{stream}/consumers/{name}/in_progress",
             [](RequestContext& context) { return settle_deliveries(context, AckKind::in_progress); });
}

}  // namespace msgstore::server
