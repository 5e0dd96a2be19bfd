// Client mode: the Backend over a `msgstore serve` reached with HTTP/1.1 (docs/http-api.md).
//
// One keep-alive connection (Boost.Beast, synchronous) carries every request of an invocation;
// `follow` opens a second one for Server-Sent Events. Server errors
// ({"error":{"code","message","details"}}) become the Status of the same catalogue code, so the
// commands report them exactly as they report the store's. Linked into the binary only (it
// needs Boost), like serve_command.cc.
#pragma once

#include <memory>

#include "cli/backend.h"
#include "cli/server_url.h"

namespace msgstore::cli {

// Connects now, so a server that is down is reported before any work (io_error).
Result<std::unique_ptr<Backend>> open_remote_backend(const ServerUrl& url);

}  // namespace msgstore::cli
