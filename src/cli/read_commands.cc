// read STREAM [...] and tail STREAM [...] (read --follow).
//
// A plain read prints what is stored now, partition by partition, each in offset order, and
// exits. Follow mode (Backend::follow: a subscription, or Server-Sent Events with --server)
// prints messages as they arrive until SIGINT/SIGTERM (exit 0) or --limit messages.
//
// Note: the data directory is locked by the process that opens it, so while a local `tail`
// runs no other process can publish into the same directory; follow mode sees what this
// process's store delivers (history, and anything appended through it). With --server, the
// server holds the directory and every client's publishes are followed.
#include <signal.h>
#include <time.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <memory>
#include <mutex>

#include "cli/backend.h"
#include "cli/command.h"
#include "cli/output.h"
#include "cli/parse.h"

namespace msgstore::cli {
namespace {

struct ReadFlags {
  std::string stream;
  std::string partition;
  CLI::Option* partition_option = nullptr;
  std::string from_offset;
  CLI::Option* from_offset_option = nullptr;
  std::string from_time;
  CLI::Option* from_time_option = nullptr;
  bool from_beginning = false;
  bool from_end = false;
  std::string limit;
  CLI::Option* limit_option = nullptr;
  std::string format = "json";
  bool follow = false;
};

// What the flags mean, checked.
struct ReadPlan {
  std::optional<std::uint32_t> partition;
  StartPosition start;
  std::uint64_t limit = 0;  // 0 = no limit
  bool text = false;
};

Result<ReadPlan> make_plan(const ReadFlags& flags, bool default_from_end) {
  ReadPlan plan;
  plan.start = default_from_end ? StartPosition::new_only() : StartPosition::from_beginning();
  if (flags.partition_option->count() > 0) {
    auto partition = parse_unsigned(flags.partition, "--partition", limits::partitions_per_stream_max - 1);
    if (!partition) return partition.status();
    plan.partition = static_cast<std::uint32_t>(*partition);
  }
  if (flags.from_offset_option->count() > 0) {
    auto offset = parse_unsigned(flags.from_offset, "--from-offset");
    if (!offset) return offset.status();
    plan.start = StartPosition::from_offset(*offset);
  }
  if (flags.from_time_option->count() > 0) {
    auto time_ms = parse_time_ms(flags.from_time, "--from-time");
    if (!time_ms) return time_ms.status();
    plan.start = StartPosition::from_time(*time_ms);
  }
  if (flags.from_beginning) plan.start = StartPosition::from_beginning();
  if (flags.from_end) plan.start = StartPosition::new_only();
  if (flags.limit_option->count() > 0) {
    auto limit = parse_unsigned(flags.limit, "--limit");
    if (!limit) return limit.status();
    plan.limit = *limit;
  }
  plan.text = flags.format == "text";
  return plan;
}

std::string render(const ReadPlan& plan, std::string_view stream, std::uint32_t partition, const MessageView& message) {
  return plan.text ? std::string(message.payload) : message_json(stream, partition, message);
}

int stdout_failed() { return fail(Status(ErrorCode::io_error, "writing to stdout failed")); }

int read_stored(Backend& backend, const std::string& stream, std::uint32_t partition_count, const ReadPlan& plan) {
  std::uint64_t printed = 0;
  bool output_failed = false;
  for (std::uint32_t partition = 0; partition < partition_count; ++partition) {
    if (plan.partition && *plan.partition != partition) continue;
    if (plan.limit != 0 && printed >= plan.limit) break;
    Status read = backend.read_partition(stream, partition, plan.start, [&](const MessageView& message) {
      if (!print_line(render(plan, stream, partition, message))) {
        output_failed = true;
        return ScanControl::stop;
      }
      ++printed;
      return plan.limit != 0 && printed >= plan.limit ? ScanControl::stop : ScanControl::proceed;
    });
    if (output_failed) return stdout_failed();
    if (!read.is_ok()) return fail(read);
  }
  if (!flush_output()) return stdout_failed();
  return exit_success;
}

sigset_t stop_signals() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  return signals;
}

// Runs until SIGINT/SIGTERM, --limit, or an error. The stop signals must already be blocked in
// every thread (run_read blocks them before the backend starts any thread) so that they wait
// for sigtimedwait here instead of killing the process.
int follow(Backend& backend, const std::string& stream, std::uint32_t partition_count, const ReadPlan& plan) {
  const sigset_t signals = stop_signals();
  FollowRequest request;
  request.stream = stream;
  request.partition_count = partition_count;
  request.partition = plan.partition;
  request.start = plan.start;
  std::uint64_t printed = 0;  // only the delivering thread touches it
  std::atomic<bool> output_failed{false};
  Status followed = backend.follow(
      request,
      [&](std::string_view from_stream, std::uint32_t partition, const MessageView& message) {
        if (!print_line(render(plan, from_stream, partition, message), /*flush=*/true)) {
          output_failed = true;
          return ScanControl::stop;
        }
        ++printed;
        return plan.limit != 0 && printed >= plan.limit ? ScanControl::stop : ScanControl::proceed;
      },
      [&](std::chrono::milliseconds timeout) {
        const auto seconds = std::chrono::duration_cast<std::chrono::seconds>(timeout);
        const timespec wait{static_cast<time_t>(seconds.count()),
                            static_cast<long>(std::chrono::nanoseconds(timeout - seconds).count())};
        const int signal_number = sigtimedwait(&signals, nullptr, &wait);
        return signal_number == SIGINT || signal_number == SIGTERM;
      });
  if (output_failed.load()) return stdout_failed();
  if (!followed.is_ok()) return fail(followed);
  return exit_success;
}

int run_read(const GlobalOptions& global, const ReadFlags& flags, bool follow_mode, bool default_from_end) {
  if (int status = check_stream_name(flags.stream)) return status;
  auto plan = make_plan(flags, default_from_end);
  if (!plan) return usage_error(plan.status());
  if (follow_mode) {
    // Before the store exists: threads it starts inherit the mask.
    const sigset_t signals = stop_signals();
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  }
  auto backend = open_backend(global, /*create_if_missing=*/false);
  if (!backend) return fail(backend.status());
  auto info = (*backend)->describe_stream(flags.stream, nullptr);
  if (!info) return fail(info.status());
  const auto partition_count = static_cast<std::uint32_t>(info->partitions.size());
  if (plan->partition && *plan->partition >= partition_count) {
    return fail(Status(ErrorCode::partition_not_found, "stream '" + flags.stream + "' has no partition " +
                                                           std::to_string(*plan->partition) + " (it has " +
                                                           std::to_string(partition_count) + ")"));
  }
  const int result = follow_mode ? follow(**backend, flags.stream, partition_count, *plan)
                                 : read_stored(**backend, flags.stream, partition_count, *plan);
  const int closed = close_backend(**backend);
  return result != exit_success ? result : closed;
}

void add_read_flags(CLI::App* command, ReadFlags& flags) {
  command->add_option("stream", flags.stream, "Stream name")->required();
  flags.partition_option =
      command->add_option("--partition,-p", flags.partition, "Only this partition (default: all, each in offset order)")
          ->type_name("P");
  flags.from_offset_option =
      command->add_option("--from-offset", flags.from_offset, "Start at this offset")->type_name("OFFSET");
  flags.from_time_option = command
                               ->add_option("--from-time", flags.from_time,
                                            "Start at the first message at or after this time (ms since epoch or ISO 8601)")
                               ->type_name("TIME");
  CLI::Option* beginning = command->add_flag("--from-beginning", flags.from_beginning, "Start at the oldest stored message");
  CLI::Option* end = command->add_flag("--from-end", flags.from_end, "Start after the newest message");
  flags.from_offset_option->excludes(flags.from_time_option)->excludes(beginning)->excludes(end);
  flags.from_time_option->excludes(beginning)->excludes(end);
  beginning->excludes(end);
  flags.limit_option = command->add_option("--limit,-n", flags.limit, "Stop after N messages")->type_name("N");
  command->add_option("--format", flags.format, "Output: json (one object per line) or text (payloads only)")
      ->check(CLI::IsMember({"json", "text"}));
}

}  // namespace

void add_read_commands(CLI::App& app, const GlobalOptions& global, Commands& commands) {
  auto read_flags = std::make_shared<ReadFlags>();
  CLI::App* read = app.add_subcommand("read", "Print stored messages (default: from the beginning, all partitions)");
  add_read_flags(read, *read_flags);
  read->add_flag("--follow,-f", read_flags->follow, "Keep printing new messages until SIGINT/SIGTERM or --limit");
  commands.push_back({read, [&global, read_flags] {
                        return run_read(global, *read_flags, read_flags->follow, /*default_from_end=*/false);
                      }, true});

  auto tail_flags = std::make_shared<ReadFlags>();
  CLI::App* tail = app.add_subcommand(
      "tail", "Follow a stream: print messages as they arrive (default: new ones only) until SIGINT/SIGTERM or --limit");
  add_read_flags(tail, *tail_flags);
  commands.push_back({tail, [&global, tail_flags] {
                        return run_read(global, *tail_flags, /*follow_mode=*/true, /*default_from_end=*/true);
                      }, true});
}

}  // namespace msgstore::cli
