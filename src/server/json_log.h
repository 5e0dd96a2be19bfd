// server/json_log.h: structured logs, one JSON object per line on stdout:
//   {"time":"2026-01-02T03:04:05.678Z","level":"info","message":"listening","address":"127.0.0.1:7480"}
// Tests read the "listening" line to learn the bound port (`--listen 127.0.0.1:0`).
//
// Thread safety: log() may be called from any thread; lines never interleave.
#pragma once

#include <string_view>

#include <boost/json/object.hpp>

namespace msgstore::server {

enum class LogLevel : unsigned char { debug, info, warning, error };

void log(LogLevel level, std::string_view message, boost::json::object fields = {});

}  // namespace msgstore::server
