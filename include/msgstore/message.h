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

// OutgoingMessage::expected_offset value meaning "the partition must be empty" (no message was
// ever appended to it). Status::actual_offset() reports it for an empty partition too.
inline constexpr Offset expected_offset_empty = std::numeric_limits<Offset>::max();

// Reserved headers, stored with the message (names compare ASCII case-insensitively, so
// protocol front ends may pass them through as they arrive). The OutgoingMessage fields
// message_id and ttl_ms are written as these headers; a publisher may also set the headers
// directly. Values are validated on publish (invalid_argument otherwise).
//   Msgstore-Message-Id: the message id for duplicate suppression, 1 to
//     limits::message_id_bytes_max bytes.
//   Msgstore-TTL-Ms: time to live in milliseconds, decimal, 1 to limits::ttl_ms_max; the
//     message expires at timestamp_ms + TTL and from then on no read path returns it.
inline constexpr std::string_view message_id_header = "Msgstore-Message-Id";
inline constexpr std::string_view ttl_header = "Msgstore-TTL-Ms";

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

  // Conditional append: the last offset the target partition must have when this message is
  // appended (expected_offset_empty: the partition must be empty). On mismatch the publish
  // fails with expected_offset_mismatch, carrying the actual last offset in
  // Status::actual_offset(), and stores nothing. The partition must be known: the message
  // needs a key or every capturing stream must have one partition (invalid_argument
  // otherwise). In a batch, every message with an expected_offset must land in the same single
  // partition, and the batch is all or nothing; message k of the batch is checked against the
  // offset before it, so consecutive expectations (9, 10, 11) are how a batch of events says
  // "after 9". See docs/ARCHITECTURE.md ("Policies").
  std::optional<Offset> expected_offset;

  // Conditional append per key (event sourcing's "expected version"): the offset of the last
  // message with this message's key in the target partition (expected_offset_empty: no message
  // has the key yet). Checked atomically with the append against the key index, including
  // messages appended but not yet acknowledged; on mismatch the publish fails with
  // expected_offset_mismatch carrying the key's actual last offset (expected_offset_empty if
  // none) and stores nothing. Needs a key and a stream with indexes enabled; the batch rules
  // are those of expected_offset (one partition, all or nothing; message k also sees the
  // messages before it in the batch).
  std::optional<Offset> expected_key_offset;

  // Duplicate suppression: a publish whose message id a capturing stream stored within its
  // dedup_window_ms stores nothing there and returns the original Position (duplicate = true).
  // Stored as the Msgstore-Message-Id header.
  std::optional<std::string_view> message_id;

  // Time to live in milliseconds, counted from the message's timestamp. Stored as the
  // Msgstore-TTL-Ms header.
  std::optional<std::int64_t> ttl_ms;
};

// Where one message landed.
struct Position {
  std::string stream;
  std::uint32_t partition = 0;
  Offset offset = 0;
  // Index of the message in the published batch (0 for a single publish). A message that
  // two streams capture yields two Positions with the same message_index.
  std::uint32_t message_index = 0;
  // True when the message was a duplicate (same message id within the stream's dedup window):
  // nothing was stored and this is where the original landed.
  bool duplicate = false;
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

// A view of `message`; `header_views` receives the header views and must outlive the view, as
// must `message` (the reverse of MessageView::to_message).
MessageView view_of(const Message& message, std::vector<HeaderView>& header_views);

}  // namespace msgstore
