// stream create | update | list | info | delete
#include <memory>

#include "cli/backend.h"
#include "cli/command.h"
#include "cli/json.h"
#include "cli/output.h"
#include "cli/parse.h"

namespace msgstore::cli {
namespace {

// The configuration flags shared by create and update. Values are kept as text and parsed by
// our own parsers so every malformed value gets the same kind of message.
struct StreamFlags {
  std::string name;
  std::vector<std::string> subjects;
  std::string partitions, max_age, max_bytes, max_messages, fsync, max_message_bytes, segment_bytes, segment_age;
  std::string index_headers, indexes;
  std::string dedup_window;
  CLI::Option* dedup_window_option = nullptr;
  std::string cleanup, tombstone_retention;
  CLI::Option* cleanup_option = nullptr;
  CLI::Option* tombstone_retention_option = nullptr;
  CLI::Option* subjects_option = nullptr;
  CLI::Option* index_headers_option = nullptr;
  CLI::Option* indexes_option = nullptr;
  CLI::Option* partitions_option = nullptr;
  CLI::Option* max_age_option = nullptr;
  CLI::Option* max_bytes_option = nullptr;
  CLI::Option* max_messages_option = nullptr;
  CLI::Option* fsync_option = nullptr;
  CLI::Option* max_message_bytes_option = nullptr;
  CLI::Option* segment_bytes_option = nullptr;
  CLI::Option* segment_age_option = nullptr;
};

void add_stream_flags(CLI::App* command, StreamFlags& flags, bool subjects_required) {
  command->add_option("name", flags.name, "Stream name (letters, digits, '.', '_', '-')")->required();
  flags.subjects_option = command->add_option("--subjects", flags.subjects,
                                              "Subject patterns, comma separated ('orders.*,orders.>')")
                              ->delimiter(',')
                              ->allow_extra_args(false)  // one value per --subjects; positionals stay positional
                              ->type_name("PATTERNS");
  if (subjects_required) flags.subjects_option->required();
  flags.partitions_option = command->add_option("--partitions", flags.partitions, "Number of partitions (default 1)")->type_name("N");
  flags.max_age_option =
      command->add_option("--max-age", flags.max_age, "Retention by age: 500ms, 3600s, 15m, 2h, 7d, 0 = unlimited")
          ->type_name("DURATION");
  flags.max_bytes_option =
      command->add_option("--max-bytes", flags.max_bytes, "Retention by size per partition: 1GiB, 500MB, 0 = unlimited")
          ->type_name("SIZE");
  flags.max_messages_option =
      command->add_option("--max-messages", flags.max_messages, "Retention by message count, 0 = unlimited")->type_name("N");
  flags.fsync_option =
      command->add_option("--fsync", flags.fsync, "When a publish is acknowledged: always (default), never, interval:<ms>")
          ->type_name("POLICY");
  flags.max_message_bytes_option =
      command->add_option("--max-message-bytes", flags.max_message_bytes, "Largest accepted message (default 1MiB)")
          ->type_name("SIZE");
  flags.segment_bytes_option =
      command->add_option("--segment-bytes", flags.segment_bytes, "Roll segment files at this size (default 128MiB)")
          ->type_name("SIZE");
  flags.segment_age_option =
      command->add_option("--segment-age", flags.segment_age, "Roll segment files at this age (default 7d)")
          ->type_name("DURATION");
  flags.index_headers_option =
      command->add_option("--index-headers", flags.index_headers,
                          "Headers whose values are indexed for queries, comma separated ('' for none)")
          ->type_name("NAMES");
  flags.indexes_option =
      command->add_option("--indexes", flags.indexes, "Key, subject and header indexes: on (default) or off")->type_name("on|off");
  flags.dedup_window_option =
      command->add_option("--dedup-window", flags.dedup_window,
                          "Duplicate suppression window for message ids (default 2m, 0 = off)")
          ->type_name("DURATION");
  flags.cleanup_option =
      command->add_option("--cleanup", flags.cleanup, "delete (default) or compact: keep only the latest message per key")
          ->type_name("POLICY");
  flags.tombstone_retention_option =
      command->add_option("--tombstone-retention", flags.tombstone_retention,
                          "With --cleanup compact: how long tombstones stay before their key is gone (default 1d)")
          ->type_name("DURATION");
}

// Applies the flags that were given on top of `config`.
Status apply_stream_flags(const StreamFlags& flags, StreamConfig& config) {
  config.name = flags.name;
  if (flags.subjects_option->count() > 0) {
    config.subjects.clear();
    for (const std::string& item : flags.subjects) {
      for (std::string& pattern : split_list(item)) config.subjects.push_back(std::move(pattern));
    }
    if (config.subjects.empty()) return Status(ErrorCode::invalid_argument, "--subjects: at least one subject pattern is required");
  }
  if (flags.partitions_option->count() > 0) {
    auto value = parse_unsigned(flags.partitions, "--partitions", limits::partitions_per_stream_max);
    if (!value) return value.status();
    config.partitions = static_cast<std::uint32_t>(*value);
  }
  if (flags.max_age_option->count() > 0) {
    auto value = parse_duration_ms(flags.max_age, "--max-age");
    if (!value) return value.status();
    config.max_age_ms = *value;
  }
  if (flags.max_bytes_option->count() > 0) {
    auto value = parse_bytes(flags.max_bytes, "--max-bytes");
    if (!value) return value.status();
    config.max_bytes = *value;
  }
  if (flags.max_messages_option->count() > 0) {
    auto value = parse_unsigned(flags.max_messages, "--max-messages");
    if (!value) return value.status();
    config.max_messages = *value;
  }
  if (flags.fsync_option->count() > 0) {
    Status parsed = parse_fsync_policy(flags.fsync, config.fsync, config.fsync_interval_ms);
    if (!parsed.is_ok()) return Status(parsed.code(), "--fsync: " + parsed.message());
  }
  if (flags.max_message_bytes_option->count() > 0) {
    auto value = parse_bytes(flags.max_message_bytes, "--max-message-bytes");
    if (!value) return value.status();
    config.max_message_bytes = *value;
  }
  if (flags.segment_bytes_option->count() > 0) {
    auto value = parse_bytes(flags.segment_bytes, "--segment-bytes");
    if (!value) return value.status();
    config.segment_bytes = *value;
  }
  if (flags.segment_age_option->count() > 0) {
    auto value = parse_duration_ms(flags.segment_age, "--segment-age");
    if (!value) return value.status();
    if (*value == 0) return Status(ErrorCode::invalid_argument, "--segment-age: must be positive");
    config.segment_age_ms = *value;
  }
  if (flags.index_headers_option->count() > 0) config.indexed_headers = split_list(flags.index_headers);
  if (flags.indexes_option->count() > 0) {
    if (flags.indexes != "on" && flags.indexes != "off") return Status(ErrorCode::invalid_argument, "--indexes: on or off");
    config.indexes_enabled = flags.indexes == "on";
  }
  if (flags.dedup_window_option->count() > 0) {
    auto value = parse_duration_ms(flags.dedup_window, "--dedup-window");
    if (!value) return value.status();
    config.dedup_window_ms = *value;
  }
  if (flags.cleanup_option->count() > 0) {
    Status parsed = parse_cleanup_policy(flags.cleanup, config.cleanup);
    if (!parsed.is_ok()) return Status(parsed.code(), "--cleanup: " + parsed.message());
  }
  if (flags.tombstone_retention_option->count() > 0) {
    auto value = parse_duration_ms(flags.tombstone_retention, "--tombstone-retention");
    if (!value) return value.status();
    config.tombstone_retention_ms = *value;
  }
  return Status::ok();
}

// The configuration fields (stream_config_json names) whose flags were given.
std::vector<std::string> given_fields(const StreamFlags& flags) {
  const std::pair<const CLI::Option*, const char*> options[] = {
      {flags.subjects_option, "subjects"},
      {flags.partitions_option, "partitions"},
      {flags.max_age_option, "max_age_ms"},
      {flags.max_bytes_option, "max_bytes"},
      {flags.max_messages_option, "max_messages"},
      {flags.fsync_option, "fsync"},
      {flags.max_message_bytes_option, "max_message_bytes"},
      {flags.segment_bytes_option, "segment_bytes"},
      {flags.segment_age_option, "segment_age_ms"},
      {flags.indexes_option, "indexes_enabled"},
      {flags.index_headers_option, "indexed_headers"},
      {flags.dedup_window_option, "dedup_window_ms"},
      {flags.cleanup_option, "cleanup"},
      {flags.tombstone_retention_option, "tombstone_retention_ms"}};
  std::vector<std::string> fields;
  for (const auto& [option, field] : options) {
    if (option->count() > 0) fields.emplace_back(field);
  }
  return fields;
}

int stdout_failed() { return fail(Status(ErrorCode::io_error, "writing to stdout failed")); }

int run_create(const GlobalOptions& global, const StreamFlags& flags) {
  StreamConfig config;
  Status parsed = apply_stream_flags(flags, config);
  if (!parsed.is_ok()) return usage_error(parsed);
  // Configuration errors are the user's input too: check before touching the data directory.
  Status valid = validate_stream_config(config);
  if (!valid.is_ok()) return usage_error(valid);
  auto backend = open_backend(global, /*create_if_missing=*/true);
  if (!backend) return fail(backend.status());
  Status created = (*backend)->create_stream(config, given_fields(flags));
  if (!created.is_ok()) return fail(created);
  if (!print_line(stream_config_json(config), true)) return stdout_failed();
  return close_backend(**backend);
}

int run_update(const GlobalOptions& global, const StreamFlags& flags) {
  if (int status = check_stream_name(flags.name)) return status;
  auto backend = open_backend(global, /*create_if_missing=*/false);
  if (!backend) return fail(backend.status());
  StreamConfigFields reported;
  auto info = (*backend)->describe_stream(flags.name, &reported);
  if (!info) return fail(info.status());
  StreamConfig config = info->config;
  Status parsed = apply_stream_flags(flags, config);
  if (!parsed.is_ok()) return usage_error(parsed);
  Status valid = validate_stream_config(config);
  if (!valid.is_ok()) return usage_error(valid);
  const std::vector<std::string> changed = given_fields(flags);
  Status updated = (*backend)->update_stream(config, changed);
  if (!updated.is_ok()) return fail(updated);
  // A server reports only some fields; the ones just set are known too.
  if (reported) reported->insert(reported->end(), changed.begin(), changed.end());
  if (!print_line(stream_config_json(config, reported), true)) return stdout_failed();
  return close_backend(**backend);
}

int run_list(const GlobalOptions& global, bool plain) {
  auto backend = open_backend(global, /*create_if_missing=*/false);
  if (!backend) return fail(backend.status());
  StreamConfigFields fields;
  auto configs = (*backend)->list_streams(&fields);
  if (!configs) return fail(configs.status());
  for (const StreamConfig& config : *configs) {
    std::string line;
    if (plain) {
      std::string subjects;
      for (const std::string& pattern : config.subjects) subjects += (subjects.empty() ? "" : ",") + pattern;
      line = config.name + "\tsubjects=" + subjects + "\tpartitions=" + std::to_string(config.partitions) +
             "\tfsync=" + fsync_policy_to_string(config.fsync, config.fsync_interval_ms);
      if (auto info = (*backend)->describe_stream(config.name, nullptr)) {
        line += "\tmessages=" + std::to_string(info->messages) + "\tbytes=" + std::to_string(info->bytes);
      }
    } else {
      line = stream_config_json(config, fields);
    }
    if (!print_line(line)) return stdout_failed();
  }
  if (!flush_output()) return stdout_failed();
  return close_backend(**backend);
}

int run_info(const GlobalOptions& global, const std::string& name) {
  if (int status = check_stream_name(name)) return status;
  auto backend = open_backend(global, /*create_if_missing=*/false);
  if (!backend) return fail(backend.status());
  StreamConfigFields fields;
  auto info = (*backend)->describe_stream(name, &fields);
  if (!info) return fail(info.status());
  if (!print_line(stream_info_json(*info, fields), true)) return stdout_failed();
  return close_backend(**backend);
}

int run_delete(const GlobalOptions& global, const std::string& name) {
  if (int status = check_stream_name(name)) return status;
  auto backend = open_backend(global, /*create_if_missing=*/false);
  if (!backend) return fail(backend.status());
  Status deleted = (*backend)->delete_stream(name);
  if (!deleted.is_ok()) return fail(deleted);
  if (!print_line("{\"deleted\":" + json_string(name) + "}", true)) return stdout_failed();
  return close_backend(**backend);
}

}  // namespace

void add_stream_commands(CLI::App& app, const GlobalOptions& global, Commands& commands) {
  CLI::App* stream = app.add_subcommand("stream", "Create, change, list, describe and delete streams");
  stream->require_subcommand(1);

  auto create_flags = std::make_shared<StreamFlags>();
  CLI::App* create = stream->add_subcommand("create", "Create a stream; prints its configuration as JSON");
  add_stream_flags(create, *create_flags, /*subjects_required=*/true);
  commands.push_back({create, [&global, create_flags] { return run_create(global, *create_flags); }, true});

  auto update_flags = std::make_shared<StreamFlags>();
  CLI::App* update = stream->add_subcommand(
      "update", "Change a stream's subjects, retention, fsync policy and limits (partitions can only grow)");
  add_stream_flags(update, *update_flags, /*subjects_required=*/false);
  commands.push_back({update, [&global, update_flags] { return run_update(global, *update_flags); }, true});

  auto plain = std::make_shared<bool>(false);
  CLI::App* list = stream->add_subcommand("list", "List streams, one JSON object per line");
  list->add_flag("--plain", *plain, "Tab-separated text instead of JSON");
  commands.push_back({list, [&global, plain] { return run_list(global, *plain); }, true});

  auto info_name = std::make_shared<std::string>();
  CLI::App* info = stream->add_subcommand("info", "Describe a stream and its partitions as JSON");
  info->add_option("name", *info_name, "Stream name")->required();
  commands.push_back({info, [&global, info_name] { return run_info(global, *info_name); }, true});

  auto delete_name = std::make_shared<std::string>();
  CLI::App* remove = stream->add_subcommand("delete", "Delete a stream and all its messages");
  remove->add_option("name", *delete_name, "Stream name")->required();
  commands.push_back({remove, [&global, delete_name] { return run_delete(global, *delete_name); }, true});
}

}  // namespace msgstore::cli
