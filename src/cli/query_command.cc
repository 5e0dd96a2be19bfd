// query [--stream S] [predicates...]: finds messages through Store::query (docs/query.md).
//
// Output: one JSON object per matching message (the same shape as `read`), then, when more
// matches may follow, {"next_cursor":"..."} (pass it to --cursor for the next page), then with
// --explain {"explain":{...}}: which index served the query and what it read.
#include "cli/backend.h"
#include "cli/command.h"
#include "cli/json.h"
#include "cli/output.h"
#include "cli/parse.h"
#include "index/query_parameters.h"

namespace msgstore::cli {
namespace {

struct QueryFlags {
  std::string stream, partition, from_time, to_time, from_offset, to_offset, subject, key, contains, limit = "100", cursor;
  std::vector<std::string> headers;
  bool newest_first = false;
  bool explain = false;
  bool scan = false;
  CLI::Option* partition_option = nullptr;
  CLI::Option* from_time_option = nullptr;
  CLI::Option* to_time_option = nullptr;
  CLI::Option* from_offset_option = nullptr;
  CLI::Option* to_offset_option = nullptr;
  CLI::Option* key_option = nullptr;
  CLI::Option* contains_option = nullptr;
};

// The flags become the shared query parameters (index/query_parameters.h), so the CLI and the
// HTTP API parse predicates with one piece of code.
Result<Query> make_query(const QueryFlags& flags) {
  index::QueryParameterList parameters;
  const auto add_if = [&parameters](const CLI::Option* option, std::string_view name, const std::string& value) {
    if (option->count() > 0) parameters.emplace_back(std::string(name), value);
  };
  add_if(flags.partition_option, "partition", flags.partition);
  add_if(flags.from_time_option, "from_time", flags.from_time);
  add_if(flags.to_time_option, "to_time", flags.to_time);
  add_if(flags.from_offset_option, "from_offset", flags.from_offset);
  add_if(flags.to_offset_option, "to_offset", flags.to_offset);
  if (!flags.subject.empty()) parameters.emplace_back("subject", flags.subject);
  add_if(flags.key_option, "key", flags.key);
  for (const std::string& header : flags.headers) {
    auto parsed = parse_header_assignment(header, "--header");
    if (!parsed) return parsed.status();
    parameters.emplace_back(std::string(index::header_parameter_prefix) + std::string(parsed->name), std::string(parsed->value));
  }
  add_if(flags.contains_option, "contains", flags.contains);
  if (flags.newest_first) parameters.emplace_back("order", "newest");
  parameters.emplace_back("limit", flags.limit);
  if (!flags.cursor.empty()) parameters.emplace_back("cursor", flags.cursor);
  if (flags.scan) parameters.emplace_back("scan", "true");
  auto request = index::parse_query_parameters(flags.stream, parameters, index::ParameterSpelling::command_line);
  if (!request) return request.status();
  return std::move(request->query);
}

std::string statistics_json(const QueryStatistics& statistics) {
  JsonObject object;
  object.add("plan", statistics.plan);
  index::for_each_query_statistic(statistics, [&object](std::string_view name, std::uint64_t value) { object.add(name, value); });
  return object.finish();
}

int run_query_command(const GlobalOptions& global, const QueryFlags& flags) {
  if (!flags.stream.empty() && check_stream_name(flags.stream) != exit_success) return exit_usage;
  auto query = make_query(flags);
  if (!query) return usage_error(query.status());
  auto backend = open_backend(global, /*create_if_missing=*/false);
  if (!backend) return fail(backend.status());
  bool output_failed = false;
  auto result = (*backend)->query(*query, [&](const QueryMatch& match) {
    if (!print_line(message_json(match.stream, match.partition, match.message))) {
      output_failed = true;
      return ScanControl::stop;
    }
    return ScanControl::proceed;
  });
  if (output_failed) return fail(Status(ErrorCode::io_error, "writing to stdout failed"));
  if (!result) {
    // Bad predicates and cursors are the user's input: usage errors, like malformed flags.
    if (result.status().code() == ErrorCode::invalid_argument) return usage_error(result.status());
    return fail(result.status());
  }
  if (!result->next_cursor.empty()) print_line(JsonObject().add("next_cursor", result->next_cursor).finish());
  if (flags.explain) print_line(JsonObject().add_raw("explain", statistics_json(result->statistics)).finish());
  if (!flush_output()) return fail(Status(ErrorCode::io_error, "writing to stdout failed"));
  return close_backend(**backend);
}

}  // namespace

void add_query_command(CLI::App& app, const GlobalOptions& global, Commands& commands) {
  auto flags = std::make_shared<QueryFlags>();
  CLI::App* query = app.add_subcommand("query", "Find messages by key, subject, header values, time, offsets or payload text");
  query->add_option("--stream", flags->stream, "Stream to search (default: every stream)")->type_name("NAME");
  flags->partition_option = query->add_option("--partition", flags->partition, "Only this partition")->type_name("N");
  flags->from_time_option = query->add_option("--from-time", flags->from_time, "Timestamp at or after (ms or ISO 8601)")->type_name("TIME");
  flags->to_time_option = query->add_option("--to-time", flags->to_time, "Timestamp before (ms or ISO 8601)")->type_name("TIME");
  flags->from_offset_option = query->add_option("--from-offset", flags->from_offset, "Offset at or after")->type_name("N");
  flags->to_offset_option = query->add_option("--to-offset", flags->to_offset, "Offset before")->type_name("N");
  query->add_option("--subject", flags->subject, "Subject pattern ('orders.*', 'orders.>')")->type_name("PATTERN");
  flags->key_option = query->add_option("--key", flags->key, "Message key equals")->type_name("KEY");
  query->add_option("--header", flags->headers, "Header name=value that must be present (repeatable; AND)")
      ->allow_extra_args(false)
      ->type_name("NAME=VALUE");
  flags->contains_option = query->add_option("--contains", flags->contains, "Payload contains this text (a scan)")->type_name("TEXT");
  query->add_flag("--newest-first", flags->newest_first, "Newest first (default oldest first)");
  query->add_option("--limit", flags->limit, "At most this many messages (default 100)")->type_name("N");
  query->add_option("--cursor", flags->cursor, "Continue from a previous query's next_cursor")->type_name("CURSOR");
  query->add_flag("--explain", flags->explain, "Print which index served the query and what it read");
  query->add_flag("--scan", flags->scan, "Allow header predicates on headers the stream does not index (a scan)");
  commands.push_back({query, [&global, flags] { return run_query_command(global, *flags); }, true});
}

}  // namespace msgstore::cli
