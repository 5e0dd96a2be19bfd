// msgstore/consumer.h: durable consumers, the queue side of the message store.
//
//   auto& consumers = store->consumers();
//   consumers.create("orders", {.name = "billing", .subject_filter = "orders.created", .ack_wait_ms = 30000});
//   auto batch = consumers.fetch("orders", "billing", {.max_messages = 100, .wait_ms = 5000}).value();
//   for (const ConsumedMessage& consumed : batch) {
//     process(consumed.message);
//     (void)consumers.ack("orders", "billing", {consumed.delivery.to_string()});
//   }
//
// A durable consumer belongs to one stream and remembers, per partition, which messages it has
// handed out and which were acknowledged. Every client fetching from the same consumer shares
// its messages: a message is out to at most one fetcher at a time, until it is acked, nak'd,
// terminated or its ack wait expires; then it is delivered again (after the backoff for that
// attempt). After `max_deliveries` failed deliveries (or a term) the message is appended to the
// dead-letter stream, if one is configured, with headers saying why, from where and after how
// many attempts, and counts as done.
//
// Durability: ack/nak/term return once the consumer's state log holds the change as the
// stream's fsync policy demands (always: fdatasync returned, shared by concurrent acks; interval:
// written, synced within the interval; never: written). Deliveries are recorded too but not
// synced on their own, so a power loss can at worst deliver a message once more (at least once).
// The format is docs/formats/consumer-state.md.
//
// Ownership and lifetime: the Store owns its consumer registry; Store::consumers() returns a
// reference valid until the Store is destroyed. Consumers live in the stream's directory and go
// with it: deleting a stream deletes its consumers (calls then answer stream_not_found).
//
// Thread safety: every method may be called concurrently from any number of threads.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "msgstore/message.h"
#include "msgstore/status.h"
#include "msgstore/store.h"

namespace msgstore {

struct ConsumerConfig {
  std::string name;                  // validated like stream names
  std::string subject_filter = ">";  // a subject pattern; only matching messages are delivered
  StartPosition start = StartPosition::from_beginning();  // resolved once, at creation
  std::int64_t ack_wait_ms = 30'000;  // a delivery not acked within this is delivered again
  std::uint32_t max_deliveries = 0;   // 0 = unlimited; otherwise dead-lettered after this many
  // Delay before redelivery after delivery attempt n failed (ack wait expired, or a nak without
  // its own delay): backoff_ms[n - 1], the last entry repeating. Empty: redeliver at once.
  std::vector<std::int64_t> backoff_ms;
  std::string dead_letter_stream;     // empty: messages past max_deliveries or term'd are dropped
  std::uint32_t max_ack_pending = 1000;  // deliveries out at once (new messages stop beyond it)
};

Status validate_consumer_config(const ConsumerConfig& config);

// Identifies one delivery: which message, and which attempt. Its text form
// "<stream>/<partition>/<offset>/<attempt>" is what network clients send back.
struct DeliveryToken {
  std::string stream;
  std::uint32_t partition = 0;
  Offset offset = 0;
  std::uint32_t attempt = 0;  // 1 for the first delivery

  std::string to_string() const;
  static Result<DeliveryToken> parse(std::string_view text);  // invalid_argument when malformed
  bool operator==(const DeliveryToken&) const = default;
};

struct ConsumedMessage {
  DeliveryToken delivery;
  std::uint32_t partition = 0;
  std::uint32_t deliveries = 0;  // this attempt's number (1 = first delivery)
  Message message;
};

struct FetchOptions {
  std::size_t max_messages = 100;
  std::size_t max_bytes = 4 * 1024 * 1024;  // at least one message is returned
  // Long poll: wait up to this long for at least one message; 0 returns at once.
  std::chrono::milliseconds wait{0};
};

struct ConsumerPartitionInfo {
  std::uint32_t partition = 0;
  Offset ack_floor = 0;          // every offset below is done (acked, filtered, dead-lettered, removed)
  Offset delivered_offset = 0;   // one past the newest offset handed out (or passed over)
  std::uint64_t pending = 0;     // delivered, not yet acked (out now or waiting for redelivery)
  std::uint64_t out = 0;         // of those, held by a fetcher right now
  std::uint64_t lag = 0;         // messages after delivered_offset up to the high watermark
  std::uint64_t redelivered = 0; // pending messages delivered more than once
};

struct ConsumerInfo {
  std::string stream;
  ConsumerConfig config;
  std::vector<ConsumerPartitionInfo> partitions;
  std::uint64_t pending = 0;
  std::uint64_t lag = 0;
  std::uint64_t redelivered = 0;
  // Since the store opened (not persisted):
  std::uint64_t skipped = 0;               // removed by retention (or unreadable) before they were acked
  std::uint64_t dead_lettered = 0;         // appended to the dead-letter stream
  std::uint64_t dropped = 0;               // past max deliveries or term'd without a dead-letter stream
};

enum class AckKind : std::uint8_t {
  ack,          // done
  nak,          // deliver again, after `delay` (or the backoff when none is given)
  term,         // never deliver again: dead-letter (reason "term") and done
  in_progress,  // still working: restart the ack wait
};

// Headers on a dead-lettered message (besides the original subject, key, headers and payload).
inline constexpr std::string_view dead_letter_reason_header = "Msgstore-Dead-Letter-Reason";  // max_deliveries | term
inline constexpr std::string_view dead_letter_stream_header = "Msgstore-Dead-Letter-Stream";
inline constexpr std::string_view dead_letter_partition_header = "Msgstore-Dead-Letter-Partition";
inline constexpr std::string_view dead_letter_offset_header = "Msgstore-Dead-Letter-Offset";
inline constexpr std::string_view dead_letter_subject_header = "Msgstore-Dead-Letter-Subject";
inline constexpr std::string_view dead_letter_consumer_header = "Msgstore-Dead-Letter-Consumer";
inline constexpr std::string_view dead_letter_deliveries_header = "Msgstore-Dead-Letter-Deliveries";

class Consumers {
 public:
  virtual ~Consumers() = default;

  // consumer_exists if the name is taken (even with the same config); stream_not_found;
  // invalid_argument / invalid_name on a bad config (the message names the field).
  virtual Status create(std::string_view stream, const ConsumerConfig& config) = 0;
  virtual Result<ConsumerInfo> describe(std::string_view stream, std::string_view name) = 0;
  virtual Result<std::vector<ConsumerInfo>> list(std::string_view stream) = 0;
  virtual Status remove(std::string_view stream, std::string_view name) = 0;

  // Messages for this consumer: redeliveries that are due first, then new messages in offset
  // order per partition. Blocks up to options.wait for the first message; returns an empty
  // vector at the deadline. Errors: stream_not_found, consumer_not_found, closed.
  virtual Result<std::vector<ConsumedMessage>> fetch(std::string_view stream, std::string_view name,
                                                     const FetchOptions& options) = 0;

  // Settles deliveries given by their token text. The outer error is about the consumer or the
  // state log (not found, closed, I/O: then nothing is promised); otherwise one Status per
  // token, in order: ok, invalid_argument (malformed or another stream's token), or
  // stale_delivery (never delivered, already settled, or redelivered since: the message was
  // handed to someone else). Returns once the accepted changes are durable (see above).
  // `delay` is for nak only.
  virtual Result<std::vector<Status>> settle(std::string_view stream, std::string_view name, AckKind kind,
                                             std::span<const std::string> tokens,
                                             std::optional<std::chrono::milliseconds> delay = std::nullopt) = 0;

  // One-token conveniences over settle(): the token's own Status, or the outer error.
  Status ack(std::string_view stream, std::string_view name, const std::string& token);
  Status nak(std::string_view stream, std::string_view name, const std::string& token,
             std::optional<std::chrono::milliseconds> delay = std::nullopt);
  Status term(std::string_view stream, std::string_view name, const std::string& token);
  Status in_progress(std::string_view stream, std::string_view name, const std::string& token);
};

}  // namespace msgstore
