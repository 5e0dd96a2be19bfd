// Minimal JSON output for the CLI: string escaping, UTF-8 checks, base64, and a one-line
// object builder. Output only; the CLI never parses JSON.
//
// Every string the CLI prints inside JSON goes through append_json_string, which escapes '"',
// '\\' and control characters and replaces bytes that are not valid UTF-8 with U+FFFD, so the
// output is always valid JSON. Where the bytes matter (payloads, keys, header values) the
// caller checks is_valid_utf8 first and prints base64 instead of a lossy string.
//
// Thread safety: plain functions and values.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "base/text_encoding.h"

namespace msgstore::cli {

// UTF-8 validation and base64 live in base/text_encoding.h (the HTTP server shares them).
using msgstore::base64_encode;
using msgstore::is_valid_utf8;

// Appends `text` as a quoted JSON string.
void append_json_string(std::string& out, std::string_view text);
std::string json_string(std::string_view text);


// Builds one JSON object: JsonObject().add("a", 1).add("b", "x").finish() == {"a":1,"b":"x"}.
class JsonObject {
 public:
  JsonObject() : text_("{") {}
  JsonObject& add(std::string_view name, std::string_view value);
  JsonObject& add(std::string_view name, const char* value) { return add(name, std::string_view(value)); }
  JsonObject& add(std::string_view name, const std::string& value) { return add(name, std::string_view(value)); }
  JsonObject& add(std::string_view name, std::uint64_t value);
  JsonObject& add(std::string_view name, std::int64_t value);
  JsonObject& add(std::string_view name, std::uint32_t value) { return add(name, std::uint64_t{value}); }
  JsonObject& add(std::string_view name, bool value);
  JsonObject& add_null(std::string_view name);
  // `json` must already be valid JSON (an object, array, number...).
  JsonObject& add_raw(std::string_view name, std::string_view json);
  // Closes the object and hands over its text; the builder is empty afterwards.
  std::string finish();

 private:
  void name(std::string_view name);
  std::string text_;
  bool empty_ = true;
};

}  // namespace msgstore::cli
