// msgstore/message.h: what a message is, as published and as read back.
//
// Publishing takes views (OutgoingMessage, HeaderView): nothing is copied until the bytes are
// encoded into the log, so the caller's buffers must stay alive for the duration of the call.
// Reading returns either owned Messages or, on the zero-copy scan path, MessageViews whose
// bytes are valid only inside the callback that received them.
#pragma once

#include <cstdint>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace msgstore {

// A position in one partition's log. Offsets are dense per partition and start at 0.
using Offset = std::uint64_t;

// Timestamps are milliseconds since the Unix epoch (UTC).
using TimestampMs = std::int64_t;

// Passed as OutgoingMessage::timestamp_ms to let the store stamp the message on append.
inline constexpr TimestampMs timestamp_now = std::numeric_limits<TimestampMs>::min();

struct HeaderView {
  std::string_view name;
  std::string_view value;
};

struct Header {
  std::string name;
  std::string value;
  bool operator==(const Header&) const = default;
};

// A message to publish. The subject routes it to the streams whose patterns match it.
struct OutgoingMessage {
  std::string_view subject;
  std::optional<std::string_view> key;  // no key: partitions are chosen round robin
  std::span<const HeaderView> headers;
  std::string_view payload;  // bytes; may be empty
  TimestampMs timestamp_ms = timestamp_now;
};

// Where one message landed.
struct Position {
  std::string stream;
  std::uint32_t partition = 0;
  Offset offset = 0;
  // Index of the message in the published batch (0 for a single publish). A message that
  // two streams capture yields two Positions with the same message_index.
  std::uint32_t message_index = 0;
};

// A message read back, owning its bytes.
struct Message {
  Offset offset = 0;
  TimestampMs timestamp_ms = 0;
  std::string subject;
  std::optional<std::string> key;
  std::vector<Header> headers;
  std::string payload;
  bool operator==(const Message&) const = default;
};

// A message read back without copying; valid only during the callback that receives it.
struct MessageView {
  Offset offset = 0;
  TimestampMs timestamp_ms = 0;
  std::string_view subject;
  std::optional<std::string_view> key;
  std::span<const HeaderView> headers;
  std::string_view payload;

  Message to_message() const;
};

}  // namespace msgstore
