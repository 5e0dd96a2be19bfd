#include "server/json_codec.h"

#include <boost/json/parse.hpp>

#include "base/text_encoding.h"
#include "msgstore/limits.h"

namespace msgstore::server {
namespace {

Status field_error(std::string_view field, std::string_view problem) {
  return Status(ErrorCode::invalid_argument, "field \"" + std::string(field) + "\": " + std::string(problem));
}

template <typename Unsigned>
Status read_unsigned(const json::value& value, std::string_view field, Unsigned& out) {
  std::uint64_t number = 0;
  if (value.is_uint64()) {
    number = value.get_uint64();
  } else if (value.is_int64() && value.get_int64() >= 0) {
    number = static_cast<std::uint64_t>(value.get_int64());
  } else {
    return field_error(field, "must be a non-negative integer");
  }
  if (number > std::numeric_limits<Unsigned>::max()) return field_error(field, "is too large");
  out = static_cast<Unsigned>(number);
  return Status::ok();
}

Status read_signed(const json::value& value, std::string_view field, std::int64_t& out) {
  if (value.is_int64()) {
    out = value.get_int64();
  } else if (value.is_uint64() && value.get_uint64() <= static_cast<std::uint64_t>(INT64_MAX)) {
    out = static_cast<std::int64_t>(value.get_uint64());
  } else {
    return field_error(field, "must be an integer");
  }
  return Status::ok();
}

Status read_string(const json::value& value, std::string_view field, std::string& out) {
  if (!value.is_string()) return field_error(field, "must be a string");
  out = std::string(value.get_string());
  return Status::ok();
}

// A JSON array of strings; `what` names the elements in the error ("subject patterns").
Status read_string_array(const json::value& value, std::string_view field, std::string_view what,
                         std::vector<std::string>& out) {
  if (!value.is_array()) return field_error(field, "must be an array of " + std::string(what));
  std::vector<std::string> strings;
  for (const json::value& element : value.get_array()) {
    if (!element.is_string()) return field_error(field, "must be an array of strings");
    strings.emplace_back(element.get_string());
  }
  out = std::move(strings);
  return Status::ok();
}

void put_bytes(json::object& object, std::string_view text_name, std::string_view base64_name, std::string_view bytes) {
  if (is_valid_utf8(bytes)) {
    object[text_name] = bytes;
  } else {
    object[base64_name] = base64_encode(bytes);
  }
}

}  // namespace

json::object stream_config_to_json(const StreamConfig& config) {
  json::array subjects;
  for (const std::string& subject : config.subjects) subjects.emplace_back(subject);
  json::array indexed_headers;
  for (const std::string& header : config.indexed_headers) indexed_headers.emplace_back(header);
  return json::object{{"name", config.name},
                      {"subjects", std::move(subjects)},
                      {"partitions", config.partitions},
                      {"max_age_ms", config.max_age_ms},
                      {"max_bytes", config.max_bytes},
                      {"max_messages", config.max_messages},
                      {"fsync", fsync_policy_to_string(config.fsync, config.fsync_interval_ms)},
                      {"max_message_bytes", config.max_message_bytes},
                      {"segment_bytes", config.segment_bytes},
                      {"segment_age_ms", config.segment_age_ms},
                      {"indexes_enabled", config.indexes_enabled},
                      {"indexed_headers", std::move(indexed_headers)},
                      {"dedup_window_ms", config.dedup_window_ms},
                      {"cleanup", cleanup_policy_to_string(config.cleanup)},
                      {"tombstone_retention_ms", config.tombstone_retention_ms}};
}

json::object stream_info_to_json(const StreamInfo& info) {
  json::array partitions;
  for (const PartitionInfo& partition : info.partitions) {
    json::array damage;
    for (const std::string& problem : partition.damage) damage.emplace_back(problem);
    partitions.push_back(json::object{{"partition", partition.partition},
                                      {"first_offset", partition.first_offset},
                                      {"next_offset", partition.next_offset},
                                      {"bytes", partition.bytes},
                                      {"messages", partition.messages},
                                      {"segments", partition.segments},
                                      {"first_timestamp_ms", partition.first_timestamp_ms},
                                      {"last_timestamp_ms", partition.last_timestamp_ms},
                                      {"damage", std::move(damage)}});
  }
  return json::object{{"config", stream_config_to_json(info.config)},
                      {"bytes", info.bytes},
                      {"messages", info.messages},
                      {"partitions", std::move(partitions)}};
}

Status apply_stream_config_json(const json::value& body, StreamConfig& config, bool for_update) {
  if (!body.is_object()) return Status(ErrorCode::invalid_argument, "the body must be a JSON object (a stream config)");
  for (const auto& field : body.get_object()) {
    const std::string_view name = field.key();
    const json::value& value = field.value();
    if (name == "name") {
      std::string stream_name;
      MSGSTORE_RETURN_IF_ERROR(read_string(value, name, stream_name));
      if (for_update && stream_name != config.name) return field_error(name, "a stream cannot be renamed");
      config.name = std::move(stream_name);
    } else if (name == "subjects") {
      MSGSTORE_RETURN_IF_ERROR(read_string_array(value, name, "subject patterns", config.subjects));
    } else if (name == "partitions") {
      MSGSTORE_RETURN_IF_ERROR(read_unsigned(value, name, config.partitions));
    } else if (name == "max_age_ms") {
      MSGSTORE_RETURN_IF_ERROR(read_signed(value, name, config.max_age_ms));
    } else if (name == "max_bytes") {
      MSGSTORE_RETURN_IF_ERROR(read_unsigned(value, name, config.max_bytes));
    } else if (name == "max_messages") {
      MSGSTORE_RETURN_IF_ERROR(read_unsigned(value, name, config.max_messages));
    } else if (name == "fsync") {
      std::string policy;
      MSGSTORE_RETURN_IF_ERROR(read_string(value, name, policy));
      Status parsed = parse_fsync_policy(policy, config.fsync, config.fsync_interval_ms);
      if (!parsed) return field_error(name, parsed.message());
    } else if (name == "max_message_bytes") {
      MSGSTORE_RETURN_IF_ERROR(read_unsigned(value, name, config.max_message_bytes));
    } else if (name == "segment_bytes") {
      MSGSTORE_RETURN_IF_ERROR(read_unsigned(value, name, config.segment_bytes));
    } else if (name == "segment_age_ms") {
      MSGSTORE_RETURN_IF_ERROR(read_signed(value, name, config.segment_age_ms));
    } else if (name == "indexes_enabled") {
      if (!value.is_bool()) return field_error(name, "must be true or false");
      config.indexes_enabled = value.get_bool();
    } else if (name == "indexed_headers") {
      MSGSTORE_RETURN_IF_ERROR(read_string_array(value, name, "header names", config.indexed_headers));
    } else if (name == "dedup_window_ms") {
      MSGSTORE_RETURN_IF_ERROR(read_signed(value, name, config.dedup_window_ms));
    } else if (name == "cleanup") {
      std::string policy;
      MSGSTORE_RETURN_IF_ERROR(read_string(value, name, policy));
      Status parsed = parse_cleanup_policy(policy, config.cleanup);
      if (!parsed) return field_error(name, parsed.message());
    } else if (name == "tombstone_retention_ms") {
      MSGSTORE_RETURN_IF_ERROR(read_signed(value, name, config.tombstone_retention_ms));
    } else {
      return field_error(name, "unknown field");
    }
  }
  return Status::ok();
}

namespace {

// Message and MessageView have the same fields (owned or viewed): one encoding for both.
template <typename AnyMessage>
json::object encode_message(const AnyMessage& message) {
  json::object object{{"offset", message.offset}, {"timestamp_ms", message.timestamp_ms}, {"subject", message.subject}};
  if (message.key) put_bytes(object, "key", "key_base64", *message.key);
  json::object headers;
  json::object headers_base64;
  for (const auto& header : message.headers) {
    if (is_valid_utf8(header.value) && is_valid_utf8(header.name)) {
      headers[header.name] = header.value;
    } else if (is_valid_utf8(header.name)) {
      headers_base64[header.name] = base64_encode(header.value);
    }
  }
  object["headers"] = std::move(headers);
  if (!headers_base64.empty()) object["headers_base64"] = std::move(headers_base64);
  put_bytes(object, "payload", "payload_base64", message.payload);
  return object;
}

}  // namespace

json::object message_to_json(const Message& message) { return encode_message(message); }
json::object message_to_json(const MessageView& message) { return encode_message(message); }

json::object located_message_to_json(std::string_view stream, std::uint32_t partition, const MessageView& message) {
  json::object object{{"stream", stream}, {"partition", partition}};
  for (auto& field : encode_message(message)) object.emplace(field.key(), std::move(field.value()));
  return object;
}

Result<DecodedMessage> decode_message_json(const json::value& value, std::string_view default_subject) {
  if (!value.is_object()) return Status(ErrorCode::invalid_argument, "a message must be a JSON object");
  DecodedMessage message;
  message.subject = std::string(default_subject);
  bool has_payload = false;
  for (const auto& field : value.get_object()) {
    const std::string_view name = field.key();
    const json::value& item = field.value();
    if (name == "subject") {
      MSGSTORE_RETURN_IF_ERROR(read_string(item, name, message.subject));
    } else if (name == "key") {
      if (item.is_null()) continue;
      std::string key;
      MSGSTORE_RETURN_IF_ERROR(read_string(item, name, key));
      message.key = std::move(key);
    } else if (name == "key_base64") {
      if (!item.is_string()) return field_error(name, "must be a base64 string");
      auto key = base64_decode(item.get_string());
      if (!key) return field_error(name, "is not valid base64");
      message.key = std::move(*key);
    } else if (name == "headers") {
      if (!item.is_object()) return field_error(name, "must be an object of string values");
      for (const auto& header : item.get_object()) {
        if (!header.value().is_string()) return field_error(name, "header values must be strings");
        message.headers.emplace_back(std::string(header.key()), std::string(header.value().get_string()));
      }
    } else if (name == "payload" || name == "payload_base64") {
      if (has_payload) return field_error(name, "give either payload or payload_base64, not both");
      has_payload = true;
      if (!item.is_string()) return field_error(name, "must be a string");
      if (name == "payload") {
        message.payload = std::string(item.get_string());
      } else {
        auto payload = base64_decode(item.get_string());
        if (!payload) return field_error(name, "is not valid base64");
        message.payload = std::move(*payload);
      }
    } else if (name == "timestamp_ms") {
      MSGSTORE_RETURN_IF_ERROR(read_signed(item, name, message.timestamp_ms));
      if (message.timestamp_ms < 0) return field_error(name, "must not be negative");
    } else {
      return field_error(name, "unknown field");
    }
  }
  return message;
}

Result<std::vector<DecodedMessage>> decode_batch(std::string_view body, bool ndjson, std::string_view default_subject,
                                                 std::size_t messages_max, std::optional<std::size_t>* error_index) {
  std::vector<DecodedMessage> messages;
  const auto too_many = [&] {
    return Status(ErrorCode::limit_exceeded,
                  "a batch holds at most " + std::to_string(messages_max) + " messages (batch_messages_max)");
  };
  const auto add = [&](const json::value& value) -> Status {
    if (messages.size() >= messages_max) return too_many();
    auto message = decode_message_json(value, default_subject);
    if (!message) {
      *error_index = messages.size();
      return Status(message.status().code(), "message " + std::to_string(messages.size()) + ": " + message.status().message());
    }
    messages.push_back(std::move(*message));
    return Status::ok();
  };
  boost::system::error_code error;
  if (ndjson) {
    std::size_t line_number = 0;
    while (!body.empty()) {
      const std::size_t newline = body.find('\n');
      std::string_view line = body.substr(0, newline);
      body = newline == std::string_view::npos ? std::string_view() : body.substr(newline + 1);
      ++line_number;
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      if (line.find_first_not_of(" \t") == std::string_view::npos) continue;
      // A line past the limit is refused as one too many, whatever it holds: an error index
      // always names a message inside the batch.
      if (messages.size() >= messages_max) return too_many();
      json::value value = json::parse(line, error);
      if (error) {
        *error_index = messages.size();
        return Status(ErrorCode::invalid_argument,
                      "line " + std::to_string(line_number) + ": malformed JSON: " + error.message());
      }
      MSGSTORE_RETURN_IF_ERROR(add(value));
    }
  } else {
    json::value value = json::parse(body, error);
    if (error) return Status(ErrorCode::invalid_argument, "malformed JSON: " + error.message());
    if (!value.is_object() || !value.get_object().contains("messages") || !value.get_object().at("messages").is_array()) {
      return Status(ErrorCode::invalid_argument, "the body must be {\"messages\":[...]}");
    }
    if (value.get_object().size() != 1) return Status(ErrorCode::invalid_argument, "unknown field beside \"messages\"");
    const json::array& array = value.get_object().at("messages").get_array();
    if (array.size() > messages_max) return too_many();
    for (const json::value& item : array) MSGSTORE_RETURN_IF_ERROR(add(item));
  }
  if (messages.empty()) return Status(ErrorCode::invalid_argument, "the batch holds no messages");
  return messages;
}

std::vector<OutgoingMessage> outgoing_views(const std::vector<DecodedMessage>& messages,
                                            std::vector<std::vector<HeaderView>>& header_views) {
  header_views.assign(messages.size(), {});
  std::vector<OutgoingMessage> outgoing;
  outgoing.reserve(messages.size());
  for (std::size_t i = 0; i < messages.size(); ++i) {
    const DecodedMessage& message = messages[i];
    for (const auto& header : message.headers) header_views[i].push_back({header.first, header.second});
    OutgoingMessage view;
    view.subject = message.subject;
    if (message.key) view.key = std::string_view(*message.key);
    view.headers = header_views[i];
    view.payload = message.payload;
    view.timestamp_ms = message.timestamp_ms;
    outgoing.push_back(view);
  }
  return outgoing;
}

// ---------------------------------------------------------------------------------------------
// Durable consumer bodies

namespace {

// The consumer endpoints' error wording ("field 'x' must be ..."), kept as published.
Status consumer_field_error(std::string_view field, std::string_view expected) {
  return Status(ErrorCode::invalid_argument, "field '" + std::string(field) + "' must be " + std::string(expected));
}

// A non-negative integer field up to `max`.
Status consumer_unsigned_field(const json::value& value, std::string_view field, std::uint64_t max, std::uint64_t& out) {
  if (value.is_uint64()) out = value.as_uint64();
  else if (value.is_int64() && value.as_int64() >= 0) out = static_cast<std::uint64_t>(value.as_int64());
  else return consumer_field_error(field, "a non-negative integer");
  if (out > max) return consumer_field_error(field, "at most " + std::to_string(max));
  return Status::ok();
}

}  // namespace

Result<json::object> parse_json_object(std::string_view body) {
  boost::system::error_code error;
  json::value value = json::parse(body, error);
  if (error) return Status(ErrorCode::invalid_argument, "malformed JSON: " + error.message());
  if (!value.is_object()) return Status(ErrorCode::invalid_argument, "the body must be a JSON object");
  return std::move(value.as_object());
}

Result<ConsumerConfig> decode_consumer_config(const json::object& body) {
  ConsumerConfig config;
  bool start_given = false;
  for (const auto& field : body) {
    const std::string_view key = field.key();
    const json::value& value = field.value();
    std::uint64_t number = 0;
    if (key == "name" || key == "subject_filter" || key == "dead_letter_stream") {
      if (!value.is_string()) return consumer_field_error(key, "a string");
      std::string text(value.as_string());
      if (key == "name") config.name = std::move(text);
      else if (key == "subject_filter") config.subject_filter = std::move(text);
      else config.dead_letter_stream = std::move(text);
    } else if (key == "start") {
      if (!value.is_string() || (value.as_string() != "beginning" && value.as_string() != "end")) {
        return consumer_field_error(key, "\"beginning\" or \"end\" (or give start_offset or start_time_ms)");
      }
      if (start_given) return Status(ErrorCode::invalid_argument, "give one of start, start_offset, start_time_ms");
      start_given = true;
      config.start = value.as_string() == "end" ? StartPosition::new_only() : StartPosition::from_beginning();
    } else if (key == "start_offset" || key == "start_time_ms") {
      MSGSTORE_RETURN_IF_ERROR(consumer_unsigned_field(value, key, static_cast<std::uint64_t>(INT64_MAX), number));
      if (start_given) return Status(ErrorCode::invalid_argument, "give one of start, start_offset, start_time_ms");
      start_given = true;
      config.start = key == "start_offset" ? StartPosition::from_offset(number)
                                           : StartPosition::from_time(static_cast<TimestampMs>(number));
    } else if (key == "ack_wait_ms") {
      MSGSTORE_RETURN_IF_ERROR(
          consumer_unsigned_field(value, key, static_cast<std::uint64_t>(limits::consumer_ack_wait_ms_max), number));
      config.ack_wait_ms = static_cast<std::int64_t>(number);
    } else if (key == "max_deliveries" || key == "max_ack_pending") {
      MSGSTORE_RETURN_IF_ERROR(consumer_unsigned_field(value, key, UINT32_MAX, number));
      (key == "max_deliveries" ? config.max_deliveries : config.max_ack_pending) = static_cast<std::uint32_t>(number);
    } else if (key == "backoff_ms") {
      if (!value.is_array()) return consumer_field_error(key, "an array of milliseconds");
      for (const json::value& item : value.as_array()) {
        MSGSTORE_RETURN_IF_ERROR(
            consumer_unsigned_field(item, key, static_cast<std::uint64_t>(limits::consumer_ack_wait_ms_max), number));
        config.backoff_ms.push_back(static_cast<std::int64_t>(number));
      }
    } else {
      return Status(ErrorCode::invalid_argument, "unknown field '" + std::string(key) + "'");
    }
  }
  if (config.name.empty()) return consumer_field_error("name", "given");
  return config;
}

Result<FetchBody> decode_fetch_body(const json::object& body) {
  FetchBody fetch;
  for (const auto& field : body) {
    std::uint64_t max_bytes = 0;
    Status parsed;
    if (field.key() == "max_messages") {
      parsed = consumer_unsigned_field(field.value(), field.key(), limits::consumer_fetch_messages_max, fetch.max_messages);
    } else if (field.key() == "max_bytes") {
      parsed = consumer_unsigned_field(field.value(), field.key(), UINT64_MAX, max_bytes);
      fetch.max_bytes = max_bytes;
    } else if (field.key() == "wait_ms") {
      parsed = consumer_unsigned_field(field.value(), field.key(), UINT32_MAX, fetch.wait_ms);
    } else {
      parsed = Status(ErrorCode::invalid_argument, "unknown field '" + std::string(field.key()) + "'");
    }
    if (!parsed) return parsed;
  }
  return fetch;
}

Result<SettleBody> decode_settle_body(const json::object& body, bool delay_allowed) {
  SettleBody settle;
  for (const auto& field : body) {
    if (field.key() == "deliveries") {
      if (!field.value().is_array()) return consumer_field_error("deliveries", "an array of delivery tokens");
      for (const json::value& token : field.value().as_array()) {
        if (!token.is_string()) return consumer_field_error("deliveries", "an array of delivery tokens");
        if (settle.tokens.size() >= limits::consumer_fetch_messages_max) {
          return Status(ErrorCode::limit_exceeded,
                        "at most " + std::to_string(limits::consumer_fetch_messages_max) + " deliveries per request");
        }
        settle.tokens.emplace_back(token.as_string());
      }
    } else if (field.key() == "delay_ms" && delay_allowed) {
      std::uint64_t delay_ms = 0;
      MSGSTORE_RETURN_IF_ERROR(
          consumer_unsigned_field(field.value(), "delay_ms", static_cast<std::uint64_t>(limits::consumer_ack_wait_ms_max), delay_ms));
      settle.delay = std::chrono::milliseconds(delay_ms);
    } else {
      return Status(ErrorCode::invalid_argument, "unknown field '" + std::string(field.key()) + "'");
    }
  }
  if (settle.tokens.empty()) return consumer_field_error("deliveries", "a non-empty array of delivery tokens");
  return settle;
}

Result<std::uint64_t> apply_credit_grant(std::string_view text, std::uint64_t outstanding_credit, std::uint64_t credit_max) {
  boost::system::error_code error;
  json::value value = json::parse(text, error);
  const Status invalid(ErrorCode::invalid_argument,
                       "expected a text frame {\"credit\": N} with N a positive integer (got '" +
                           std::string(text.substr(0, 100)) + "')");
  if (error || !value.is_object() || value.get_object().size() != 1) return invalid;
  const json::value* credit = value.get_object().if_contains("credit");
  if (credit == nullptr) return invalid;
  std::uint64_t grant = 0;
  if (credit->is_uint64()) {
    grant = credit->get_uint64();
  } else if (credit->is_int64() && credit->get_int64() > 0) {
    grant = static_cast<std::uint64_t>(credit->get_int64());
  } else {
    return invalid;
  }
  if (grant == 0) return invalid;
  // Compared without forming the sum: outstanding + grant could wrap around 2^64.
  if (outstanding_credit > credit_max || grant > credit_max - outstanding_credit) {
    return Status(ErrorCode::limit_exceeded, "credit above " + std::to_string(credit_max) +
                                                 " outstanding messages (grant smaller amounts as you read)");
  }
  return outstanding_credit + grant;
}

}  // namespace msgstore::server
