// serve: runs the HTTP server (src/server) on the data directory, in the foreground.
//
// Settings come from defaults, then the TOML file (--config / MSGSTORE_CONFIG), then
// MSGSTORE_<SETTING> environment variables, then flags; the global --data wins over all for
// the data directory. The setting table in server/config.h generates the flags and --help.
//
// Exit statuses: 0 after a clean shutdown (SIGTERM/SIGINT), 1 a startup or shutdown failure,
// 2 a usage or configuration error, 3 the data directory is in use by another process.
#include <cstdlib>

#include "cli/command.h"
#include "server/config.h"
#include "server/json_log.h"
#include "server/server.h"

namespace msgstore::cli {
namespace {

inline constexpr int exit_data_directory_in_use = 3;

struct ServeFlags {
  std::string config_file;
  std::map<std::string, std::string> values;  // setting name -> flag text
  std::map<std::string, CLI::Option*> options;
};

int run_serve(CLI::App& root, const GlobalOptions& global, const ServeFlags& flags) {
  server::ServerConfig config;
  std::string config_file = flags.config_file;
  if (config_file.empty()) {
    if (const char* from_environment = std::getenv("MSGSTORE_CONFIG"); from_environment != nullptr) {
      config_file = from_environment;
    }
  }
  if (!config_file.empty()) {
    Status loaded = server::apply_toml_file(config, config_file);
    if (!loaded) return usage_error(loaded);
  }
  Status from_environment = server::apply_environment(config, [](const char* name) { return std::getenv(name); });
  if (!from_environment) return usage_error(from_environment);
  for (const server::Setting& setting : server::server_settings()) {
    const auto option = flags.options.find(std::string(setting.name));
    if (option == flags.options.end() || option->second->count() == 0) continue;
    Status applied = setting.assign(config, flags.values.at(std::string(setting.name)));
    if (!applied) return usage_error(Status(applied.code(), "--" + server::setting_flag_name(setting.name) + ": " + applied.message()));
  }
  if (root.get_option("--data")->count() > 0) config.data_directory = global.data_directory;
  Status valid = server::validate_server_config(config);
  if (!valid) return usage_error(valid);

  StoreOptions store_options;
  store_options.create_if_missing = true;
  store_options.sync_threads = config.sync_threads;
  store_options.index_threads = config.index_threads;
  store_options.preallocation_bytes = config.preallocation_bytes;
  auto store = Store::open(config.data_directory, store_options);
  if (!store) {
    if (store.status().code() == ErrorCode::store_locked) {
      (void)fail(Status(ErrorCode::store_locked, "data directory '" + config.data_directory +
                                                     "' is in use by another msgstore process (is a server already "
                                                     "running on it?): " + store.status().message()));
      return exit_data_directory_in_use;
    }
    return fail(Status(store.status().code(), "cannot open data directory '" + config.data_directory + "': " +
                                                  store.status().message()));
  }
  int exit_status = exit_success;
  {
    server::Server server(config, **store);
    Status started = server.start();
    if (!started) {
      exit_status = fail(started);
    } else {
      server.run();
    }
  }
  Status closed = (*store)->close();
  if (!closed) return fail(closed);
  if (exit_status == exit_success) server::log(server::LogLevel::info, "store closed", {{"data_directory", config.data_directory}});
  return exit_status;
}

}  // namespace

void add_serve_command(CLI::App& app, const GlobalOptions& global, Commands& commands) {
  CLI::App* serve = app.add_subcommand("serve", "Run the HTTP server on the data directory (foreground)");
  auto flags = std::make_shared<ServeFlags>();
  serve->add_option("--config", flags->config_file, "TOML configuration file (or $MSGSTORE_CONFIG)")->type_name("FILE");
  const server::ServerConfig defaults;
  for (const server::Setting& setting : server::server_settings()) {
    if (setting.name == "data") continue;  // the global --data flag
    const std::string name(setting.name);
    std::string description(setting.description);
    description += " [env " + server::setting_environment_name(setting.name) + ", default " + setting.show(defaults) + "]";
    CLI::Option* option = serve->add_option("--" + server::setting_flag_name(setting.name), flags->values[name], description);
    option->type_name(setting.kind == server::SettingKind::boolean ? "BOOL"
                      : setting.kind == server::SettingKind::unsigned_integer ? "N"
                                                                              : "TEXT");
    flags->options[name] = option;
  }
  serve->footer(
      "Settings: defaults < TOML file (top-level keys or a [server] table, names as the flags with '_') < "
      "environment MSGSTORE_<NAME> < flags. The data directory: --data, MSGSTORE_DATA or 'data' in the file "
      "(default ./data).\nLogs: one JSON object per line on stdout; the \"listening\" line carries the bound "
      "address.\nExit status: 0 clean shutdown on SIGTERM/SIGINT, 1 failure, 2 usage or configuration error, "
      "3 data directory in use by another process.");
  commands.push_back({serve, [&app, &global, flags] { return run_serve(app, global, *flags); }});
}

}  // namespace msgstore::cli
