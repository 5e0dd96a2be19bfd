// The reserved headers a message may carry (include/msgstore/message.h): Msgstore-Message-Id
// for duplicate suppression and Msgstore-TTL-Ms for time to live. They live in the log layer
// because the read path itself hides expired messages, so every reader above inherits it.
#pragma once

#include <optional>
#include <span>
#include <string_view>

#include "msgstore/message.h"

namespace msgstore::log {

// ASCII case-insensitive, as protocol front ends may change the case of header names.
bool header_name_equals(std::string_view name, std::string_view reserved_name);

// The value of the first header named `name` (case-insensitive), if any.
std::optional<std::string_view> find_header(std::span<const HeaderView> headers, std::string_view name);

// A TTL header value: decimal digits, 1 to limits::ttl_ms_max. Empty if malformed.
std::optional<std::int64_t> parse_ttl_ms(std::string_view text);

// When the message expires (timestamp_ms + TTL, saturating), or empty if it never does. A
// malformed TTL (only possible in data written before the header was reserved) never expires.
std::optional<TimestampMs> message_expiry_ms(const MessageView& message);

inline bool is_expired(const MessageView& message, TimestampMs now_ms) {
  const std::optional<TimestampMs> expiry = message_expiry_ms(message);
  return expiry && *expiry <= now_ms;
}

}  // namespace msgstore::log
