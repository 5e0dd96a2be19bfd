#include "log/message_policy.h"

#include <charconv>
#include <limits>

#include "msgstore/limits.h"

namespace msgstore::log {

bool header_name_equals(std::string_view name, std::string_view reserved_name) {
  if (name.size() != reserved_name.size()) return false;
  for (std::size_t i = 0; i < name.size(); ++i) {
    char left = name[i];
    char right = reserved_name[i];
    if (left >= 'A' && left <= 'Z') left = static_cast<char>(left - 'A' + 'a');
    if (right >= 'A' && right <= 'Z') right = static_cast<char>(right - 'A' + 'a');
    if (left != right) return false;
  }
  return true;
}

std::optional<std::string_view> find_header(std::span<const HeaderView> headers, std::string_view name) {
  for (const HeaderView& header : headers) {
    if (header_name_equals(header.name, name)) return header.value;
  }
  return std::nullopt;
}

std::optional<std::int64_t> parse_ttl_ms(std::string_view text) {
  std::int64_t value = 0;
  if (text.empty() || text.front() < '0' || text.front() > '9') return std::nullopt;  // no sign, no space
  auto parsed = std::from_chars(text.data(), text.data() + text.size(), value);
  if (parsed.ec != std::errc() || parsed.ptr != text.data() + text.size()) return std::nullopt;
  if (value < 1 || value > limits::ttl_ms_max) return std::nullopt;
  return value;
}

std::optional<TimestampMs> message_expiry_ms(const MessageView& message) {
  if (message.headers.empty()) return std::nullopt;
  const std::optional<std::string_view> text = find_header(message.headers, ttl_header);
  if (!text) return std::nullopt;
  const std::optional<std::int64_t> ttl = parse_ttl_ms(*text);
  if (!ttl) return std::nullopt;
  if (message.timestamp_ms > std::numeric_limits<TimestampMs>::max() - *ttl) return std::numeric_limits<TimestampMs>::max();
  return message.timestamp_ms + *ttl;
}

}  // namespace msgstore::log
