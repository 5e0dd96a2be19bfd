// server/json_codec.h: the HTTP API's JSON bodies <-> the store's values (Boost.JSON).
//
// Decoding is separate from the handlers so it can be unit-tested and fuzzed on its own; every
// decoder returns invalid_argument naming the offending field (and, for batches, the message
// index) instead of throwing. Shapes are documented in docs/http-api.md; the stream config and
// stream description match the CLI's `stream info` output field for field.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

#include "msgstore/consumer.h"
#include "msgstore/message.h"
#include "msgstore/status.h"
#include "msgstore/store.h"
#include "msgstore/stream.h"

namespace msgstore::server {

namespace json = boost::json;

json::object stream_config_to_json(const StreamConfig& config);
json::object stream_info_to_json(const StreamInfo& info);

// Applies the fields present in `body` to `config`. With `for_update`, "name" may appear only
// if it equals config.name. Unknown fields and wrong types are errors.
Status apply_stream_config_json(const json::value& body, StreamConfig& config, bool for_update);

// {"offset","timestamp_ms","subject","key","headers":{..},"payload"} with payload (and key,
// header values) as text when valid UTF-8, else "payload_base64" ("key_base64",
// "headers_base64":{name: base64}).
json::object message_to_json(const Message& message);
json::object message_to_json(const MessageView& message);

// The same with its origin first: {"stream","partition","offset",...}; what the live streams
// and the query endpoint send, since their messages come from several partitions or streams.
json::object located_message_to_json(std::string_view stream, std::uint32_t partition, const MessageView& message);

// A message decoded from a batch body, owning its bytes.
struct DecodedMessage {
  std::string subject;
  std::optional<std::string> key;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string payload;
  TimestampMs timestamp_ms = timestamp_now;
};

// One message object: {"subject","key","headers":{"n":"v"},"payload"|"payload_base64",
// "timestamp_ms"}; a missing subject becomes `default_subject`.
Result<DecodedMessage> decode_message_json(const json::value& value, std::string_view default_subject);

// A whole batch body: application/json {"messages":[...]} or application/x-ndjson (one
// message object per non-empty line). At most `messages_max` messages (limit_exceeded).
// Errors carry the message index in `error_index` when one message is at fault.
Result<std::vector<DecodedMessage>> decode_batch(std::string_view body, bool ndjson, std::string_view default_subject,
                                                 std::size_t messages_max, std::optional<std::size_t>* error_index);

// Views over decoded messages for Store::publish_to; `header_views` backs the header spans
// and must outlive the returned messages.
std::vector<OutgoingMessage> outgoing_views(const std::vector<DecodedMessage>& messages,
                                            std::vector<std::vector<HeaderView>>& header_views);

// ---------------------------------------------------------------------------------------------
// Durable consumer bodies (docs/http-api.md, "Durable consumers"). Errors name the field.

// A request body that must be one JSON object: invalid_argument for malformed JSON or another
// JSON type. (The Content-Type check stays with the handler.)
Result<json::object> parse_json_object(std::string_view body);

// POST /v1/streams/{stream}/consumers: {"name", "subject_filter", "start" | "start_offset" |
// "start_time_ms", "ack_wait_ms", "max_deliveries", "max_ack_pending", "backoff_ms": [..],
// "dead_letter_stream"}. "name" is required; unknown fields are errors.
Result<ConsumerConfig> decode_consumer_config(const json::object& body);

// POST .../fetch: {"max_messages","max_bytes","wait_ms"}, all optional.
struct FetchBody {
  std::uint64_t max_messages = 100;  // at most limits::consumer_fetch_messages_max
  std::optional<std::uint64_t> max_bytes;
  std::uint64_t wait_ms = 0;  // at most UINT32_MAX; the handler clamps it to long_poll_wait_ms_max
};
Result<FetchBody> decode_fetch_body(const json::object& body);

// POST .../ack|nak|term|in_progress: {"deliveries":["token",...]} plus "delay_ms" when
// `delay_allowed` (nak). Between 1 and limits::consumer_fetch_messages_max tokens; an empty
// list is invalid_argument, a longer one limit_exceeded.
struct SettleBody {
  std::vector<std::string> tokens;
  std::optional<std::chrono::milliseconds> delay;
};
Result<SettleBody> decode_settle_body(const json::object& body, bool delay_allowed);

// ---------------------------------------------------------------------------------------------
// WebSocket credit

// A client's text frame {"credit": N} (N a positive integer) applied to `outstanding_credit`:
// the new outstanding credit. invalid_argument for anything else, limit_exceeded when the sum
// would pass `credit_max` (checked without overflow: a grant near 2^64 is refused, not wrapped).
Result<std::uint64_t> apply_credit_grant(std::string_view text, std::uint64_t outstanding_credit, std::uint64_t credit_max);

}  // namespace msgstore::server
