// JSON renderings of the store's values, shared by the commands (one object per line).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "msgstore/message.h"
#include "msgstore/store.h"
#include "msgstore/stream.h"

namespace msgstore::cli {

// ["a","b"]
std::string json_string_array(const std::vector<std::string>& items);

// The names of the stream configuration fields to print (or send); nullopt: all of them. A
// server that does not report a field leaves it out rather than have the CLI invent a value.
using StreamConfigFields = std::optional<std::vector<std::string>>;

// Every field name stream_config_json writes, in order.
const std::vector<std::string>& stream_config_field_names();

// {"name":..,"subjects":[..],"partitions":..,"max_age_ms":..,"max_bytes":..,"max_messages":..,
//  "fsync":"always","max_message_bytes":..,"segment_bytes":..,"segment_age_ms":..,
//  "indexes_enabled":true,"indexed_headers":[..],"dedup_window_ms":..,"cleanup":"delete",
//  "tombstone_retention_ms":..}, restricted to `fields` when given.
std::string stream_config_json(const StreamConfig& config, const StreamConfigFields& fields = std::nullopt);

// {"config":{..},"bytes":..,"messages":..,"partitions":[{"partition":0,"first_offset":..,
//  "next_offset":..,"bytes":..,"messages":..,"segments":..,"first_timestamp_ms":..,
//  "last_timestamp_ms":..,"damage":[..]}]}
std::string stream_info_json(const StreamInfo& info, const StreamConfigFields& config_fields = std::nullopt);

// {"stream","partition","offset","timestamp_ms","subject","key","headers":{..},"payload"}.
// Bytes that are not UTF-8 are never printed lossily: the payload becomes "payload_base64",
// the key "key_base64", and such headers go to "headers_base64" (name -> base64 value).
std::string message_json(std::string_view stream, std::uint32_t partition, const MessageView& message);

// The same without stream and partition (for dump).
std::string record_json(const MessageView& message);

// {"stream":"s","partition":0,"offset":12,"index":3}
std::string position_json(const Position& position, std::uint64_t index);

}  // namespace msgstore::cli
