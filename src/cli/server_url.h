// The --server URL of client mode: `http://HOST[:PORT][/]` only. HOST is a name, an IPv4
// address or a bracketed IPv6 address ([::1]); PORT defaults to 80. `https://` is refused until
// the client speaks TLS, and a path, query, user name or fragment is refused rather than
// ignored, so a URL never silently means something else.
//
// Thread safety: plain functions and values.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "msgstore/status.h"

namespace msgstore::cli {

struct ServerUrl {
  std::string host;  // without brackets for IPv6
  std::uint16_t port = 80;
  std::string text;  // as given, for messages
};

// invalid_argument naming what is wrong, for example "https is not supported yet".
Result<ServerUrl> parse_server_url(std::string_view text);

}  // namespace msgstore::cli
