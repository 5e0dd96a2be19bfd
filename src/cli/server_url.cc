#include "cli/server_url.h"

#include <charconv>

namespace msgstore::cli {
namespace {

Status url_error(std::string_view text, std::string_view problem) {
  return Status(ErrorCode::invalid_argument, "--server '" + std::string(text) + "': " + std::string(problem));
}

bool starts_with_case_insensitive(std::string_view text, std::string_view prefix) {
  if (text.size() < prefix.size()) return false;
  for (std::size_t i = 0; i < prefix.size(); ++i) {
    const char character = text[i] >= 'A' && text[i] <= 'Z' ? static_cast<char>(text[i] - 'A' + 'a') : text[i];
    if (character != prefix[i]) return false;
  }
  return true;
}

}  // namespace

Result<ServerUrl> parse_server_url(std::string_view text) {
  constexpr std::string_view http_scheme = "http://";
  if (starts_with_case_insensitive(text, "https://")) {
    return url_error(text, "https is not supported yet (TLS comes later); use http://HOST:PORT");
  }
  if (!starts_with_case_insensitive(text, http_scheme)) return url_error(text, "expected http://HOST:PORT");
  std::string_view rest = text.substr(http_scheme.size());
  if (!rest.empty() && rest.back() == '/') rest.remove_suffix(1);
  if (rest.find_first_of("/?#") != std::string_view::npos) {
    return url_error(text, "a path, query or fragment is not supported; expected http://HOST:PORT");
  }
  if (rest.find('@') != std::string_view::npos) return url_error(text, "a user name is not supported");
  ServerUrl url;
  url.text = std::string(text);
  std::string_view port_text;
  if (!rest.empty() && rest.front() == '[') {
    const std::size_t close = rest.find(']');
    if (close == std::string_view::npos) return url_error(text, "an IPv6 address needs a closing ']'");
    url.host = std::string(rest.substr(1, close - 1));
    const std::string_view after = rest.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return url_error(text, "expected ':PORT' after the IPv6 address");
      port_text = after.substr(1);
      if (port_text.empty()) return url_error(text, "the port is empty");
    }
  } else {
    const std::size_t colon = rest.find(':');
    url.host = std::string(rest.substr(0, colon));
    if (colon != std::string_view::npos) {
      port_text = rest.substr(colon + 1);
      if (port_text.empty()) return url_error(text, "the port is empty");
    }
  }
  if (url.host.empty()) return url_error(text, "the host is empty");
  if (!port_text.empty()) {
    unsigned port = 0;
    const auto [end, error] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
    if (error != std::errc() || end != port_text.data() + port_text.size() || port == 0 || port > 65535) {
      return url_error(text, "the port must be a number from 1 to 65535");
    }
    url.port = static_cast<std::uint16_t>(port);
  }
  return url;
}

}  // namespace msgstore::cli
