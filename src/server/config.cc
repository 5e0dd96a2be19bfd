#include "server/config.h"

#include "msgstore/limits.h"

#include <toml++/toml.h>

#include <cctype>
#include <charconv>
#include <limits>

namespace msgstore::server {
namespace {

Status invalid(std::string_view name, std::string message) {
  return Status(ErrorCode::invalid_argument, "setting " + std::string(name) + ": " + message);
}

Result<std::uint64_t> parse_number(std::string_view name, std::string_view text, std::uint64_t max) {
  std::uint64_t value = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || error != std::errc() || end != text.data() + text.size()) {
    return invalid(name, "'" + std::string(text) + "' is not a non-negative integer");
  }
  if (value > max) return invalid(name, std::to_string(value) + " is above the maximum " + std::to_string(max));
  return value;
}

template <typename Integer>
Setting number_setting(std::string_view name, Integer ServerConfig::*member, std::string_view description) {
  return Setting{
      name, SettingKind::unsigned_integer, description,
      [name, member](ServerConfig& config, std::string_view text) -> Status {
        auto value = parse_number(name, text, std::numeric_limits<Integer>::max());
        if (!value) return value.status();
        config.*member = static_cast<Integer>(*value);
        return Status::ok();
      },
      [member](const ServerConfig& config) { return std::to_string(config.*member); }};
}

Setting text_setting(std::string_view name, std::string ServerConfig::*member, std::string_view description) {
  return Setting{name, SettingKind::text, description,
                 [member](ServerConfig& config, std::string_view text) -> Status {
                   config.*member = std::string(text);
                   return Status::ok();
                 },
                 [member](const ServerConfig& config) { return config.*member; }};
}

Setting boolean_setting(std::string_view name, bool ServerConfig::*member, std::string_view description) {
  return Setting{name, SettingKind::boolean, description,
                 [name, member](ServerConfig& config, std::string_view text) -> Status {
                   if (text == "true" || text == "1" || text == "yes") {
                     config.*member = true;
                   } else if (text == "false" || text == "0" || text == "no") {
                     config.*member = false;
                   } else {
                     return invalid(name, "'" + std::string(text) + "' is not true or false");
                   }
                   return Status::ok();
                 },
                 [member](const ServerConfig& config) { return std::string(config.*member ? "true" : "false"); }};
}

const Setting* find_setting(std::string_view name) {
  for (const Setting& setting : server_settings()) {
    if (setting.name == name) return &setting;
  }
  return nullptr;
}

Status apply_toml_table(ServerConfig& config, const toml::table& table, std::string_view source_name) {
  for (const auto& [key, node] : table) {
    const std::string_view name = key.str();
    if (name == "server" && node.is_table()) {
      MSGSTORE_RETURN_IF_ERROR(apply_toml_table(config, *node.as_table(), source_name));
      continue;
    }
    const Setting* setting = find_setting(name);
    if (setting == nullptr) {
      return Status(ErrorCode::invalid_argument,
                    std::string(source_name) + ": unknown setting '" + std::string(name) + "'");
    }
    std::string text;
    switch (setting->kind) {
      case SettingKind::text:
        if (!node.is_string()) return invalid(name, std::string(source_name) + ": expected a string");
        text = *node.value<std::string>();
        break;
      case SettingKind::unsigned_integer:
        if (!node.is_integer()) return invalid(name, std::string(source_name) + ": expected an integer");
        if (*node.value<std::int64_t>() < 0) return invalid(name, std::string(source_name) + ": must not be negative");
        text = std::to_string(*node.value<std::int64_t>());
        break;
      case SettingKind::boolean:
        if (!node.is_boolean()) return invalid(name, std::string(source_name) + ": expected true or false");
        text = *node.value<bool>() ? "true" : "false";
        break;
    }
    MSGSTORE_RETURN_IF_ERROR(setting->assign(config, text));
  }
  return Status::ok();
}

// "file:line:column: what" (toml++ reports where the syntax broke).
Status toml_error(std::string_view source_name, const toml::parse_error& error) {
  const auto& where = error.source().begin;
  return Status(ErrorCode::invalid_argument, std::string(source_name) + ":" + std::to_string(where.line) + ":" +
                                                 std::to_string(where.column) + ": " + std::string(error.description()));
}

}  // namespace

const std::vector<Setting>& server_settings() {
  static const std::vector<Setting> settings = {
      text_setting("data", &ServerConfig::data_directory,
                   "Data directory, created if missing (the global --data flag)."),
      text_setting("listen", &ServerConfig::listen,
                   "HTTP listen address host:port; port 0 picks a free port (the bound address is logged)."),
      number_setting("io_threads", &ServerConfig::io_threads, "Event-loop threads; 0 = half the cores (at least one), leaving the rest to the sync threads and the worker pool."),
      number_setting("worker_threads", &ServerConfig::worker_threads,
                     "Threads for blocking store calls (reads, queries, administration, large publishes); no thread waits in fdatasync for a publisher."),
      number_setting("worker_queue_max", &ServerConfig::worker_queue_max,
                     "Blocking store calls queued or running at once; beyond it requests get 503."),
      number_setting("sync_threads", &ServerConfig::sync_threads,
                     "Threads that run fdatasync for fsync=always publishes; partitions sync in parallel up to this count."),
      number_setting("index_threads", &ServerConfig::index_threads,
                     "Threads that index published messages (keys, subjects, headers) off the publishing thread; 0 = publishers index their own."),
      number_setting("preallocation_bytes", &ServerConfig::preallocation_bytes,
                     "Zeros written ahead of fsync=always data, so most fdatasyncs rewrite blocks the file has (no metadata commit); 0 = off."),
      number_setting("max_connections", &ServerConfig::max_connections,
                     "Open client connections; more are answered 503 and closed."),
      number_setting("request_body_bytes_max", &ServerConfig::request_body_bytes_max,
                     "Largest request body; larger gets 413."),
      number_setting("request_header_bytes_max", &ServerConfig::request_header_bytes_max,
                     "Largest request head (request line and all headers); larger gets 431."),
      number_setting("batch_messages_max", &ServerConfig::batch_messages_max,
                     "Messages in one batch publish; more gets 413."),
      number_setting("connection_in_flight_bytes_max", &ServerConfig::connection_in_flight_bytes_max,
                     "Bytes one connection may hold at once (request plus response); reads are capped to fit."),
      number_setting("header_read_timeout_ms", &ServerConfig::header_read_timeout_ms,
                     "Time from a request's first byte to the end of its headers (slowloris guard)."),
      number_setting("body_read_timeout_ms", &ServerConfig::body_read_timeout_ms, "Time to receive a request body."),
      number_setting("idle_timeout_ms", &ServerConfig::idle_timeout_ms,
                     "Keep-alive: how long an idle connection waits for its next request."),
      number_setting("write_timeout_ms", &ServerConfig::write_timeout_ms, "Time to send one response."),
      number_setting("long_poll_wait_ms_max", &ServerConfig::long_poll_wait_ms_max,
                     "Largest wait_ms a read may ask for; larger values are clamped."),
      number_setting("shutdown_timeout_ms", &ServerConfig::shutdown_timeout_ms,
                     "On SIGTERM/SIGINT, how long in-flight requests may take before they are cut."),
      number_setting("subscriber_queue_bytes_max", &ServerConfig::subscriber_queue_bytes_max,
                     "Live streams (SSE, WebSocket): bytes read for one subscriber and not yet written; its reader pauses there."),
      number_setting("live_heartbeat_interval_ms", &ServerConfig::live_heartbeat_interval_ms,
                     "Server-Sent Events: a heartbeat comment after this long without an event."),
      number_setting("websocket_idle_timeout_ms", &ServerConfig::websocket_idle_timeout_ms,
                     "WebSocket: ping after half of this without a frame from the client; close after all of it."),
      boolean_setting("log_requests", &ServerConfig::log_requests, "Write one JSON log line per request."),
  };
  return settings;
}

std::string setting_flag_name(std::string_view name) {
  std::string flag(name);
  for (char& character : flag) {
    if (character == '_') character = '-';
  }
  return flag;
}

std::string setting_environment_name(std::string_view name) {
  std::string variable = "MSGSTORE_";
  for (const char character : name) variable += static_cast<char>(std::toupper(static_cast<unsigned char>(character)));
  return variable;
}

Status apply_toml_text(ServerConfig& config, std::string_view toml_text, std::string_view source_name) {
  toml::table table;
  try {
    table = toml::parse(toml_text, source_name);
  } catch (const toml::parse_error& error) {
    return toml_error(source_name, error);
  }
  return apply_toml_table(config, table, source_name);
}

Status apply_toml_file(ServerConfig& config, const std::string& path) {
  toml::table table;
  try {
    table = toml::parse_file(path);
  } catch (const toml::parse_error& error) {
    return toml_error(path, error);
  }
  return apply_toml_table(config, table, path);
}

Status apply_environment(ServerConfig& config, const std::function<const char*(const char*)>& lookup) {
  for (const Setting& setting : server_settings()) {
    const std::string variable = setting_environment_name(setting.name);
    const char* value = lookup(variable.c_str());
    if (value == nullptr || *value == '\0') continue;
    Status applied = setting.assign(config, value);
    if (!applied) return Status(applied.code(), variable + ": " + applied.message());
  }
  return Status::ok();
}

Status validate_server_config(const ServerConfig& config) {
  if (config.data_directory.empty()) return invalid("data", "must not be empty");
  auto address = parse_listen_address(config.listen);
  if (!address) return address.status();
  const auto at_least_one = [](std::string_view name, std::uint64_t value) -> Status {
    if (value == 0) return invalid(name, "must be at least 1");
    return Status::ok();
  };
  MSGSTORE_RETURN_IF_ERROR(at_least_one("worker_threads", config.worker_threads));
  MSGSTORE_RETURN_IF_ERROR(at_least_one("sync_threads", config.sync_threads));
  if (config.preallocation_bytes > 64ull * 1024 * 1024) {
    return Status(ErrorCode::invalid_argument, "preallocation_bytes: at most 67108864 (64 MiB)");
  }
  MSGSTORE_RETURN_IF_ERROR(at_least_one("worker_queue_max", config.worker_queue_max));
  MSGSTORE_RETURN_IF_ERROR(at_least_one("max_connections", config.max_connections));
  MSGSTORE_RETURN_IF_ERROR(at_least_one("batch_messages_max", config.batch_messages_max));
  MSGSTORE_RETURN_IF_ERROR(at_least_one("header_read_timeout_ms", config.header_read_timeout_ms));
  MSGSTORE_RETURN_IF_ERROR(at_least_one("body_read_timeout_ms", config.body_read_timeout_ms));
  MSGSTORE_RETURN_IF_ERROR(at_least_one("idle_timeout_ms", config.idle_timeout_ms));
  MSGSTORE_RETURN_IF_ERROR(at_least_one("write_timeout_ms", config.write_timeout_ms));
  if (config.request_body_bytes_max < 1024) return invalid("request_body_bytes_max", "must be at least 1024");
  if (config.request_header_bytes_max < 1024) return invalid("request_header_bytes_max", "must be at least 1024");
  if (config.connection_in_flight_bytes_max < config.request_body_bytes_max) {
    return invalid("connection_in_flight_bytes_max", "must be at least request_body_bytes_max");
  }
  if (config.batch_messages_max > limits::messages_per_publish_max) {
    return invalid("batch_messages_max", "must be at most " + std::to_string(limits::messages_per_publish_max));
  }
  return Status::ok();
}

Result<ListenAddress> parse_listen_address(std::string_view text) {
  const auto bad = [&](std::string why) {
    return Status(ErrorCode::invalid_argument, "setting listen: '" + std::string(text) + "': " + why +
                                                   " (expected host:port, e.g. 127.0.0.1:7480 or [::1]:7480)");
  };
  ListenAddress address;
  std::string_view port_text;
  if (!text.empty() && text.front() == '[') {
    const std::size_t close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      return bad("unterminated IPv6 address");
    }
    address.host = std::string(text.substr(1, close - 1));
    port_text = text.substr(close + 2);
  } else {
    const std::size_t colon = text.rfind(':');
    if (colon == std::string_view::npos) return bad("no port");
    address.host = std::string(text.substr(0, colon));
    port_text = text.substr(colon + 1);
    if (address.host.find(':') != std::string::npos) return bad("IPv6 addresses need brackets");
  }
  if (address.host.empty()) return bad("no host");
  std::uint32_t port = 0;
  const auto [end, error] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (port_text.empty() || error != std::errc() || end != port_text.data() + port_text.size() || port > 65535) {
    return bad("the port must be 0..65535");
  }
  address.port = static_cast<std::uint16_t>(port);
  return address;
}

}  // namespace msgstore::server
