// read STREAM [...] and tail STREAM [...] (read --follow).
//
// A plain read prints what is stored now, partition by partition, each in offset order, and
// exits. Follow mode subscribes (Store::subscribe) and prints messages as they arrive until
// SIGINT/SIGTERM (exit 0) or --limit messages.
//
// Note: the data directory is locked by the process that opens it, so while `tail` runs no
// other process can publish into the same directory; follow mode sees what this process's
// store delivers (history, and anything appended through it).
#include <signal.h>
#include <time.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <memory>
#include <mutex>

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

int read_stored(Store& store, const std::string& stream, std::uint32_t partition_count, const ReadPlan& plan) {
  constexpr std::size_t scan_messages = 1024;
  std::uint64_t printed = 0;
  bool output_failed = false;
  for (std::uint32_t partition = 0; partition < partition_count; ++partition) {
    if (plan.partition && *plan.partition != partition) continue;
    auto from = store.resolve_start(stream, partition, plan.start);
    if (!from) return fail(from.status());
    Offset next = *from;
    while (plan.limit == 0 || printed < plan.limit) {
      auto scanned = store.scan(stream, partition, next, scan_messages, [&](const MessageView& message) {
        if ((plan.limit != 0 && printed >= plan.limit) || output_failed) return ScanControl::stop;
        if (!print_line(render(plan, stream, partition, message))) {
          output_failed = true;
          return ScanControl::stop;
        }
        ++printed;
        return ScanControl::proceed;
      });
      if (output_failed) return stdout_failed();
      if (!scanned) return fail(scanned.status());
      if (*scanned <= next) break;  // reached the end of what is readable
      next = *scanned;
    }
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
// every thread (run_read blocks them before the store starts its threads) so that they wait
// for sigtimedwait here instead of killing the process.
int follow(Store& store, const std::string& stream, std::uint32_t partition_count, const ReadPlan& plan) {
  const sigset_t signals = stop_signals();

  SubscribeOptions options;
  options.stream = stream;
  options.start = plan.start;
  // The subscription applies one start to every partition. An offset only makes sense for the
  // one partition asked for: start the others anywhere valid and drop what is below the offset.
  std::optional<Offset> minimum_offset;
  if (plan.partition && plan.start.kind == StartPosition::Kind::offset && partition_count > 1) {
    auto valid = store.resolve_start(stream, *plan.partition, plan.start);
    if (!valid) return fail(valid.status());
    minimum_offset = plan.start.offset;
    options.start = StartPosition::from_beginning();
  }
  std::atomic<std::uint64_t> printed{0};
  std::atomic<bool> output_failed{false};
  auto subscription = store.subscribe(options, [&](const Delivery& delivery) {
    if (plan.partition && delivery.partition != *plan.partition) return;
    if (minimum_offset && delivery.message.offset < *minimum_offset) return;
    if ((plan.limit != 0 && printed.load() >= plan.limit) || output_failed.load()) return;
    if (!print_line(render(plan, delivery.stream, delivery.partition, delivery.message), /*flush=*/true)) {
      output_failed = true;
      return;
    }
    printed.fetch_add(1);
  });
  if (!subscription) return fail(subscription.status());
  const timespec poll_interval{0, 50'000'000};
  int result = exit_success;
  while (true) {
    if (plan.limit != 0 && printed.load() >= plan.limit) break;
    if (output_failed.load()) {
      result = stdout_failed();
      break;
    }
    Status status = (*subscription)->status();
    if (!status.is_ok()) {
      result = fail(status);
      break;
    }
    const int signal_number = sigtimedwait(&signals, nullptr, &poll_interval);
    if (signal_number == SIGINT || signal_number == SIGTERM) break;
  }
  (*subscription)->cancel();
  return result;
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
  auto store = open_store(global, /*create_if_missing=*/false);
  if (!store) return fail(store.status());
  auto info = (*store)->describe_stream(flags.stream);
  if (!info) return fail(info.status());
  const auto partition_count = static_cast<std::uint32_t>(info->partitions.size());
  if (plan->partition && *plan->partition >= partition_count) {
    return fail(Status(ErrorCode::partition_not_found, "stream '" + flags.stream + "' has no partition " +
                                                           std::to_string(*plan->partition) + " (it has " +
                                                           std::to_string(partition_count) + ")"));
  }
  const int result = follow_mode ? follow(**store, flags.stream, partition_count, *plan)
                                 : read_stored(**store, flags.stream, partition_count, *plan);
  const int closed = close_store(**store);
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
                      }});

  auto tail_flags = std::make_shared<ReadFlags>();
  CLI::App* tail = app.add_subcommand(
      "tail", "Follow a stream: print messages as they arrive (default: new ones only) until SIGINT/SIGTERM or --limit");
  add_read_flags(tail, *tail_flags);
  commands.push_back({tail, [&global, tail_flags] {
                        return run_read(global, *tail_flags, /*follow_mode=*/true, /*default_from_end=*/true);
                      }});
}

}  // namespace msgstore::cli
