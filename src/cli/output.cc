#include "cli/output.h"

#include <algorithm>

#include "cli/json.h"

namespace msgstore::cli {

std::string json_string_array(const std::vector<std::string>& items) {
  std::string array = "[";
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (i > 0) array += ',';
    append_json_string(array, items[i]);
  }
  return array + ']';
}

const std::vector<std::string>& stream_config_field_names() {
  static const std::vector<std::string> names = {
      "name",          "subjects",          "partitions",      "max_age_ms",      "max_bytes",
      "max_messages",  "fsync",             "max_message_bytes", "segment_bytes", "segment_age_ms",
      "indexes_enabled", "indexed_headers", "dedup_window_ms", "cleanup",         "tombstone_retention_ms"};
  return names;
}

std::string stream_config_json(const StreamConfig& config, const StreamConfigFields& fields) {
  JsonObject object;
  const auto wanted = [&](std::string_view name) {
    return !fields || std::find(fields->begin(), fields->end(), name) != fields->end();
  };
  if (wanted("name")) object.add("name", config.name);
  if (wanted("subjects")) object.add_raw("subjects", json_string_array(config.subjects));
  if (wanted("partitions")) object.add("partitions", config.partitions);
  if (wanted("max_age_ms")) object.add("max_age_ms", config.max_age_ms);
  if (wanted("max_bytes")) object.add("max_bytes", config.max_bytes);
  if (wanted("max_messages")) object.add("max_messages", config.max_messages);
  if (wanted("fsync")) object.add("fsync", fsync_policy_to_string(config.fsync, config.fsync_interval_ms));
  if (wanted("max_message_bytes")) object.add("max_message_bytes", config.max_message_bytes);
  if (wanted("segment_bytes")) object.add("segment_bytes", config.segment_bytes);
  if (wanted("segment_age_ms")) object.add("segment_age_ms", config.segment_age_ms);
  if (wanted("indexes_enabled")) object.add("indexes_enabled", config.indexes_enabled);
  if (wanted("indexed_headers")) object.add_raw("indexed_headers", json_string_array(config.indexed_headers));
  if (wanted("dedup_window_ms")) object.add("dedup_window_ms", config.dedup_window_ms);
  if (wanted("cleanup")) object.add("cleanup", cleanup_policy_to_string(config.cleanup));
  if (wanted("tombstone_retention_ms")) object.add("tombstone_retention_ms", config.tombstone_retention_ms);
  return object.finish();
}

std::string stream_info_json(const StreamInfo& info, const StreamConfigFields& config_fields) {
  std::string partitions = "[";
  for (std::size_t i = 0; i < info.partitions.size(); ++i) {
    const PartitionInfo& partition = info.partitions[i];
    std::string damage = "[";
    for (std::size_t d = 0; d < partition.damage.size(); ++d) {
      if (d > 0) damage += ',';
      append_json_string(damage, partition.damage[d]);
    }
    damage += ']';
    if (i > 0) partitions += ',';
    partitions += JsonObject()
                      .add("partition", partition.partition)
                      .add("first_offset", partition.first_offset)
                      .add("next_offset", partition.next_offset)
                      .add("bytes", partition.bytes)
                      .add("messages", partition.messages)
                      .add("segments", partition.segments)
                      .add("first_timestamp_ms", partition.first_timestamp_ms)
                      .add("last_timestamp_ms", partition.last_timestamp_ms)
                      .add_raw("damage", damage)
                      .finish();
  }
  partitions += ']';
  return JsonObject()
      .add_raw("config", stream_config_json(info.config, config_fields))
      .add("bytes", info.bytes)
      .add("messages", info.messages)
      .add_raw("partitions", partitions)
      .finish();
}

namespace {
void add_record_fields(JsonObject& object, const MessageView& message) {
  object.add("offset", std::uint64_t{message.offset})
      .add("timestamp_ms", std::int64_t{message.timestamp_ms})
      .add("subject", message.subject);
  if (!message.key) {
    object.add_null("key");
  } else if (is_valid_utf8(*message.key)) {
    object.add("key", *message.key);
  } else {
    object.add_null("key").add("key_base64", base64_encode(*message.key));
  }
  std::string headers = "{";
  std::string headers_base64 = "{";
  for (const HeaderView& header : message.headers) {
    if (is_valid_utf8(header.name) && is_valid_utf8(header.value)) {
      if (headers.size() > 1) headers += ',';
      append_json_string(headers, header.name);
      headers += ':';
      append_json_string(headers, header.value);
    } else {
      if (headers_base64.size() > 1) headers_base64 += ',';
      append_json_string(headers_base64, header.name);  // lossy only for a non-UTF-8 name
      headers_base64 += ':';
      append_json_string(headers_base64, base64_encode(header.value));
    }
  }
  headers += '}';
  headers_base64 += '}';
  object.add_raw("headers", headers);
  if (headers_base64.size() > 2) object.add_raw("headers_base64", headers_base64);
  if (is_valid_utf8(message.payload)) {
    object.add("payload", message.payload);
  } else {
    object.add("payload_base64", base64_encode(message.payload));
  }
}
}  // namespace

std::string message_json(std::string_view stream, std::uint32_t partition, const MessageView& message) {
  JsonObject object;
  object.add("stream", stream).add("partition", partition);
  add_record_fields(object, message);
  return object.finish();
}

std::string record_json(const MessageView& message) {
  JsonObject object;
  add_record_fields(object, message);
  return object.finish();
}

std::string position_json(const Position& position, std::uint64_t index) {
  JsonObject object;
  object.add("stream", position.stream)
      .add("partition", position.partition)
      .add("offset", std::uint64_t{position.offset})
      .add("index", index);
  if (position.duplicate) object.add("duplicate", true);  // only then, so ordinary acks keep their shape
  return object.finish();
}

}  // namespace msgstore::cli
