// The pieces every CLI command shares: exit statuses, error reporting, opening the store, and
// the registration of subcommands.
//
// Each command file adds its CLI11 subcommand(s) and a `run` function; main parses the command
// line, then runs the one command that was chosen. Commands print results on stdout and
// errors on stderr as one line: "msgstore: <error_code_name>: <message>" (the names are the
// stable catalogue in include/msgstore/status.h).
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <CLI/CLI.hpp>

#include "msgstore/status.h"
#include "msgstore/store.h"

namespace msgstore::cli {

inline constexpr int exit_success = 0;
inline constexpr int exit_failure = 1;  // an operation failed, or verify/dump found damage
inline constexpr int exit_usage = 2;    // the command line was malformed

struct GlobalOptions {
  std::string data_directory = "./data";
  // Client mode: `--server URL` or $MSGSTORE_SERVER (checked by main: http://HOST:PORT).
  // Empty: the commands work on data_directory.
  std::string server_url;
};

// A parsed-for subcommand and what runs it. `run` returns the process exit status.
struct Command {
  CLI::App* app = nullptr;
  std::function<int()> run;
  // True for the commands that also work against `msgstore serve` (stream, publish, read,
  // tail, query); the others refuse an explicit --server.
  bool works_with_server = false;
};
using Commands = std::vector<Command>;

// Print "msgstore: <code>: <message>" on stderr; return exit_failure / exit_usage.
int fail(const Status& status);
int usage_error(const Status& status);
int usage_error(std::string_view message);
// Reports a stream name that validate_stream_name rejects as a usage error; returns 0 if valid.
int check_stream_name(std::string_view name);

// Writes `line` and a newline to stdout; with `flush` the line leaves the process now.
// Returns false if stdout failed (for example a closed pipe).
bool print_line(std::string_view line, bool flush = false);
bool flush_output();

// Closes the store; returns exit_success, or reports the close error and returns exit_failure.
int close_store(Store& store);

class Backend;
// The data commands' backend: the server named by global.server_url, else the store in the
// --data directory (create_if_missing as for open_store). Defined in main.cc, which links the
// HTTP client, so msgstore_cli stays free of Boost.
Result<std::unique_ptr<Backend>> open_backend(const GlobalOptions& global, bool create_if_missing);
// Closes the backend; returns exit_success, or reports the close error and returns exit_failure.
int close_backend(Backend& backend);

// Opens the store in the --data directory. Commands that only look (read, info, verify) pass
// create_if_missing = false so a mistyped --data is an error rather than a new empty store.
Result<std::unique_ptr<Store>> open_store(const GlobalOptions& global, bool create_if_missing);

void add_stream_commands(CLI::App& app, const GlobalOptions& global, Commands& commands);
void add_publish_command(CLI::App& app, const GlobalOptions& global, Commands& commands);
void add_read_commands(CLI::App& app, const GlobalOptions& global, Commands& commands);  // read, tail
void add_verify_command(CLI::App& app, const GlobalOptions& global, Commands& commands);
void add_dump_command(CLI::App& app, const GlobalOptions& global, Commands& commands);
void add_demo_command(CLI::App& app, const GlobalOptions& global, Commands& commands);
void add_compact_command(CLI::App& app, const GlobalOptions& global, Commands& commands);
void add_erase_command(CLI::App& app, const GlobalOptions& global, Commands& commands);
void add_serve_command(CLI::App& app, const GlobalOptions& global, Commands& commands);  // serve_command.cc
void add_query_command(CLI::App& app, const GlobalOptions& global, Commands& commands);

}  // namespace msgstore::cli
