#include "server/http.h"

#include <cctype>
#include <charconv>

#include <boost/beast/http/field.hpp>
#include <boost/json/serialize.hpp>

#include "base/text_encoding.h"
#include "msgstore/message.h"

namespace msgstore::server {

const std::string& RequestContext::parameter(std::string_view name) const {
  static const std::string empty;
  const auto found = path_parameters.find(name);
  return found == path_parameters.end() ? empty : found->second;
}

std::optional<std::string_view> RequestContext::query_value(std::string_view name) const {
  const auto found = query.find(name);
  if (found == query.end()) return std::nullopt;
  return std::string_view(found->second);
}

http::status http_status_for(ErrorCode code) {
  switch (code) {
    case ErrorCode::ok: return http::status::ok;
    case ErrorCode::invalid_argument:
    case ErrorCode::invalid_name:
    case ErrorCode::offset_out_of_range: return http::status::bad_request;
    case ErrorCode::stream_not_found:
    case ErrorCode::partition_not_found:
    case ErrorCode::no_matching_stream:
    case ErrorCode::not_found:
    case ErrorCode::consumer_not_found: return http::status::not_found;
    case ErrorCode::stream_exists:
    case ErrorCode::consumer_exists:
    case ErrorCode::stale_delivery: return http::status::conflict;
    case ErrorCode::expected_offset_mismatch: return http::status::precondition_failed;
    case ErrorCode::message_too_large: return http::status::payload_too_large;
    case ErrorCode::limit_exceeded: return http::status::too_many_requests;
    case ErrorCode::no_space: return http::status::insufficient_storage;
    case ErrorCode::store_locked:
    case ErrorCode::closed:
    case ErrorCode::log_failed:
    case ErrorCode::timed_out: return http::status::service_unavailable;
    case ErrorCode::method_not_allowed: return http::status::method_not_allowed;
    case ErrorCode::unsupported_media_type: return http::status::unsupported_media_type;
    case ErrorCode::corruption:
    case ErrorCode::io_error:
    case ErrorCode::unsupported_format:
    case ErrorCode::internal_error: return http::status::internal_server_error;
  }
  return http::status::internal_server_error;
}

HttpResponse text_response(const RequestContext& context, http::status status, std::string body,
                           std::string_view content_type) {
  HttpResponse response;
  response.message.result(status);
  response.message.version(context.request.version());
  response.message.set(http::field::content_type, content_type);
  response.message.keep_alive(context.request.keep_alive());
  response.message.body() = std::move(body);
  response.message.prepare_payload();
  return response;
}

HttpResponse json_response(const RequestContext& context, http::status status, const json::value& body) {
  // A trailing newline keeps curl output readable in a terminal; JSON parsers ignore it.
  return text_response(context, status, json::serialize(body) + "\n", "application/json");
}

namespace {

// Error messages and details echo client bytes (paths, subjects, header values) that need not
// be UTF-8; JSON text must be, so every string (and key) is made valid before serializing.
json::value valid_utf8_json(const json::value& value) {
  if (value.is_string()) return json::value(to_valid_utf8(value.get_string()));
  if (value.is_array()) {
    json::array array;
    for (const json::value& item : value.get_array()) array.push_back(valid_utf8_json(item));
    return array;
  }
  if (value.is_object()) {
    json::object object;
    for (const auto& field : value.get_object()) object[to_valid_utf8(field.key())] = valid_utf8_json(field.value());
    return object;
  }
  return value;
}

}  // namespace

std::string error_body(const Status& error, const json::object& details) {
  json::object inner;
  inner["code"] = error_code_name(error.code());
  inner["message"] = to_valid_utf8(error.message());
  inner["details"] = valid_utf8_json(details);
  json::object outer;
  outer["error"] = std::move(inner);
  return json::serialize(outer) + "\n";
}

HttpResponse error_response(const RequestContext& context, const Status& error, json::object details,
                            std::optional<http::status> status) {
  const http::status chosen = status.value_or(http_status_for(error.code()));
  // A failed precondition says what the offset actually is ("empty": nothing yet).
  if (error.actual_offset() && !details.contains("actual_offset")) {
    if (*error.actual_offset() == msgstore::expected_offset_empty) details["actual_offset"] = "empty";
    else details["actual_offset"] = *error.actual_offset();
  }
  HttpResponse response = text_response(context, chosen, error_body(error, details), "application/json");
  // Overload and shutdown are temporary: tell clients when to come back.
  if (chosen == http::status::too_many_requests || chosen == http::status::service_unavailable) {
    response.message.set(http::field::retry_after, "1");
  }
  return response;
}

Result<std::uint64_t> query_unsigned(const RequestContext& context, std::string_view name, std::uint64_t default_value,
                                     std::uint64_t max) {
  const auto text = context.query_value(name);
  if (!text) return default_value;
  std::uint64_t value = 0;
  const auto [end, error] = std::from_chars(text->data(), text->data() + text->size(), value);
  if (text->empty() || error != std::errc() || end != text->data() + text->size()) {
    return Status(ErrorCode::invalid_argument,
                  "query parameter " + std::string(name) + ": '" + std::string(*text) + "' is not a non-negative integer");
  }
  if (value > max) {
    return Status(ErrorCode::invalid_argument,
                  "query parameter " + std::string(name) + ": " + std::to_string(value) + " is above " + std::to_string(max));
  }
  return value;
}

Result<std::int64_t> query_signed(const RequestContext& context, std::string_view name, std::int64_t default_value) {
  const auto text = context.query_value(name);
  if (!text) return default_value;
  std::int64_t value = 0;
  const auto [end, error] = std::from_chars(text->data(), text->data() + text->size(), value);
  if (text->empty() || error != std::errc() || end != text->data() + text->size()) {
    return Status(ErrorCode::invalid_argument,
                  "query parameter " + std::string(name) + ": '" + std::string(*text) + "' is not an integer");
  }
  return value;
}

std::optional<std::vector<std::pair<std::string, std::string>>> query_pairs(std::string_view target) {
  const std::size_t question = target.find('?');
  std::string_view query = question == std::string_view::npos ? std::string_view() : target.substr(question + 1);
  std::vector<std::pair<std::string, std::string>> pairs;
  while (!query.empty()) {
    const std::size_t ampersand = query.find('&');
    const std::string_view pair = query.substr(0, ampersand);
    query = ampersand == std::string_view::npos ? std::string_view() : query.substr(ampersand + 1);
    if (pair.empty()) continue;
    const std::size_t equals = pair.find('=');
    auto name = percent_decode(pair.substr(0, equals), true);
    auto value = percent_decode(equals == std::string_view::npos ? std::string_view() : pair.substr(equals + 1), true);
    if (!name || !value) return std::nullopt;
    pairs.emplace_back(std::move(*name), std::move(*value));
  }
  return pairs;
}

std::optional<std::string> percent_decode(std::string_view text, bool plus_is_space) {
  const auto hex = [](char character) -> int {
    if (character >= '0' && character <= '9') return character - '0';
    if (character >= 'a' && character <= 'f') return character - 'a' + 10;
    if (character >= 'A' && character <= 'F') return character - 'A' + 10;
    return -1;
  };
  std::string out;
  out.reserve(text.size());
  for (std::size_t at = 0; at < text.size(); ++at) {
    const char character = text[at];
    if (character == '%') {
      if (at + 2 >= text.size()) return std::nullopt;
      const int high = hex(text[at + 1]);
      const int low = hex(text[at + 2]);
      if (high < 0 || low < 0) return std::nullopt;
      out += static_cast<char>(high * 16 + low);
      at += 2;
    } else if (character == '+' && plus_is_space) {
      out += ' ';
    } else {
      out += character;
    }
  }
  return out;
}

bool content_type_is(const HttpRequest& request, std::string_view media_type) {
  const auto found = request.find(http::field::content_type);
  if (found == request.end()) return false;
  std::string_view value = found->value();
  value = value.substr(0, value.find(';'));
  while (!value.empty() && value.back() == ' ') value.remove_suffix(1);
  while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
  if (value.size() != media_type.size()) return false;
  for (std::size_t i = 0; i < value.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(value[i])) != std::tolower(static_cast<unsigned char>(media_type[i]))) {
      return false;
    }
  }
  return true;
}

std::string serialize_response(const http::response<http::string_body>& message) {
  const std::string_view reason = message.reason();
  std::size_t size = 32 + reason.size() + message.body().size();
  for (const auto& field : message) size += field.name_string().size() + field.value().size() + 4;
  std::string text;
  text.reserve(size);
  text += message.version() == 10 ? "HTTP/1.0 " : "HTTP/1.1 ";
  text += std::to_string(message.result_int());
  text += ' ';
  text += reason;
  text += "\r\n";
  for (const auto& field : message) {
    text += field.name_string();
    text += ": ";
    text += field.value();
    text += "\r\n";
  }
  text += "\r\n";
  text += message.body();
  return text;
}

}  // namespace msgstore::server
