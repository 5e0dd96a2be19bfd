// Stream configuration: validation, the fsync policy syntax, and the stream.meta encoding.
#include "store/stream_config.h"

#include <charconv>

#include "base/subject.h"

namespace msgstore {

std::string fsync_policy_to_string(FsyncPolicy policy, std::uint32_t interval_ms) {
  switch (policy) {
    case FsyncPolicy::always: return "always";
    case FsyncPolicy::never: return "never";
    case FsyncPolicy::interval: return "interval:" + std::to_string(interval_ms);
  }
  return "always";
}

Status parse_fsync_policy(std::string_view text, FsyncPolicy& policy, std::uint32_t& interval_ms) {
  if (text == "always") {
    policy = FsyncPolicy::always;
    interval_ms = 0;
    return Status::ok();
  }
  if (text == "never") {
    policy = FsyncPolicy::never;
    interval_ms = 0;
    return Status::ok();
  }
  constexpr std::string_view prefix = "interval:";
  if (text.substr(0, prefix.size()) == prefix) {
    std::string_view number = text.substr(prefix.size());
    if (number.size() > 2 && number.substr(number.size() - 2) == "ms") number.remove_suffix(2);
    std::uint32_t value = 0;
    auto parsed = std::from_chars(number.data(), number.data() + number.size(), value);
    if (parsed.ec == std::errc() && parsed.ptr == number.data() + number.size() && value > 0 &&
        value <= limits::fsync_interval_ms_max) {
      policy = FsyncPolicy::interval;
      interval_ms = value;
      return Status::ok();
    }
  }
  return Status(ErrorCode::invalid_argument, "fsync policy '" + std::string(text) +
                                                 "' is not one of: always, never, interval:<milliseconds 1-" +
                                                 std::to_string(limits::fsync_interval_ms_max) + ">");
}

std::string cleanup_policy_to_string(CleanupPolicy policy) {
  return policy == CleanupPolicy::compact ? "compact" : "delete";
}

Status parse_cleanup_policy(std::string_view text, CleanupPolicy& policy) {
  if (text == "delete") {
    policy = CleanupPolicy::delete_segments;
    return Status::ok();
  }
  if (text == "compact") {
    policy = CleanupPolicy::compact;
    return Status::ok();
  }
  return Status(ErrorCode::invalid_argument, "cleanup policy '" + std::string(text) + "' is not one of: delete, compact");
}

Status validate_stream_name(std::string_view name) {
  if (name.empty() || name.size() > limits::stream_name_bytes_max) {
    return Status(ErrorCode::invalid_name, "stream name must be 1 to " + std::to_string(limits::stream_name_bytes_max) +
                                               " bytes, got " + std::to_string(name.size()));
  }
  if (name == "." || name == "..") return Status(ErrorCode::invalid_name, "stream name '" + std::string(name) + "' is reserved");
  for (char character : name) {
    const bool allowed = (character >= 'a' && character <= 'z') || (character >= 'A' && character <= 'Z') ||
                         (character >= '0' && character <= '9') || character == '.' || character == '_' || character == '-';
    if (!allowed) {
      return Status(ErrorCode::invalid_name, "stream name '" + std::string(name) +
                                                 "' may contain only letters, digits, '.', '_' and '-'");
    }
  }
  return Status::ok();
}

Status validate_stream_config(const StreamConfig& config) {
  MSGSTORE_RETURN_IF_ERROR(validate_stream_name(config.name));
  if (config.subjects.empty()) return Status(ErrorCode::invalid_argument, "stream '" + config.name + "' needs at least one subject pattern");
  if (config.subjects.size() > limits::stream_subject_patterns_max) {
    return Status(ErrorCode::invalid_argument, "a stream may have at most " + std::to_string(limits::stream_subject_patterns_max) +
                                                   " subject patterns");
  }
  for (const std::string& pattern : config.subjects) MSGSTORE_RETURN_IF_ERROR(base::validate_subject_pattern(pattern));
  if (config.partitions == 0 || config.partitions > limits::partitions_per_stream_max) {
    return Status(ErrorCode::invalid_argument, "partitions must be 1 to " + std::to_string(limits::partitions_per_stream_max));
  }
  if (config.max_age_ms < 0) return Status(ErrorCode::invalid_argument, "max_age_ms must not be negative");
  if (config.fsync == FsyncPolicy::interval &&
      (config.fsync_interval_ms == 0 || config.fsync_interval_ms > limits::fsync_interval_ms_max)) {
    return Status(ErrorCode::invalid_argument, "fsync interval must be 1 to " + std::to_string(limits::fsync_interval_ms_max) + " ms");
  }
  if (config.max_message_bytes == 0 || config.max_message_bytes > limits::message_bytes_max) {
    return Status(ErrorCode::invalid_argument, "max_message_bytes must be 1 to " + std::to_string(limits::message_bytes_max));
  }
  if (config.segment_bytes < limits::segment_bytes_min || config.segment_bytes > limits::segment_bytes_max) {
    return Status(ErrorCode::invalid_argument, "segment_bytes must be " + std::to_string(limits::segment_bytes_min) + " to " +
                                                   std::to_string(limits::segment_bytes_max));
  }
  if (config.segment_age_ms <= 0) return Status(ErrorCode::invalid_argument, "segment_age_ms must be positive");
  if (config.indexed_headers.size() > limits::indexed_headers_max) {
    return Status(ErrorCode::invalid_argument, "a stream may index at most " + std::to_string(limits::indexed_headers_max) + " headers");
  }
  for (const std::string& header : config.indexed_headers) {
    const bool blank = header.find_first_of(" \t\r\n") != std::string::npos;
    if (header.empty() || header.size() > limits::header_name_bytes_max || blank) {
      return Status(ErrorCode::invalid_argument, "indexed header names must be 1 to " +
                                                     std::to_string(limits::header_name_bytes_max) + " bytes without whitespace");
    }
  }
  if (config.dedup_window_ms < 0 || config.dedup_window_ms > limits::dedup_window_ms_max) {
    return Status(ErrorCode::invalid_argument, "dedup_window_ms must be 0 (off) to " + std::to_string(limits::dedup_window_ms_max));
  }
  if (config.tombstone_retention_ms < 0) return Status(ErrorCode::invalid_argument, "tombstone_retention_ms must not be negative");
  return Status::ok();
}

namespace store {
namespace {

// Space-separated words (stream.meta lists: subject patterns, indexed header names).
std::vector<std::string> split_words(std::string_view text) {
  std::vector<std::string> words;
  while (!text.empty()) {
    std::size_t space = text.find(' ');
    words.emplace_back(text.substr(0, space));
    if (space == std::string_view::npos) break;
    text.remove_prefix(space + 1);
  }
  return words;
}

}  // namespace

io::MetadataFields encode_stream_config(const StreamConfig& config) {
  io::MetadataFields fields;
  fields["name"] = config.name;
  std::string subjects;
  for (const std::string& pattern : config.subjects) {
    if (!subjects.empty()) subjects += ' ';
    subjects += pattern;  // patterns contain no whitespace (validated)
  }
  fields["subjects"] = subjects;
  fields["partitions"] = std::to_string(config.partitions);
  fields["max_age_ms"] = std::to_string(config.max_age_ms);
  fields["max_bytes"] = std::to_string(config.max_bytes);
  fields["max_messages"] = std::to_string(config.max_messages);
  fields["fsync"] = fsync_policy_to_string(config.fsync, config.fsync_interval_ms);
  fields["max_message_bytes"] = std::to_string(config.max_message_bytes);
  fields["segment_bytes"] = std::to_string(config.segment_bytes);
  fields["segment_age_ms"] = std::to_string(config.segment_age_ms);
  fields["indexes_enabled"] = config.indexes_enabled ? "1" : "0";
  std::string headers;
  for (const std::string& header : config.indexed_headers) {
    if (!headers.empty()) headers += ' ';
    headers += header;  // names contain no whitespace (validated)
  }
  fields["indexed_headers"] = headers;
  fields["dedup_window_ms"] = std::to_string(config.dedup_window_ms);
  fields["cleanup"] = cleanup_policy_to_string(config.cleanup);
  fields["tombstone_retention_ms"] = std::to_string(config.tombstone_retention_ms);
  return fields;
}

Result<StreamConfig> decode_stream_config(const io::MetadataFields& fields) {
  StreamConfig config;
  auto name = fields.find("name");
  auto subjects = fields.find("subjects");
  auto fsync = fields.find("fsync");
  if (name == fields.end() || subjects == fields.end() || fsync == fields.end()) {
    return Status(ErrorCode::corruption, "stream metadata lacks name, subjects or fsync");
  }
  config.name = name->second;
  config.subjects = split_words(subjects->second);
  auto partitions = io::metadata_u64(fields, "partitions");
  auto max_age = io::metadata_i64(fields, "max_age_ms");
  auto max_bytes = io::metadata_u64(fields, "max_bytes");
  auto max_messages = io::metadata_u64(fields, "max_messages");
  auto max_message_bytes = io::metadata_u64(fields, "max_message_bytes");
  auto segment_bytes = io::metadata_u64(fields, "segment_bytes");
  auto segment_age = io::metadata_i64(fields, "segment_age_ms");
  for (const Status* status : {&partitions.status(), &max_age.status(), &max_bytes.status(), &max_messages.status(),
                               &max_message_bytes.status(), &segment_bytes.status(), &segment_age.status()}) {
    if (!status->is_ok()) return *status;
  }
  config.partitions = static_cast<std::uint32_t>(*partitions);
  config.max_age_ms = *max_age;
  config.max_bytes = *max_bytes;
  config.max_messages = *max_messages;
  config.max_message_bytes = *max_message_bytes;
  config.segment_bytes = *segment_bytes;
  config.segment_age_ms = *segment_age;
  // Index settings arrived after format 1 was first written: absent means the defaults.
  if (auto enabled = fields.find("indexes_enabled"); enabled != fields.end()) {
    if (enabled->second != "0" && enabled->second != "1") return Status(ErrorCode::corruption, "stream metadata: bad indexes_enabled");
    config.indexes_enabled = enabled->second == "1";
  }
  if (auto headers = fields.find("indexed_headers"); headers != fields.end()) config.indexed_headers = split_words(headers->second);
  // Added after version 1 was released: files without it get the default.
  if (fields.count("dedup_window_ms")) {
    auto dedup_window = io::metadata_i64(fields, "dedup_window_ms");
    if (!dedup_window) return dedup_window.status();
    config.dedup_window_ms = *dedup_window;
  }
  Status policy = parse_fsync_policy(fsync->second, config.fsync, config.fsync_interval_ms);
  if (!policy.is_ok()) return Status(ErrorCode::corruption, "stream metadata: " + policy.message());
  // Optional fields (absent in files written before compaction existed: the defaults).
  if (auto cleanup = fields.find("cleanup"); cleanup != fields.end()) {
    Status parsed = parse_cleanup_policy(cleanup->second, config.cleanup);
    if (!parsed.is_ok()) return Status(ErrorCode::corruption, "stream metadata: " + parsed.message());
  }
  if (fields.count("tombstone_retention_ms")) {
    auto tombstone_retention = io::metadata_i64(fields, "tombstone_retention_ms");
    if (!tombstone_retention) return tombstone_retention.status();
    config.tombstone_retention_ms = *tombstone_retention;
  }
  Status valid = validate_stream_config(config);
  if (!valid.is_ok()) return Status(ErrorCode::corruption, "stream metadata: " + valid.message());
  return config;
}

log::LogOptions log_options_for(const StreamConfig& config) {
  log::LogOptions options;
  options.fsync = config.fsync;
  options.fsync_interval_ms = config.fsync_interval_ms;
  options.segment_bytes = config.segment_bytes;
  options.segment_age_ms = config.segment_age_ms;
  options.max_age_ms = config.max_age_ms;
  options.max_bytes = config.max_bytes;
  options.max_messages = config.max_messages;
  return options;
}

}  // namespace store
}  // namespace msgstore
