#include "consumer/consumer_config.h"

#include <charconv>

#include "base/subject.h"
#include "msgstore/limits.h"
#include "msgstore/stream.h"

namespace msgstore {

Status validate_consumer_config(const ConsumerConfig& config) {
  Status name = validate_stream_name(config.name);
  if (!name.is_ok()) return Status(ErrorCode::invalid_name, "consumer name: " + name.message());
  Status filter = base::validate_subject_pattern(config.subject_filter);
  if (!filter.is_ok()) return Status(filter.code(), "subject_filter: " + filter.message());
  if (config.ack_wait_ms < 1 || config.ack_wait_ms > limits::consumer_ack_wait_ms_max) {
    return Status(ErrorCode::invalid_argument, "ack_wait_ms must be 1 to " + std::to_string(limits::consumer_ack_wait_ms_max));
  }
  if (config.backoff_ms.size() > limits::consumer_backoff_steps_max) {
    return Status(ErrorCode::invalid_argument, "backoff_ms may have at most " + std::to_string(limits::consumer_backoff_steps_max) + " entries");
  }
  for (std::int64_t delay : config.backoff_ms) {
    if (delay < 0 || delay > limits::consumer_ack_wait_ms_max) {
      return Status(ErrorCode::invalid_argument, "backoff_ms entries must be 0 to " + std::to_string(limits::consumer_ack_wait_ms_max));
    }
  }
  if (config.max_ack_pending < 1 || config.max_ack_pending > limits::consumer_ack_pending_max) {
    return Status(ErrorCode::invalid_argument, "max_ack_pending must be 1 to " + std::to_string(limits::consumer_ack_pending_max));
  }
  if (!config.dead_letter_stream.empty()) {
    Status stream = validate_stream_name(config.dead_letter_stream);
    if (!stream.is_ok()) return Status(ErrorCode::invalid_name, "dead_letter_stream: " + stream.message());
  }
  if (config.start.kind == StartPosition::Kind::time && config.start.time_ms < 0) {
    return Status(ErrorCode::invalid_argument, "start time must not be negative");
  }
  return Status::ok();
}

std::string DeliveryToken::to_string() const {
  return stream + "/" + std::to_string(partition) + "/" + std::to_string(offset) + "/" + std::to_string(attempt);
}

Result<DeliveryToken> DeliveryToken::parse(std::string_view text) {
  auto malformed = [&] {
    return Status(ErrorCode::invalid_argument, "malformed delivery token '" + std::string(text.substr(0, 300)) +
                                                   "' (expected <stream>/<partition>/<offset>/<attempt>)");
  };
  // Stream names never contain '/', so the last three '/' split the numbers off.
  std::string_view numbers[3];
  std::string_view rest = text;
  for (int index = 2; index >= 0; --index) {
    const std::size_t slash = rest.rfind('/');
    if (slash == std::string_view::npos) return malformed();
    numbers[index] = rest.substr(slash + 1);
    rest = rest.substr(0, slash);
  }
  DeliveryToken token;
  token.stream = std::string(rest);
  if (!validate_stream_name(token.stream).is_ok()) return malformed();
  auto number = [](std::string_view digits, auto& value) {
    if (digits.empty()) return false;
    auto parsed = std::from_chars(digits.data(), digits.data() + digits.size(), value);
    return parsed.ec == std::errc() && parsed.ptr == digits.data() + digits.size();
  };
  if (!number(numbers[0], token.partition) || !number(numbers[1], token.offset) || !number(numbers[2], token.attempt) ||
      token.attempt == 0) {
    return malformed();
  }
  return token;
}

Status Consumers::ack(std::string_view stream, std::string_view name, const std::string& token) {
  auto results = settle(stream, name, AckKind::ack, std::span<const std::string>(&token, 1));
  return results ? results->front() : results.status();
}
Status Consumers::nak(std::string_view stream, std::string_view name, const std::string& token,
                      std::optional<std::chrono::milliseconds> delay) {
  auto results = settle(stream, name, AckKind::nak, std::span<const std::string>(&token, 1), delay);
  return results ? results->front() : results.status();
}
Status Consumers::term(std::string_view stream, std::string_view name, const std::string& token) {
  auto results = settle(stream, name, AckKind::term, std::span<const std::string>(&token, 1));
  return results ? results->front() : results.status();
}
Status Consumers::in_progress(std::string_view stream, std::string_view name, const std::string& token) {
  auto results = settle(stream, name, AckKind::in_progress, std::span<const std::string>(&token, 1));
  return results ? results->front() : results.status();
}

namespace consumer {
namespace {
const char* start_kind_name(StartPosition::Kind kind) {
  switch (kind) {
    case StartPosition::Kind::beginning: return "beginning";
    case StartPosition::Kind::end: return "end";
    case StartPosition::Kind::offset: return "offset";
    case StartPosition::Kind::time: return "time";
  }
  return "beginning";
}
}  // namespace

io::MetadataFields encode_consumer_config(std::string_view stream, const ConsumerConfig& config) {
  io::MetadataFields fields;
  fields["stream"] = std::string(stream);
  fields["name"] = config.name;
  fields["subject_filter"] = config.subject_filter;
  fields["start"] = start_kind_name(config.start.kind);
  fields["start_offset"] = std::to_string(config.start.offset);
  fields["start_time_ms"] = std::to_string(config.start.time_ms);
  fields["ack_wait_ms"] = std::to_string(config.ack_wait_ms);
  fields["max_deliveries"] = std::to_string(config.max_deliveries);
  std::string backoff;
  for (std::int64_t delay : config.backoff_ms) {
    if (!backoff.empty()) backoff += ',';
    backoff += std::to_string(delay);
  }
  fields["backoff_ms"] = backoff;
  fields["dead_letter_stream"] = config.dead_letter_stream;
  fields["max_ack_pending"] = std::to_string(config.max_ack_pending);
  return fields;
}

Result<ConsumerConfig> decode_consumer_config(const io::MetadataFields& fields, std::string_view stream) {
  auto text = [&](const char* key) -> Result<std::string> {
    auto found = fields.find(key);
    if (found == fields.end()) return Status(ErrorCode::corruption, std::string("consumer metadata field '") + key + "' is missing");
    return found->second;
  };
  ConsumerConfig config;
  auto owner = text("stream");
  if (!owner) return owner.status();
  if (*owner != stream) return Status(ErrorCode::corruption, "consumer metadata belongs to stream '" + *owner + "'");
  auto name = text("name");
  if (!name) return name.status();
  config.name = *name;
  auto filter = text("subject_filter");
  if (!filter) return filter.status();
  config.subject_filter = *filter;
  auto start = text("start");
  if (!start) return start.status();
  if (*start == "beginning") config.start.kind = StartPosition::Kind::beginning;
  else if (*start == "end") config.start.kind = StartPosition::Kind::end;
  else if (*start == "offset") config.start.kind = StartPosition::Kind::offset;
  else if (*start == "time") config.start.kind = StartPosition::Kind::time;
  else return Status(ErrorCode::corruption, "consumer metadata: unknown start '" + *start + "'");
  auto start_offset = io::metadata_u64(fields, "start_offset");
  if (!start_offset) return start_offset.status();
  config.start.offset = *start_offset;
  auto start_time = io::metadata_i64(fields, "start_time_ms");
  if (!start_time) return start_time.status();
  config.start.time_ms = *start_time;
  auto ack_wait = io::metadata_i64(fields, "ack_wait_ms");
  if (!ack_wait) return ack_wait.status();
  config.ack_wait_ms = *ack_wait;
  auto max_deliveries = io::metadata_u64(fields, "max_deliveries");
  if (!max_deliveries) return max_deliveries.status();
  if (*max_deliveries > UINT32_MAX) return Status(ErrorCode::corruption, "consumer metadata: max_deliveries out of range");
  config.max_deliveries = static_cast<std::uint32_t>(*max_deliveries);
  auto backoff = text("backoff_ms");
  if (!backoff) return backoff.status();
  std::string_view rest = *backoff;
  while (!rest.empty()) {
    const std::size_t comma = rest.find(',');
    std::string_view item = rest.substr(0, comma);
    std::int64_t delay = 0;
    auto parsed = std::from_chars(item.data(), item.data() + item.size(), delay);
    if (parsed.ec != std::errc() || parsed.ptr != item.data() + item.size()) {
      return Status(ErrorCode::corruption, "consumer metadata: malformed backoff_ms");
    }
    config.backoff_ms.push_back(delay);
    if (comma == std::string_view::npos) break;
    rest.remove_prefix(comma + 1);
  }
  auto dead_letter = text("dead_letter_stream");
  if (!dead_letter) return dead_letter.status();
  config.dead_letter_stream = *dead_letter;
  auto max_ack_pending = io::metadata_u64(fields, "max_ack_pending");
  if (!max_ack_pending) return max_ack_pending.status();
  if (*max_ack_pending > UINT32_MAX) return Status(ErrorCode::corruption, "consumer metadata: max_ack_pending out of range");
  config.max_ack_pending = static_cast<std::uint32_t>(*max_ack_pending);
  Status valid = validate_consumer_config(config);
  if (!valid.is_ok()) return Status(ErrorCode::corruption, "consumer metadata: " + valid.message());
  return config;
}

}  // namespace consumer
}  // namespace msgstore
