#include "broker/live_reader.h"

#include <charconv>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "base/subject.h"
#include "msgstore/limits.h"

namespace msgstore::broker {
namespace {

// A message's share of a chunk's byte budget: what its JSON or event text roughly costs.
std::size_t message_cost_bytes(const MessageView& message) {
  std::size_t bytes = 64 + message.subject.size() + message.payload.size() + (message.key ? message.key->size() : 0);
  for (const HeaderView& header : message.headers) bytes += header.name.size() + header.value.size() + 8;
  return bytes;
}

// How long a follower backs off when the worker pool refuses a read (limit_exceeded).
constexpr std::chrono::milliseconds busy_retry_delay{20};

}  // namespace

Result<std::map<std::uint32_t, Offset>> parse_position_text(std::string_view text) {
  std::map<std::uint32_t, Offset> positions;
  const auto invalid = [&] {
    return Status(ErrorCode::invalid_argument,
                  "invalid position '" + std::string(text.substr(0, 200)) +
                      "': expected partition:next_offset pairs joined by ',' (e.g. 0:16,1:7)");
  };
  if (text.empty()) return invalid();
  while (!text.empty()) {
    const std::size_t comma = text.find(',');
    const std::string_view pair = text.substr(0, comma);
    text = comma == std::string_view::npos ? std::string_view() : text.substr(comma + 1);
    if (comma != std::string_view::npos && text.empty()) return invalid();  // trailing comma
    const std::size_t colon = pair.find(':');
    if (colon == std::string_view::npos || colon == 0 || colon + 1 == pair.size()) return invalid();
    std::uint32_t partition = 0;
    Offset offset = 0;
    const std::string_view partition_text = pair.substr(0, colon);
    const std::string_view offset_text = pair.substr(colon + 1);
    auto parsed_partition = std::from_chars(partition_text.data(), partition_text.data() + partition_text.size(), partition);
    auto parsed_offset = std::from_chars(offset_text.data(), offset_text.data() + offset_text.size(), offset);
    if (parsed_partition.ec != std::errc() || parsed_partition.ptr != partition_text.data() + partition_text.size() ||
        parsed_offset.ec != std::errc() || parsed_offset.ptr != offset_text.data() + offset_text.size()) {
      return invalid();
    }
    if (partition >= limits::partitions_per_stream_max || !positions.emplace(partition, offset).second) return invalid();
  }
  return positions;
}

std::string format_position_text(const std::map<std::uint32_t, Offset>& cursors) {
  std::string text;
  for (const auto& [partition, offset] : cursors) {
    if (!text.empty()) text += ',';
    text += std::to_string(partition);
    text += ':';
    text += std::to_string(offset);
  }
  return text;
}

asio::awaitable<Result<std::unique_ptr<LiveReader>>> LiveReader::open(Broker& broker, LiveReaderOptions options) {
  if (Status valid = base::validate_subject_pattern(options.subject_pattern); !valid) {
    co_return Status(ErrorCode::invalid_argument, "subject: " + valid.message());
  }
  auto info = co_await broker.describe_stream(options.stream);
  if (!info) co_return info.status();
  const auto partition_count = static_cast<std::uint32_t>(info->partitions.size());
  if (options.partition && *options.partition >= partition_count) {
    co_return Status(ErrorCode::invalid_argument, "partition " + std::to_string(*options.partition) + " does not exist; stream '" +
                                                      options.stream + "' has " + std::to_string(partition_count) +
                                                      " partition(s)");
  }
  std::unique_ptr<LiveReader> reader(new LiveReader(broker, std::move(options)));
  LiveReaderOptions& chosen = reader->options_;
  for (std::uint32_t partition = 0; partition < partition_count; ++partition) {
    if (!chosen.partition || *chosen.partition == partition) reader->partitions_.push_back(partition);
  }
  if (chosen.resume) {
    for (const auto& entry : *chosen.resume) {
      if (entry.first >= partition_count) {
        co_return Status(ErrorCode::invalid_argument, "position names partition " + std::to_string(entry.first) +
                                                          "; stream '" + chosen.stream + "' has " +
                                                          std::to_string(partition_count) + " partition(s)");
      }
    }
  }
  Store& store = broker.store();
  auto resolved = co_await broker.run_blocking([&]() -> Result<std::map<std::uint32_t, Offset>> {
    std::map<std::uint32_t, Offset> cursors;
    for (const std::uint32_t partition : reader->partitions_) {
      StartPosition start = chosen.start;
      if (chosen.resume) {
        const auto named = chosen.resume->find(partition);
        start = named != chosen.resume->end() ? StartPosition::from_offset(named->second) : StartPosition::from_beginning();
      }
      auto offset = store.resolve_start(chosen.stream, partition, start);
      if (!offset && offset.status().code() == ErrorCode::offset_out_of_range && chosen.resume) {
        // A resume position below the log start: retention removed what the client had not
        // read yet; continue from the log start (counted as skipped) rather than fail.
        auto beginning = store.resolve_start(chosen.stream, partition, StartPosition::from_beginning());
        if (beginning && *beginning > start.offset) {
          reader->skipped_ += *beginning - start.offset;
          offset = beginning;
        }
      }
      if (!offset) return offset.status();
      cursors[partition] = *offset;
    }
    return cursors;
  });
  if (!resolved) co_return resolved.status();
  reader->cursors_ = std::move(*resolved);
  co_return std::move(reader);
}

Result<LiveChunk> LiveReader::read_pass(std::size_t messages_max, std::size_t bytes_max) {
  LiveChunk chunk;
  Store& store = broker_.store();
  // Scan at most this many log messages per partition and pass, matching or not, so a
  // selective filter over a long history still yields (and pauses) in bounded steps.
  const std::size_t scan_messages_max = std::max<std::size_t>(messages_max, limits::subscription_read_messages_max);
  for (std::size_t visited = 0; visited < partitions_.size(); ++visited) {
    const std::uint32_t partition = partitions_[next_partition_index_];
    next_partition_index_ = (next_partition_index_ + 1) % partitions_.size();
    Offset& cursor = cursors_[partition];
    std::size_t bytes = 0;
    auto scanned = store.scan(options_.stream, partition, cursor, scan_messages_max, [&](const MessageView& message) {
      if (base::subject_matches(options_.subject_pattern, message.subject)) {
        bytes += message_cost_bytes(message);
        chunk.payload_bytes += message.payload.size();
        if (options_.encode) {
          const std::size_t begin = chunk.encoded.size();
          options_.encode(chunk.encoded, partition, message);
          chunk.messages.push_back(LiveMessage{partition, message.offset, Message{}, begin, chunk.encoded.size() - begin});
        } else {
          chunk.messages.push_back(LiveMessage{partition, message.offset, message.to_message(), 0, 0});
        }
        if (chunk.messages.size() >= messages_max || bytes >= bytes_max) return ScanControl::stop;  // this one is taken
      }
      return ScanControl::proceed;
    });
    if (!scanned && scanned.status().code() == ErrorCode::offset_out_of_range) {
      // Retention moved the log start past the cursor: continue from the new start.
      auto beginning = store.resolve_start(options_.stream, partition, StartPosition::from_beginning());
      if (!beginning) return beginning.status();
      if (*beginning <= cursor) return scanned.status();  // past the end: the log shrank (stream recreated)
      skipped_ += *beginning - cursor;
      cursor = *beginning;
      --visited;  // read this partition again from its new start
      next_partition_index_ = (next_partition_index_ + partitions_.size() - 1) % partitions_.size();
      continue;
    }
    if (!scanned) return scanned.status();
    cursor = *scanned;
    // One partition per chunk keeps position_after() exact; the next pass starts at the next
    // partition, so busy partitions cannot starve the others.
    if (!chunk.messages.empty()) break;
  }
  return chunk;
}

std::string LiveReader::position_after(const LiveMessage& message) const {
  std::map<std::uint32_t, Offset> position = cursors_;
  position[message.partition] = message.offset + 1;
  return format_position_text(position);
}

asio::awaitable<Result<LiveChunk>> LiveReader::read_available(std::size_t messages_max, std::size_t bytes_max) {
  messages_max = std::max<std::size_t>(1, messages_max);
  for (;;) {
    generation_before_read_ = broker_.store().data_generation();
    auto chunk = co_await broker_.run_blocking([&] { return read_pass(messages_max, bytes_max); });
    if (chunk || chunk.status().code() != ErrorCode::limit_exceeded || broker_.stopping()) co_return chunk;
    // The worker pool is full (producers come first): back off briefly instead of failing.
    asio::steady_timer pause(co_await asio::this_coro::executor, busy_retry_delay);
    (void)co_await pause.async_wait(asio::as_tuple(asio::use_awaitable));
  }
}

asio::awaitable<void> LiveReader::wait_for_data(std::chrono::steady_clock::time_point deadline) {
  co_await broker_.wait_for_data(generation_before_read_, deadline);
}

asio::awaitable<Result<LiveChunk>> LiveReader::next_chunk(std::size_t messages_max, std::size_t bytes_max,
                                                          std::chrono::steady_clock::time_point deadline) {
  for (;;) {
    auto chunk = co_await read_available(messages_max, bytes_max);
    if (!chunk || !chunk->messages.empty()) co_return chunk;
    if (std::chrono::steady_clock::now() >= deadline || broker_.stopping()) co_return chunk;
    co_await wait_for_data(deadline);
    // A wake-up at the deadline returns empty rather than delay the caller's heartbeat.
    if (std::chrono::steady_clock::now() >= deadline || broker_.stopping()) co_return LiveChunk{};
  }
}

}  // namespace msgstore::broker
