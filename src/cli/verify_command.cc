// verify [STREAM]: checks every checksum and index entry (Store::verify).
//
// Prints what was checked and one "problem:" line per problem, then "clean" or "damaged".
// Exit 0 when clean, 1 when anything is damaged (with a one-line summary on stderr).
#include <memory>

#include "cli/command.h"

namespace msgstore::cli {
namespace {

int run_verify(const GlobalOptions& global, const std::string& stream) {
  if (!stream.empty()) {
    if (int status = check_stream_name(stream)) return status;
  }
  auto store = open_store(global, /*create_if_missing=*/false);
  if (!store) return fail(store.status());
  auto report = (*store)->verify(stream);
  if (!report) return fail(report.status());
  std::string scope = stream.empty() ? "all streams" : "stream '" + stream + "'";
  print_line("verified " + scope + ": " + std::to_string(report->segments_checked) + " segments, " +
             std::to_string(report->batches_checked) + " batches, " + std::to_string(report->messages_checked) +
             " messages, " + std::to_string(report->bytes_checked) + " bytes, " +
             std::to_string(report->index_entries_checked) + " index entries");
  for (const std::string& problem : report->problems) print_line("problem: " + problem);
  print_line(report->clean() ? "clean" : "damaged: " + std::to_string(report->problems.size()) + " problem(s)");
  if (!flush_output()) return fail(Status(ErrorCode::io_error, "writing to stdout failed"));
  const int closed = close_store(**store);
  if (!report->clean()) {
    return fail(Status(ErrorCode::corruption, scope + " has " + std::to_string(report->problems.size()) +
                                                  " problem(s); first: " + report->problems.front()));
  }
  return closed;
}

}  // namespace

void add_verify_command(CLI::App& app, const GlobalOptions& global, Commands& commands) {
  auto stream = std::make_shared<std::string>();
  CLI::App* verify = app.add_subcommand(
      "verify", "Check every checksum and index of every stream (or one); exit 1 and list each problem if damaged");
  verify->add_option("stream", *stream, "Only this stream");
  commands.push_back({verify, [&global, stream] { return run_verify(global, *stream); }});
}

}  // namespace msgstore::cli
