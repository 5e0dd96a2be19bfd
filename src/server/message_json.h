// server/message_json.h: the live endpoints' message JSON, written straight into an output
// buffer.
//
// Live replay encodes every message it sends, so this is the server's hottest encoder. Building
// a Boost.JSON object per message and serializing it cost about 13,000 instructions and a dozen
// allocations per 100 B message (docs/performance.md, "WebSocket replay"); this writer appends
// the same bytes with no allocation beyond the buffer's own growth.
//
// The output is byte for byte what json::serialize gives for the object the read API builds
// (message_to_json in json_codec.h) preceded by "stream" and "partition": same keys in the same
// order, same escaping (\" \\ \b \f \n \r \t, other control bytes as \u00xx, everything else
// as is), same text-or-base64 choice (text when the bytes are well-formed UTF-8), and for
// repeated header names the first name's position with the last value, as json::object's
// operator[] gives. message_json_test.cc checks this against Boost.JSON on random messages.
//
// Thread safety: plain functions.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "msgstore/message.h"

namespace msgstore::server {

// Appends {"stream","partition","offset","timestamp_ms","subject",["key"|"key_base64"],
// "headers",["headers_base64"],"payload"|"payload_base64"} to `out`.
void append_live_message_json(std::string& out, std::string_view stream, std::uint32_t partition,
                              const MessageView& message);

// Appends {"stream","partition","offset"[,"duplicate":true]}: the answer to a single publish,
// byte for byte what json::serialize gives for that object (message_json_test.cc).
void append_position_json(std::string& out, const Position& position);

}  // namespace msgstore::server
