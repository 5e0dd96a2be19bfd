// Streams, publishing and reading: thin handlers that decode the request, call the broker,
// and encode the result (docs/http-api.md describes each endpoint).
#include <algorithm>
#include <charconv>

#include <boost/beast/http/field.hpp>
#include <boost/json/parse.hpp>

#include "msgstore/limits.h"
#include "server/json_codec.h"
#include "server/message_json.h"
#include "server/routes.h"

namespace msgstore::server {
namespace {

constexpr std::string_view header_prefix = "msgstore-header-";

Result<json::value> parse_json_body(const RequestContext& context) {
  if (!content_type_is(context.request, "application/json")) {
    return Status(ErrorCode::unsupported_media_type, "the body must be application/json");
  }
  boost::system::error_code error;
  json::value value = json::parse(context.request.body(), error);
  if (error) return Status(ErrorCode::invalid_argument, "malformed JSON: " + error.message());
  return value;
}

json::array positions_json(const std::vector<Position>& positions, bool with_stream) {
  json::array array;
  for (const Position& position : positions) {
    json::object object;
    if (with_stream) object["stream"] = position.stream;
    object["partition"] = position.partition;
    object["offset"] = position.offset;
    array.push_back(std::move(object));
  }
  return array;
}

// Adds the partition's log start and high watermark to an offset error, so a client can
// correct its position without another request.
asio::awaitable<HttpResponse> read_error(RequestContext& context, const Status& error, std::uint32_t partition) {
  json::object details;
  if (error.code() == ErrorCode::offset_out_of_range) {
    auto info = co_await context.server.broker().describe_stream(context.parameter("stream"));
    if (info && partition < info->partitions.size()) {
      details["log_start_offset"] = info->partitions[partition].first_offset;
      details["high_watermark"] = info->partitions[partition].next_offset;
    }
  }
  co_return error_response(context, error, std::move(details));
}

asio::awaitable<HttpResponse> list_streams(RequestContext& context) {
  auto streams = co_await context.server.broker().list_streams();
  if (!streams) co_return error_response(context, streams.status());
  json::array array;
  for (const StreamConfig& config : *streams) array.push_back(stream_config_to_json(config));
  co_return json_response(context, http::status::ok, json::object{{"streams", std::move(array)}});
}

asio::awaitable<HttpResponse> create_stream(RequestContext& context) {
  auto body = parse_json_body(context);
  if (!body) co_return error_response(context, body.status());
  StreamConfig config;
  Status applied = apply_stream_config_json(*body, config, false);
  if (!applied) co_return error_response(context, applied);
  if (config.subjects.empty() && !config.name.empty()) config.subjects = {config.name + ".>", config.name};
  Status created = co_await context.server.broker().create_stream(config);
  if (!created) co_return error_response(context, created, {{"stream", config.name}});
  auto info = co_await context.server.broker().describe_stream(config.name);
  if (!info) co_return error_response(context, info.status());
  auto response = json_response(context, http::status::created, stream_info_to_json(*info));
  response.message.set(http::field::location, "/v1/streams/" + config.name);
  co_return response;
}

asio::awaitable<HttpResponse> describe_stream(RequestContext& context) {
  auto info = co_await context.server.broker().describe_stream(context.parameter("stream"));
  if (!info) co_return error_response(context, info.status(), {{"stream", context.parameter("stream")}});
  co_return json_response(context, http::status::ok, stream_info_to_json(*info));
}

asio::awaitable<HttpResponse> update_stream(RequestContext& context) {
  auto body = parse_json_body(context);
  if (!body) co_return error_response(context, body.status());
  const std::string& name = context.parameter("stream");
  auto info = co_await context.server.broker().describe_stream(name);
  if (!info) co_return error_response(context, info.status(), {{"stream", name}});
  StreamConfig config = info->config;
  Status applied = apply_stream_config_json(*body, config, true);
  if (!applied) co_return error_response(context, applied);
  Status updated = co_await context.server.broker().update_stream(config);
  if (!updated) co_return error_response(context, updated, {{"stream", name}});
  auto described = co_await context.server.broker().describe_stream(name);
  if (!described) co_return error_response(context, described.status());
  co_return json_response(context, http::status::ok, stream_info_to_json(*described));
}

asio::awaitable<HttpResponse> delete_stream(RequestContext& context) {
  const std::string& name = context.parameter("stream");
  Status deleted = co_await context.server.broker().delete_stream(name);
  if (!deleted) co_return error_response(context, deleted, {{"stream", name}});
  co_return json_response(context, http::status::ok, json::object{{"stream", name}, {"deleted", true}});
}

// The metadata of a raw-body publish, from its Msgstore-* request headers.
struct RawMessageMetadata {
  std::string subject;
  std::optional<std::string> key;
  std::vector<std::pair<std::string, std::string>> headers;
  std::vector<HeaderView> header_views;  // over `headers`; filled by outgoing()
  TimestampMs timestamp_ms = timestamp_now;
  std::optional<std::string> message_id;       // Msgstore-Message-Id: duplicate suppression
  std::optional<Offset> expected_offset;       // Msgstore-Expected-Offset: N or "empty"
  std::optional<Offset> expected_key_offset;   // Msgstore-Expected-Key-Offset: N or "empty"
  std::optional<std::int64_t> ttl_ms;          // Msgstore-TTL-Ms

  OutgoingMessage outgoing(std::string_view payload) {
    header_views.clear();
    for (const auto& header : headers) header_views.push_back({header.first, header.second});
    OutgoingMessage message;
    message.subject = subject;
    if (key) message.key = std::string_view(*key);
    message.headers = header_views;
    message.payload = payload;
    message.timestamp_ms = timestamp_ms;
    if (message_id) message.message_id = std::string_view(*message_id);
    message.expected_offset = expected_offset;
    message.expected_key_offset = expected_key_offset;
    message.ttl_ms = ttl_ms;
    return message;
  }
};

// Msgstore-Subject (unless `subject_fixed`), Msgstore-Key, Msgstore-Timestamp-Ms,
// Msgstore-Header-<name>, and the policies: Msgstore-Message-Id (duplicate suppression),
// Msgstore-Expected-Offset / Msgstore-Expected-Key-Offset (conditional append; 412 with the
// actual offset on mismatch) and Msgstore-TTL-Ms.
Result<RawMessageMetadata> parse_raw_metadata(const HttpRequest& request, std::string default_subject, bool subject_fixed) {
  RawMessageMetadata metadata;
  metadata.subject = std::move(default_subject);
  for (const auto& field : request) {
    const std::string_view name = field.name_string();
    const std::string_view value = field.value();
    if (beast::iequals(name, "msgstore-subject") && !subject_fixed) {
      metadata.subject = std::string(value);
    } else if (beast::iequals(name, "msgstore-key")) {
      metadata.key = std::string(value);
    } else if (beast::iequals(name, "msgstore-timestamp-ms")) {
      std::int64_t parsed = 0;
      const auto [end, error] = std::from_chars(value.data(), value.data() + value.size(), parsed);
      if (value.empty() || error != std::errc() || end != value.data() + value.size() || parsed < 0) {
        return Status(ErrorCode::invalid_argument,
                      "header Msgstore-Timestamp-Ms: '" + std::string(value) + "' is not milliseconds since the epoch");
      }
      metadata.timestamp_ms = parsed;
    } else if (name.size() > header_prefix.size() && beast::iequals(name.substr(0, header_prefix.size()), header_prefix)) {
      metadata.headers.emplace_back(std::string(name.substr(header_prefix.size())), std::string(value));
    } else if (beast::iequals(name, "msgstore-message-id")) {
      metadata.message_id = std::string(value);
    } else if (beast::iequals(name, "msgstore-expected-offset") || beast::iequals(name, "msgstore-expected-key-offset")) {
      Offset parsed = 0;
      if (value == "empty") {
        parsed = expected_offset_empty;
      } else {
        const auto [end, error] = std::from_chars(value.data(), value.data() + value.size(), parsed);
        if (value.empty() || error != std::errc() || end != value.data() + value.size()) {
          return Status(ErrorCode::invalid_argument,
                        "header " + std::string(name) + ": '" + std::string(value) + "' is not an offset or \"empty\"");
        }
      }
      (beast::iequals(name, "msgstore-expected-offset") ? metadata.expected_offset : metadata.expected_key_offset) = parsed;
    } else if (beast::iequals(name, "msgstore-ttl-ms")) {
      std::int64_t parsed = 0;
      const auto [end, error] = std::from_chars(value.data(), value.data() + value.size(), parsed);
      if (value.empty() || error != std::errc() || end != value.data() + value.size() || parsed <= 0) {
        return Status(ErrorCode::invalid_argument, "header Msgstore-TTL-Ms: '" + std::string(value) + "' is not a positive number of milliseconds");
      }
      metadata.ttl_ms = parsed;
    }
  }
  return metadata;
}

// POST /v1/streams/{stream}/messages: raw body = payload, metadata in Msgstore-* headers.
asio::awaitable<HttpResponse> publish_one(RequestContext& context) {
  const std::string& stream = context.parameter("stream");
  auto metadata = parse_raw_metadata(context.request, stream, false);
  if (!metadata) co_return error_response(context, metadata.status());
  const OutgoingMessage message = metadata->outgoing(context.request.body());
  auto positions = co_await context.server.broker().publish_to(stream, std::span<const OutgoingMessage>(&message, 1));
  if (!positions) co_return error_response(context, positions.status(), {{"stream", stream}});
  if (positions->empty()) co_return error_response(context, Status(ErrorCode::internal_error, "publish returned no position"));
  // The hottest answer of the API, written directly (same bytes as json_response would give).
  std::string body;
  body.reserve(96);
  append_position_json(body, positions->front());
  body.push_back('\n');
  co_return text_response(context, http::status::ok, std::move(body), "application/json");
}

// POST /v1/streams/{stream}/batch: JSON {"messages":[...]} or NDJSON, all or nothing.
asio::awaitable<HttpResponse> publish_batch(RequestContext& context) {
  const std::string& stream = context.parameter("stream");
  const bool ndjson = content_type_is(context.request, "application/x-ndjson");
  if (!ndjson && !content_type_is(context.request, "application/json")) {
    co_return error_response(context, Status(ErrorCode::unsupported_media_type,
                                             "a batch body must be application/json or application/x-ndjson"));
  }
  std::optional<std::size_t> error_index;
  auto messages = decode_batch(context.request.body(), ndjson, stream, context.server.config().batch_messages_max, &error_index);
  if (!messages) {
    json::object details;
    if (error_index) details["index"] = *error_index;
    const auto status = messages.status().code() == ErrorCode::limit_exceeded ? std::optional(http::status::payload_too_large)
                                                                             : std::nullopt;
    co_return error_response(context, messages.status(), std::move(details), status);
  }
  std::vector<std::vector<HeaderView>> header_views;
  const std::vector<OutgoingMessage> outgoing = outgoing_views(*messages, header_views);
  auto positions = co_await context.server.broker().publish_to(stream, outgoing);
  if (!positions) co_return error_response(context, positions.status(), {{"stream", stream}});
  // The broker answers in message order.
  co_return json_response(context, http::status::ok, json::object{{"stream", stream}, {"results", positions_json(*positions, false)}});
}

// POST /v1/publish/{subject}: routed by subject to every capturing stream.
asio::awaitable<HttpResponse> publish_by_subject(RequestContext& context) {
  const std::string& subject = context.parameter("subject");
  auto metadata = parse_raw_metadata(context.request, subject, true);
  if (!metadata) co_return error_response(context, metadata.status());
  const OutgoingMessage message = metadata->outgoing(context.request.body());
  auto positions = co_await context.server.broker().publish(std::span<const OutgoingMessage>(&message, 1));
  if (!positions) co_return error_response(context, positions.status(), {{"subject", subject}});
  co_return json_response(context, http::status::ok, json::object{{"positions", positions_json(*positions, true)}});
}

// GET /v1/streams/{stream}/partitions/{partition}/messages?offset=|time_ms=&max_messages=&max_bytes=&wait_ms=
asio::awaitable<HttpResponse> read_messages(RequestContext& context) {
  const ServerConfig& config = context.server.config();
  broker::FetchRequest fetch;
  fetch.stream = context.parameter("stream");
  const std::string& partition_text = context.parameter("partition");
  const auto [end, error] = std::from_chars(partition_text.data(), partition_text.data() + partition_text.size(), fetch.partition);
  if (error != std::errc() || end != partition_text.data() + partition_text.size()) {
    co_return error_response(context, Status(ErrorCode::invalid_argument,
                                             "partition '" + partition_text + "' is not a non-negative integer"));
  }
  if (context.query_value("offset") && context.query_value("time_ms")) {
    co_return error_response(context, Status(ErrorCode::invalid_argument, "give offset or time_ms, not both"));
  }
  if (context.query_value("offset")) {
    auto offset = query_unsigned(context, "offset", 0, UINT64_MAX);
    if (!offset) co_return error_response(context, offset.status());
    fetch.start = StartPosition::from_offset(*offset);
  } else if (context.query_value("time_ms")) {
    auto time_ms = query_signed(context, "time_ms", 0);
    if (!time_ms) co_return error_response(context, time_ms.status());
    fetch.start = StartPosition::from_time(*time_ms);
  }
  auto max_messages = query_unsigned(context, "max_messages", 1000, limits::read_messages_max);
  if (!max_messages) co_return error_response(context, max_messages.status());
  auto max_bytes = query_unsigned(context, "max_bytes", 1024 * 1024, limits::read_bytes_max);
  if (!max_bytes) co_return error_response(context, max_bytes.status());
  auto wait_ms = query_unsigned(context, "wait_ms", 0, UINT32_MAX);
  if (!wait_ms) co_return error_response(context, wait_ms.status());
  if (*max_messages == 0) co_return error_response(context, Status(ErrorCode::invalid_argument, "max_messages must be at least 1"));
  // The JSON response can be larger than the raw messages (escapes, base64 grows by 4/3):
  // keep the raw bytes to half of what a connection may hold.
  fetch.read_options.max_messages = *max_messages;
  fetch.read_options.max_bytes = std::max<std::uint64_t>(1, std::min<std::uint64_t>(*max_bytes, config.connection_in_flight_bytes_max / 2));
  fetch.wait = std::chrono::milliseconds(std::min<std::uint64_t>(*wait_ms, config.long_poll_wait_ms_max));
  auto result = co_await context.server.broker().fetch(fetch);
  if (!result) co_return co_await read_error(context, result.status(), fetch.partition);
  json::array messages;
  for (const Message& message : result->messages) messages.push_back(message_to_json(message));
  co_return json_response(context, http::status::ok,
                          json::object{{"messages", std::move(messages)},
                                       {"next_offset", result->next_offset},
                                       {"log_start_offset", result->log_start_offset},
                                       {"high_watermark", result->high_watermark}});
}

}  // namespace

void register_stream_routes(Router& router, ServerContext&) {
  router.add(http::verb::get, "/v1/streams", list_streams);
  router.add(http::verb::post, "/v1/streams", create_stream);
  router.add(http::verb::get, "/v1/streams/{stream}", describe_stream);
  router.add(http::verb::patch, "/v1/streams/{stream}", update_stream);
  router.add(http::verb::delete_, "/v1/streams/{stream}", delete_stream);
  router.add(http::verb::post, "/v1/streams/{stream}/messages", publish_one);
  router.add(http::verb::post, "/v1/streams/{stream}/batch", publish_batch);
  router.add(http::verb::post, "/v1/publish/{subject}", publish_by_subject);
  router.add(http::verb::get, "/v1/streams/{stream}/partitions/{partition}/messages", read_messages);
}

}  // namespace msgstore::server
