// publish SUBJECT [MESSAGE...]: one message per argument, or one per line of stdin.
//
// Policies: --ttl gives every message a time to live; --message-id (duplicate suppression)
// and --expected-offset (conditional append on the partition's last offset) describe one
// message, so they need exactly one MESSAGE argument. A duplicate's ack line is the
// original's position with "duplicate":true.
//
// The ack contract (tests/e2e/kill9_test.cc relies on it): a line
// {"stream":..,"partition":..,"offset":..,"index":..} is written and flushed only after
// publish_batch returned ok, so under fsync=always a printed line means the message is on
// disk. `index` counts the messages of this invocation from 0 (arguments or stdin lines).
#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <optional>

#include "cli/backend.h"
#include "cli/command.h"
#include "cli/output.h"
#include "cli/parse.h"

namespace msgstore::cli {
namespace {

struct PublishFlags {
  std::string subject;
  std::vector<std::string> messages;
  std::string key;
  CLI::Option* key_option = nullptr;
  std::vector<std::string> headers;
  std::string timestamp;
  CLI::Option* timestamp_option = nullptr;
  std::string batch = "1";
  CLI::Option* batch_option = nullptr;
  bool quiet = false;
  std::string message_id;
  CLI::Option* message_id_option = nullptr;
  std::string expected_offset;
  CLI::Option* expected_offset_option = nullptr;
  std::string expected_key_offset;
  CLI::Option* expected_key_offset_option = nullptr;
  std::string ttl;
  CLI::Option* ttl_option = nullptr;
};

// What the policy flags ask of every message of this invocation.
struct Policies {
  std::optional<std::string_view> message_id;
  std::optional<Offset> expected_offset;
  std::optional<Offset> expected_key_offset;
  std::optional<std::int64_t> ttl_ms;
};

// Client mode without --batch: each publish is a round trip, so stdin lines go in batches of
// up to this many messages and about this many payload bytes (well under the server's default
// batch_messages_max and request_body_bytes_max). A partial batch still goes as soon as stdin
// has nothing more ready.
constexpr std::size_t client_batch_messages_default = 1000;
constexpr std::size_t client_batch_payload_bytes_max = 4 * 1024 * 1024;

// Collects messages into batches of up to `batch_size` (and, when not 0, about
// `batch_payload_bytes_max` payload bytes) and publishes them.
class Publisher {
 public:
  Publisher(Backend& backend, const PublishFlags& flags, std::vector<HeaderView> headers, TimestampMs timestamp_ms,
            std::size_t batch_size, std::size_t batch_payload_bytes_max, Policies policies)
      : backend_(backend),
        flags_(flags),
        headers_(std::move(headers)),
        timestamp_ms_(timestamp_ms),
        batch_size_(batch_size),
        batch_payload_bytes_max_(batch_payload_bytes_max),
        policies_(policies) {}

  bool has_pending() const { return !pending_.empty(); }

  // Adds one message; publishes when the batch is full.
  Status add(std::string payload) {
    pending_bytes_ += payload.size();
    pending_.push_back(std::move(payload));
    const bool full = pending_.size() >= batch_size_ || (batch_payload_bytes_max_ != 0 && pending_bytes_ >= batch_payload_bytes_max_);
    return full ? flush() : Status::ok();
  }

  // Publishes what is pending and prints one ack line per stored copy.
  Status flush() {
    if (pending_.empty()) return Status::ok();
    std::vector<OutgoingMessage> messages;
    messages.reserve(pending_.size());
    for (const std::string& payload : pending_) {
      OutgoingMessage message;
      message.subject = flags_.subject;
      if (flags_.key_option->count() > 0) message.key = flags_.key;
      message.headers = headers_;
      message.payload = payload;
      message.timestamp_ms = timestamp_ms_;
      message.message_id = policies_.message_id;
      message.expected_offset = policies_.expected_offset;
      message.expected_key_offset = policies_.expected_key_offset;
      message.ttl_ms = policies_.ttl_ms;
      messages.push_back(message);
    }
    auto positions = backend_.publish_batch(messages);
    if (!positions) {
      const std::uint64_t last = next_index_ + pending_.size() - 1;
      const std::string which = pending_.size() == 1 ? "message " + std::to_string(next_index_)
                                                     : "messages " + std::to_string(next_index_) + "-" + std::to_string(last);
      std::string_view reason = positions.status().message();
      // The store numbers messages within the batch; ours count from the start of the input.
      constexpr std::string_view batch_prefix = "message 0: ";
      if (pending_.size() == 1 && reason.substr(0, batch_prefix.size()) == batch_prefix) reason.remove_prefix(batch_prefix.size());
      std::string detail;
      if (const auto& actual = positions.status().actual_offset()) {  // for scripts: the offset to expect next time
        detail = *actual == expected_offset_empty ? " (actual_offset=empty)" : " (actual_offset=" + std::to_string(*actual) + ")";
      }
      return Status(positions.status().code(), which + " not published: " + std::string(reason) + detail);
    }
    if (!flags_.quiet) {
      for (const Position& position : *positions) {
        if (!print_line(position_json(position, next_index_ + position.message_index))) {
          return Status(ErrorCode::io_error, "writing to stdout failed: " + std::string(std::strerror(errno)));
        }
      }
      if (!flush_output()) return Status(ErrorCode::io_error, "writing to stdout failed: " + std::string(std::strerror(errno)));
    }
    next_index_ += pending_.size();
    pending_.clear();
    pending_bytes_ = 0;
    return Status::ok();
  }

 private:
  Backend& backend_;
  const PublishFlags& flags_;
  std::vector<HeaderView> headers_;
  TimestampMs timestamp_ms_;
  std::size_t batch_size_;
  std::size_t batch_payload_bytes_max_;
  Policies policies_;
  std::vector<std::string> pending_;
  std::size_t pending_bytes_ = 0;
  std::uint64_t next_index_ = 0;
};

// True if a read of stdin would not block (data or end of file is there).
bool stdin_ready() {
  pollfd descriptor{STDIN_FILENO, POLLIN, 0};
  while (true) {
    const int ready = ::poll(&descriptor, 1, 0);
    if (ready >= 0) return ready > 0;
    if (errno != EINTR) return true;  // let read() report the problem
  }
}

// Reads stdin one message per line ('\n' is not part of the message; a last line without a
// newline is a message too). A partial batch is published as soon as stdin has nothing more
// ready, so interactive use acks each line as it is typed.
Status publish_stdin(Publisher& publisher) {
  constexpr std::size_t read_bytes = 64 * 1024;
  // A line can be at most one message; anything longer is refused rather than buffered forever.
  constexpr std::size_t line_bytes_max = limits::message_bytes_max;
  std::string buffer;
  std::size_t consumed = 0;  // bytes of `buffer` already turned into messages
  std::size_t searched = 0;  // bytes of `buffer` known to hold no newline
  bool end_of_input = false;
  while (true) {
    while (true) {
      const std::size_t newline = buffer.find('\n', std::max(consumed, searched));
      if (newline == std::string::npos) break;
      MSGSTORE_RETURN_IF_ERROR(publisher.add(buffer.substr(consumed, newline - consumed)));
      consumed = newline + 1;
    }
    searched = buffer.size();
    if (buffer.size() - consumed > line_bytes_max) {
      return Status(ErrorCode::message_too_large, "an input line is longer than " + std::to_string(line_bytes_max) + " bytes");
    }
    if (end_of_input) {
      if (consumed < buffer.size()) MSGSTORE_RETURN_IF_ERROR(publisher.add(buffer.substr(consumed)));
      return publisher.flush();
    }
    if (publisher.has_pending() && !stdin_ready()) MSGSTORE_RETURN_IF_ERROR(publisher.flush());
    if (consumed > 0 && consumed * 2 >= buffer.size()) {
      buffer.erase(0, consumed);
      searched -= consumed;
      consumed = 0;
    }
    const std::size_t old_size = buffer.size();
    buffer.resize(old_size + read_bytes);
    const ssize_t got = ::read(STDIN_FILENO, buffer.data() + old_size, read_bytes);
    if (got < 0) {
      buffer.resize(old_size);
      if (errno == EINTR) continue;
      return Status(ErrorCode::io_error, "reading stdin failed: " + std::string(std::strerror(errno)));
    }
    buffer.resize(old_size + static_cast<std::size_t>(got));
    if (got == 0) end_of_input = true;
  }
}

int run_publish(const GlobalOptions& global, const PublishFlags& flags) {
  std::vector<HeaderView> headers;
  for (const std::string& header : flags.headers) {
    auto parsed = parse_header_assignment(header, "--header");
    if (!parsed) return usage_error(parsed.status());
    headers.push_back(*parsed);
  }
  TimestampMs timestamp_ms = timestamp_now;
  if (flags.timestamp_option->count() > 0) {
    auto parsed = parse_time_ms(flags.timestamp, "--timestamp-ms");
    if (!parsed) return usage_error(parsed.status());
    timestamp_ms = *parsed;
  }
  auto batch = parse_unsigned(flags.batch, "--batch", limits::messages_per_publish_max);
  if (!batch) return usage_error(batch.status());
  if (*batch == 0) return usage_error("--batch: must be at least 1");
  Policies policies;
  const bool single_message_flags = flags.message_id_option->count() > 0 || flags.expected_offset_option->count() > 0 ||
                                    flags.expected_key_offset_option->count() > 0;
  if (single_message_flags && flags.messages.size() != 1) {
    return usage_error("--message-id, --expected-offset and --expected-key-offset describe one message: give exactly one "
                       "MESSAGE argument");
  }
  if (flags.message_id_option->count() > 0) policies.message_id = flags.message_id;
  // "empty" or an offset, for --expected-offset and --expected-key-offset.
  auto parse_expected = [](const std::string& text, const char* what) -> Result<Offset> {
    if (text == "empty") return expected_offset_empty;
    auto expected = parse_unsigned(text, what, expected_offset_empty - 1);
    if (!expected) return Status(ErrorCode::invalid_argument, expected.status().message() + " or 'empty'");
    return *expected;
  };
  if (flags.expected_offset_option->count() > 0) {
    auto expected = parse_expected(flags.expected_offset, "--expected-offset");
    if (!expected) return usage_error(expected.status());
    policies.expected_offset = *expected;
  }
  if (flags.expected_key_offset_option->count() > 0) {
    auto expected = parse_expected(flags.expected_key_offset, "--expected-key-offset");
    if (!expected) return usage_error(expected.status());
    policies.expected_key_offset = *expected;
  }
  if (flags.ttl_option->count() > 0) {
    auto ttl = parse_duration_ms(flags.ttl, "--ttl");
    if (!ttl) return usage_error(ttl.status());
    if (*ttl <= 0) return usage_error("--ttl: must be positive (e.g. 500ms, 30s, 15m)");
    policies.ttl_ms = *ttl;
  }

  auto backend = open_backend(global, /*create_if_missing=*/false);
  if (!backend) return fail(backend.status());
  std::size_t batch_size = static_cast<std::size_t>(*batch);
  std::size_t batch_payload_bytes_max = 0;
  if (!global.server_url.empty() && flags.batch_option->count() == 0) {
    batch_size = client_batch_messages_default;
    batch_payload_bytes_max = client_batch_payload_bytes_max;
  }
  Publisher publisher(**backend, flags, std::move(headers), timestamp_ms, batch_size, batch_payload_bytes_max, policies);
  Status published;
  if (!flags.messages.empty()) {
    for (const std::string& message : flags.messages) {
      published = publisher.add(message);
      if (!published.is_ok()) break;
    }
    if (published.is_ok()) published = publisher.flush();
  } else {
    published = publish_stdin(publisher);
  }
  if (!published.is_ok()) {
    (void)(*backend)->close();
    return fail(published);
  }
  return close_backend(**backend);
}

}  // namespace

void add_publish_command(CLI::App& app, const GlobalOptions& global, Commands& commands) {
  auto flags = std::make_shared<PublishFlags>();
  CLI::App* publish = app.add_subcommand(
      "publish", "Publish messages: each MESSAGE argument is one message; without any, each line of stdin is one");
  publish->add_option("subject", flags->subject, "Subject to publish to (e.g. orders.created)")->required();
  publish->add_option("message", flags->messages, "Message payloads (use -- before payloads that start with '-')");
  flags->key_option = publish->add_option("--key", flags->key, "Partitioning key (same key, same partition)");
  publish->add_option("--header", flags->headers, "Header name=value (repeatable)")
      ->allow_extra_args(false)  // one name=value per --header; payloads stay positional
      ->type_name("NAME=VALUE");
  flags->timestamp_option =
      publish->add_option("--timestamp-ms", flags->timestamp, "Message timestamp: ms since the epoch or ISO 8601 (default now)")
          ->type_name("TIME");
  flags->batch_option =
      publish->add_option("--batch", flags->batch,
                          "Messages per publish call when reading stdin or arguments (default 1; with --server 1000)")
          ->type_name("N");
  publish->add_flag("--quiet,-q", flags->quiet, "Do not print ack lines");
  flags->message_id_option =
      publish->add_option("--message-id", flags->message_id,
                          "Message id for duplicate suppression: a repeat within the stream's dedup window stores nothing "
                          "and acks the original position with \"duplicate\":true (one MESSAGE)")
          ->type_name("ID");
  flags->expected_key_offset_option =
      publish->add_option("--expected-key-offset", flags->expected_key_offset,
                          "Conditional append per key (needs --key): the key's expected last offset, or 'empty'; on "
                          "mismatch nothing is stored and the error gives actual_offset (one MESSAGE)")
          ->type_name("OFFSET");
  flags->expected_offset_option =
      publish->add_option("--expected-offset", flags->expected_offset,
                          "Conditional append: the partition's expected last offset, or 'empty'; on mismatch nothing is "
                          "stored and the error (expected_offset_mismatch) gives actual_offset (one MESSAGE)")
          ->type_name("OFFSET");
  flags->ttl_option = publish->add_option("--ttl", flags->ttl, "Time to live of every message (500ms, 30s, 15m, 2h, 7d)")
                          ->type_name("DURATION");
  commands.push_back({publish, [&global, flags] { return run_publish(global, *flags); }, true});
}

}  // namespace msgstore::cli
