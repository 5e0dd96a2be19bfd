// Text encodings shared by every front end (CLI output, HTTP JSON): UTF-8 validation and
// standard base64 (RFC 4648, with padding).
//
// Thread safety: plain functions.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace msgstore {

// Length of the well-formed UTF-8 sequence starting at text[at] (1..4), or 0 if it is not
// well-formed (overlongs, surrogates, above U+10FFFF, truncated, stray continuation bytes).
std::size_t utf8_sequence_bytes(std::string_view text, std::size_t at);

// True if all of `text` is well-formed UTF-8.
bool is_valid_utf8(std::string_view text);

// `text` with every byte that does not start a well-formed UTF-8 sequence replaced by U+FFFD
// (EF BF BD): for text that must be valid UTF-8 (JSON strings) but may echo client bytes.
std::string to_valid_utf8(std::string_view text);

std::string base64_encode(std::string_view bytes);
// Appends base64_encode(bytes) to `out` (no temporary string: encoders on hot paths).
void base64_append(std::string& out, std::string_view bytes);

// Decodes standard base64, with or without padding. Whitespace, the URL-safe alphabet, stray
// characters and non-zero trailing bits are rejected (nullopt), so a malformed payload is an
// error rather than silently different bytes.
std::optional<std::string> base64_decode(std::string_view text);

}  // namespace msgstore
