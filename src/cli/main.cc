// msgstore: the command-line tool over the embedded store. See src/cli/README.md.
//
// Exit statuses: 0 success, 1 an operation failed (or verify/dump found damage), 2 the command
// line was malformed. Errors are one line on stderr: "msgstore: <error_code_name>: <message>".
#include <cstdio>
#include <cstdlib>
#include <exception>

#include "cli/backend.h"
#include "cli/command.h"
#include "cli/remote_backend.h"
#include "cli/server_url.h"

namespace msgstore::cli {

int fail(const Status& status) {
  std::fflush(stdout);  // keep what was printed before the error in front of it
  std::fprintf(stderr, "msgstore: %s: %s\n", error_code_name(status.code()), status.message().c_str());
  return exit_failure;
}

int usage_error(const Status& status) {
  (void)fail(status);
  return exit_usage;
}

int usage_error(std::string_view message) { return usage_error(Status(ErrorCode::invalid_argument, std::string(message))); }

int check_stream_name(std::string_view name) {
  Status valid = validate_stream_name(name);
  return valid.is_ok() ? exit_success : usage_error(valid);
}

int close_store(Store& store) {
  Status closed = store.close();
  return closed.is_ok() ? exit_success : fail(closed);
}

bool print_line(std::string_view line, bool flush) {
  if (std::fwrite(line.data(), 1, line.size(), stdout) != line.size() || std::fputc('\n', stdout) == EOF) return false;
  return !flush || std::fflush(stdout) == 0;
}

bool flush_output() { return std::fflush(stdout) == 0 && !std::ferror(stdout); }

Result<std::unique_ptr<Store>> open_store(const GlobalOptions& global, bool create_if_missing) {
  StoreOptions options;
  options.create_if_missing = create_if_missing;
  auto store = Store::open(global.data_directory, options);
  if (!store) {
    return Status(store.status().code(), "cannot open data directory '" + global.data_directory + "': " + store.status().message());
  }
  return store;
}

Result<std::unique_ptr<Backend>> open_backend(const GlobalOptions& global, bool create_if_missing) {
  if (!global.server_url.empty()) {
    auto url = parse_server_url(global.server_url);  // main checked it already
    if (!url) return url.status();
    return open_remote_backend(*url);
  }
  auto store = open_store(global, create_if_missing);
  if (!store) return store.status();
  return make_local_backend(std::move(*store));
}

int close_backend(Backend& backend) {
  Status closed = backend.close();
  return closed.is_ok() ? exit_success : fail(closed);
}

namespace {

int run(int argc, char** argv) {
  CLI::App app("msgstore: a durable message store (like SQLite, for messages)", "msgstore");
  app.require_subcommand(1);
  // --data may be given before or after the subcommand.
  app.fallthrough();
  GlobalOptions global;
  if (const char* from_environment = std::getenv("MSGSTORE_DATA"); from_environment != nullptr && *from_environment != '\0') {
    global.data_directory = from_environment;
  }
  CLI::Option* data_option =
      app.add_option("--data", global.data_directory, "Data directory (default ./data, or $MSGSTORE_DATA)")->type_name("DIR");
  std::string server_flag;
  CLI::Option* server_option =
      app.add_option("--server", server_flag,
                     "Client mode: run stream, publish, read, tail and query against `msgstore serve` at this URL "
                     "(http://HOST:PORT; default $MSGSTORE_SERVER) instead of a data directory")
          ->type_name("URL");
  app.footer("Exit status: 0 success, 1 operation failed or damage found, 2 usage error.");

  Commands commands;
  add_stream_commands(app, global, commands);
  add_publish_command(app, global, commands);
  add_read_commands(app, global, commands);
  add_verify_command(app, global, commands);
  add_dump_command(app, global, commands);
  add_demo_command(app, global, commands);
  add_compact_command(app, global, commands);
  add_erase_command(app, global, commands);
  add_serve_command(app, global, commands);
  add_query_command(app, global, commands);

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& help) {
    return app.exit(help);
  } catch (const CLI::CallForAllHelp& help) {
    return app.exit(help);
  } catch (const CLI::ParseError& error) {
    return usage_error(std::string(error.what()) + " (run with --help for usage)");
  }
  if (global.data_directory.empty()) return usage_error("--data: the data directory must not be empty");
  const Command* chosen = nullptr;
  for (const Command& command : commands) {
    if (command.app->parsed()) chosen = &command;
  }
  if (chosen == nullptr) return usage_error("a subcommand is required (run with --help for usage)");
  // Client mode: an explicit --server, else $MSGSTORE_SERVER unless --data was given.
  const bool server_given = server_option->count() > 0;
  if (server_given && data_option->count() > 0) return usage_error("give --data or --server, not both");
  if (server_given) {
    global.server_url = server_flag;
  } else if (const char* from_environment = std::getenv("MSGSTORE_SERVER");
             from_environment != nullptr && *from_environment != '\0' && data_option->count() == 0) {
    global.server_url = from_environment;
  }
  if (!chosen->works_with_server) {
    if (server_given) {
      return usage_error("'" + chosen->app->get_name() +
                         "' works on a data directory only (the server has no HTTP endpoint for it): use --data, not --server");
    }
    global.server_url.clear();  // $MSGSTORE_SERVER is for the commands that can use it
  }
  if (!global.server_url.empty()) {
    auto url = parse_server_url(global.server_url);
    if (!url) return usage_error(url.status());
  }
  return chosen->run();
}

}  // namespace
}  // namespace msgstore::cli

int main(int argc, char** argv) {
  try {
    return msgstore::cli::run(argc, argv);
  } catch (const std::exception& error) {
    std::fprintf(stderr, "msgstore: internal_error: %s\n", error.what());
    return msgstore::cli::exit_failure;
  }
}
