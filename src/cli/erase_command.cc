// erase --stream S (--key K | --header name=value) --actor WHO [--background]: makes every
// matching message unreadable at once (Store::erase), records the erase in the audit stream,
// then (unless --background) rewrites the affected segments, printing progress as JSON lines:
//   {"event":"erased","matched_messages":N,"segments_to_rewrite":M,"audit_offset":O}
//   {"event":"progress","segments_rewritten":i,"segments_pending":p,"offsets_pending":q}
//   {"event":"done",...}
#include <memory>

#include "cli/command.h"
#include "cli/json.h"

namespace msgstore::cli {
namespace {

struct EraseFlags {
  std::string stream;
  std::string key;
  std::string header;
  std::string actor;
  bool background = false;
  CLI::Option* key_option = nullptr;
  CLI::Option* header_option = nullptr;
};

std::string progress_json(std::string_view event, const EraseProgress& progress) {
  return JsonObject()
      .add("event", event)
      .add("segments_rewritten", progress.segments_rewritten)
      .add("segments_pending", progress.segments_pending)
      .add("offsets_pending", progress.offsets_pending)
      .finish();
}

int run_erase(const GlobalOptions& global, const EraseFlags& flags) {
  if (int status = check_stream_name(flags.stream)) return status;
  EraseRequest request;
  request.stream = flags.stream;
  request.actor = flags.actor;
  if ((flags.key_option->count() > 0) == (flags.header_option->count() > 0)) {
    return usage_error("erase needs exactly one of --key or --header name=value");
  }
  if (flags.key_option->count() > 0) request.criteria.key = flags.key;
  if (flags.header_option->count() > 0) {
    const std::size_t equals = flags.header.find('=');
    if (equals == std::string::npos || equals == 0) return usage_error("--header: expected name=value");
    request.criteria.header = Header{flags.header.substr(0, equals), flags.header.substr(equals + 1)};
  }
  if (request.actor.empty()) return usage_error("--actor: say who asks for the erase (it goes into the audit stream)");
  auto store = open_store(global, /*create_if_missing=*/false);
  if (!store) return fail(store.status());
  auto report = (*store)->erase(request);
  if (!report) return fail(report.status());
  const std::string erased = JsonObject()
                                 .add("event", "erased")
                                 .add("stream", flags.stream)
                                 .add("matched_messages", report->matched_messages)
                                 .add("segments_to_rewrite", report->segments_to_rewrite)
                                 .add("audit_stream", std::string(audit_stream_name))
                                 .add("audit_offset", report->audit_offset)
                                 .finish();
  if (!print_line(erased, true)) return fail(Status(ErrorCode::io_error, "writing to stdout failed"));
  if (!flags.background) {
    bool output_ok = true;
    auto done = (*store)->finish_erasures(flags.stream, [&output_ok](const EraseProgress& progress) {
      output_ok = output_ok && print_line(progress_json("progress", progress), true);
    });
    if (!done) return fail(done.status());
    if (!output_ok || !print_line(progress_json("done", *done), true)) {
      return fail(Status(ErrorCode::io_error, "writing to stdout failed"));
    }
  }
  return close_store(**store);
}

}  // namespace

void add_erase_command(CLI::App& app, const GlobalOptions& global, Commands& commands) {
  auto flags = std::make_shared<EraseFlags>();
  CLI::App* erase = app.add_subcommand(
      "erase", "Erase every message with a key or header value: unreadable at once, bytes removed from disk, audited");
  erase->add_option("--stream", flags->stream, "Stream name")->required();
  flags->key_option = erase->add_option("--key", flags->key, "Erase the messages with this key");
  flags->header_option = erase->add_option("--header", flags->header, "Erase the messages with this header")->type_name("NAME=VALUE");
  erase->add_option("--actor", flags->actor, "Who asks for the erase (recorded in the audit stream)")->required();
  erase->add_flag("--background", flags->background,
                  "Return once the messages are unreadable; the store's maintenance removes the bytes later");
  commands.push_back({erase, [&global, flags] { return run_erase(global, *flags); }});
}

}  // namespace msgstore::cli
