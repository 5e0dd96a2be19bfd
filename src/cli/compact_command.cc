// compact --stream S: compacts a cleanup=compact stream now (Store::compact) and prints one
// JSON line with what it did.
#include <memory>

#include "cli/command.h"
#include "cli/json.h"

namespace msgstore::cli {
namespace {

int run_compact(const GlobalOptions& global, const std::string& stream) {
  if (int status = check_stream_name(stream)) return status;
  auto store = open_store(global, /*create_if_missing=*/false);
  if (!store) return fail(store.status());
  auto report = (*store)->compact(stream);
  if (!report) return fail(report.status());
  const std::string line = JsonObject()
                               .add("stream", stream)
                               .add("partitions", report->partitions)
                               .add("segments_rewritten", report->segments_rewritten)
                               .add("messages_removed", report->messages_removed)
                               .add("bytes_before", report->bytes_before)
                               .add("bytes_after", report->bytes_after)
                               .finish();
  if (!print_line(line, true)) return fail(Status(ErrorCode::io_error, "writing to stdout failed"));
  return close_store(**store);
}

}  // namespace

void add_compact_command(CLI::App& app, const GlobalOptions& global, Commands& commands) {
  auto stream = std::make_shared<std::string>();
  CLI::App* compact = app.add_subcommand(
      "compact", "Compact a cleanup=compact stream now: keep the latest message per key, drop expired tombstones");
  compact->add_option("--stream", *stream, "Stream name")->required();
  commands.push_back({compact, [&global, stream] { return run_compact(global, *stream); }});
}

}  // namespace msgstore::cli
