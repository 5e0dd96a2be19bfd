// broker/live_reader.h: a non-blocking log follower for one live client (SSE, WebSocket, and
// later MQTT/Kafka-style push front ends).
//
// A LiveReader holds one cursor per followed partition (the next offset to read) and hands
// out chunks of matching messages. Replay of history and live delivery are the same loop:
// next_chunk() reads from the cursors to the high watermark; when nothing is readable it waits
// on an Asio timer that the broker's single Store data listener wakes (coalesced), so there is
// no gap and no duplicate at the switch, no thread per client, and an event-loop thread never
// blocks (reads run on the broker's worker pool).
//
// Flow control is the caller's: a front end calls next_chunk() only when its outbound queue
// has room, so a slow reader pauses its own follower and never buffers without limit, and never
// slows producers (publishers only flip a flag in the broker's listener).
//
// Positions: position_text() is "partition:next_offset" pairs joined by ',' in partition order
// (e.g. "0:16,1:7,2:0"): the next offset of every followed partition. parse_position_text()
// reads it back, so a client resumes every partition exactly (SSE `id:` / Last-Event-ID).
//
// Retention: if retention removed messages before the reader reached them, it continues from
// the new log start and counts them in skipped(), as a Store subscription does.
// The partitions followed are fixed when the reader opens (partitions added later by a stream
// update are not followed until the client reconnects).
//
// Thread safety: a LiveReader belongs to one coroutine on one event loop.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/awaitable.hpp>

#include "broker/broker.h"
#include "msgstore/message.h"
#include "msgstore/status.h"
#include "msgstore/store.h"

namespace msgstore::broker {

struct LiveReaderOptions {
  std::string stream;
  std::optional<std::uint32_t> partition;  // follow one partition; nullopt = all of them
  std::string subject_pattern = ">";      // deliver only matching subjects
  StartPosition start = StartPosition::new_only();
  // Resume positions (from position_text()); they override `start` for the partitions they
  // name. A followed partition not named starts at its log start (it is newer than the
  // position the client holds).
  std::optional<std::map<std::uint32_t, Offset>> resume;
  // Optional: appends the front end's wire bytes for one message to `out` (the chunk's
  // buffer) on the worker thread that read it, so the event loop only writes. When set,
  // LiveChunk::encoded holds every message's bytes back to back (LiveChunk::encoded_text() is
  // one message's share) and LiveMessage::message is left empty.
  std::function<void(std::string& out, std::uint32_t partition, const MessageView& message)> encode;
};

struct LiveMessage {
  std::uint32_t partition = 0;
  Offset offset = 0;
  Message message;                 // the message, unless LiveReaderOptions::encode is set
  std::size_t encoded_begin = 0;   // its bytes in LiveChunk::encoded, if encode is set
  std::size_t encoded_bytes = 0;
};

struct LiveChunk {
  std::vector<LiveMessage> messages;
  std::uint64_t payload_bytes = 0;
  std::string encoded;  // encode()'s output for all messages, in order (one buffer, one write)

  std::string_view encoded_text(const LiveMessage& message) const {
    return std::string_view(encoded).substr(message.encoded_begin, message.encoded_bytes);
  }
};

// "0:16,1:7" -> {0:16, 1:7}; invalid_argument on anything else (at most
// limits::partitions_per_stream_max pairs, no duplicates).
Result<std::map<std::uint32_t, Offset>> parse_position_text(std::string_view text);
std::string format_position_text(const std::map<std::uint32_t, Offset>& cursors);

class LiveReader {
 public:
  // Checks the stream (stream_not_found), the partition (invalid_argument), the pattern
  // (invalid_argument) and resolves every start position (offset_out_of_range for an offset
  // outside the log).
  static asio::awaitable<Result<std::unique_ptr<LiveReader>>> open(Broker& broker, LiveReaderOptions options);

  // The next chunk of matching messages: at most `messages_max`, and about `bytes_max` payload
  // and metadata bytes (at least one message). Waits until `deadline` when nothing is readable;
  // returns an empty chunk at the deadline or when the broker stops. Errors: stream_not_found
  // (the stream was deleted), corruption, closed. Busy worker pools are retried, not reported.
  asio::awaitable<Result<LiveChunk>> next_chunk(std::size_t messages_max, std::size_t bytes_max,
                                                std::chrono::steady_clock::time_point deadline);

  // The two halves of next_chunk, for callers that must interrupt the wait (a WebSocket writer
  // woken by new credit). read_available() reads what is readable now (possibly nothing) and
  // must not be cancelled (its messages are consumed from the cursors when it returns);
  // wait_for_data() waits until data may have arrived since the last read_available(), the
  // deadline, or the broker stops, and may be cancelled at any time.
  asio::awaitable<Result<LiveChunk>> read_available(std::size_t messages_max, std::size_t bytes_max);
  asio::awaitable<void> wait_for_data(std::chrono::steady_clock::time_point deadline);

  // The next offset of every followed partition (after everything handed out so far).
  const std::map<std::uint32_t, Offset>& cursors() const { return cursors_; }
  std::string position_text() const { return format_position_text(cursors_); }
  // The position just after `message` (its partition at offset + 1, the others at their
  // cursors): the resumable id of one delivered message, valid while the chunk it came from is
  // the last one handed out.
  std::string position_after(const LiveMessage& message) const;
  std::uint64_t skipped() const { return skipped_; }
  const std::string& stream() const { return options_.stream; }

 private:
  LiveReader(Broker& broker, LiveReaderOptions options) : broker_(broker), options_(std::move(options)) {}
  // One pass over the partitions (blocking; runs on the worker pool).
  Result<LiveChunk> read_pass(std::size_t messages_max, std::size_t bytes_max);

  Broker& broker_;
  LiveReaderOptions options_;
  std::map<std::uint32_t, Offset> cursors_;
  std::vector<std::uint32_t> partitions_;
  std::size_t next_partition_index_ = 0;  // round robin across partitions for fairness
  std::uint64_t skipped_ = 0;
  std::uint64_t generation_before_read_ = 0;  // the store's data generation before the last pass
};

}  // namespace msgstore::broker
