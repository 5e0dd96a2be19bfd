// The server's configuration: every setting, its default, and where it may come from.
//
// Precedence (highest first): command-line flag, environment variable MSGSTORE_<SETTING>
// (upper case), the TOML file given by --config / MSGSTORE_CONFIG, the default below. One table
// (server_settings()) describes every setting once; the TOML loader, the environment reader,
// the flags and `msgstore serve --help` are all generated from it, so they cannot disagree.
//
// Thread safety: a ServerConfig is a plain value, filled in before the server starts and
// read-only afterwards.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "msgstore/status.h"

namespace msgstore::server {

struct ServerConfig {
  std::string data_directory = "./data";
  std::string listen = "127.0.0.1:7480";  // host:port; port 0 = any free port (logged)
  std::uint32_t io_threads = 0;           // event loops; 0 = half the cores, at least one
  // Threads that run blocking Store calls (publish waits for fdatasync). Concurrent publishers
  // in one fsync window share a single fdatasync (group commit), so this is sized for the
  // number of publishers expected to wait at once, not for the number of cores.
  std::uint32_t worker_threads = 64;
  std::uint32_t worker_queue_max = 4096;  // blocking calls queued or running; more -> 503
  // The store's fdatasync threads (StoreOptions::sync_threads) and the zeros written ahead of
  // fsync=always data (StoreOptions::preallocation_bytes; 0 = off).
  std::uint32_t sync_threads = 4;
  std::uint64_t preallocation_bytes = 1024 * 1024;
  std::uint32_t index_threads = 1;  // StoreOptions::index_threads

  std::uint32_t max_connections = 1024;
  std::uint64_t request_body_bytes_max = 16 * 1024 * 1024;
  std::uint32_t request_header_bytes_max = 256 * 1024;  // all headers of one request
  std::uint32_t batch_messages_max = 10000;
  // Bytes one connection may hold at once: its request being handled plus the response being
  // built. Reads are capped so that their response fits.
  std::uint64_t connection_in_flight_bytes_max = 32 * 1024 * 1024;
  std::uint32_t header_read_timeout_ms = 10000;  // from a request's first byte to its last header
  std::uint32_t body_read_timeout_ms = 30000;    // to receive a request body
  std::uint32_t idle_timeout_ms = 60000;         // keep-alive: waiting for the next request
  std::uint32_t write_timeout_ms = 30000;        // to send one response
  std::uint32_t long_poll_wait_ms_max = 300000;
  std::uint32_t shutdown_timeout_ms = 10000;     // in-flight requests get this long on SIGTERM
  // Live streams (SSE, WebSocket): bytes one subscriber may have read from the log and not yet
  // written to its socket (the outbound queue); its follower pauses at this bound.
  std::uint64_t subscriber_queue_bytes_max = 1024 * 1024;
  std::uint32_t live_heartbeat_interval_ms = 15000;  // SSE comment line when no event was sent
  std::uint32_t websocket_idle_timeout_ms = 60000;   // ping after half of it; close after all of it
  bool log_requests = false;                     // one JSON log line per request
};

enum class SettingKind : std::uint8_t { text, unsigned_integer, boolean };

struct Setting {
  std::string_view name;         // TOML key; flag --name-with-dashes; env MSGSTORE_NAME
  SettingKind kind;
  std::string_view description;  // for --help and the docs
  // Parses `text` (flags, environment) into the config; the error names the setting.
  std::function<Status(ServerConfig&, std::string_view text)> assign;
  std::function<std::string(const ServerConfig&)> show;  // the current value as text
};

// Every setting, in --help order.
const std::vector<Setting>& server_settings();

std::string setting_flag_name(std::string_view name);         // "request_body_bytes_max" -> "request-body-bytes-max"
std::string setting_environment_name(std::string_view name);  // -> "MSGSTORE_REQUEST_BODY_BYTES_MAX"

// Applies a TOML document (top level keys, or a [server] table) to `config`. Unknown keys are
// an error (a typo must not silently leave a default in place).
Status apply_toml_text(ServerConfig& config, std::string_view toml_text, std::string_view source_name);
Status apply_toml_file(ServerConfig& config, const std::string& path);

// Applies every MSGSTORE_<SETTING> variable that `lookup` finds (lookup returns nullptr when
// unset; tests pass their own).
Status apply_environment(ServerConfig& config, const std::function<const char*(const char*)>& lookup);

// Checks ranges and the listen address once everything is applied.
Status validate_server_config(const ServerConfig& config);

struct ListenAddress {
  std::string host;
  std::uint16_t port = 0;
};
// "127.0.0.1:7480", "[::1]:7480", "0.0.0.0:0", "localhost:80".
Result<ListenAddress> parse_listen_address(std::string_view text);

}  // namespace msgstore::server
