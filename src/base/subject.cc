#include "base/subject.h"

#include <string>

#include "msgstore/limits.h"

namespace msgstore::base {
namespace {

bool token_character_allowed(char character) {
  // Whitespace and control characters would make subjects ambiguous in text protocols.
  return static_cast<unsigned char>(character) > 0x20 && character != 0x7F;
}

Status check_tokens(std::string_view text, bool is_pattern, const char* what) {
  if (text.empty()) return Status(ErrorCode::invalid_argument, std::string(what) + " is empty");
  if (text.size() > limits::subject_bytes_max) {
    return Status(ErrorCode::invalid_argument, std::string(what) + " is longer than " +
                                                   std::to_string(limits::subject_bytes_max) + " bytes");
  }
  std::size_t tokens = 0;
  std::size_t start = 0;
  while (true) {
    std::size_t dot = text.find('.', start);
    std::string_view token = text.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start);
    ++tokens;
    if (token.empty()) {
      return Status(ErrorCode::invalid_argument, std::string(what) + " '" + std::string(text) + "' has an empty token");
    }
    for (char character : token) {
      if (!token_character_allowed(character)) {
        return Status(ErrorCode::invalid_argument,
                      std::string(what) + " '" + std::string(text) + "' contains whitespace or a control character");
      }
    }
    bool wildcard_inside = token.size() > 1 && (token.find('*') != std::string_view::npos ||
                                                token.find('>') != std::string_view::npos);
    if (!is_pattern && (token == "*" || token == ">")) {
      return Status(ErrorCode::invalid_argument,
                    std::string(what) + " '" + std::string(text) + "' contains a wildcard; publish to a concrete subject");
    }
    if (is_pattern && wildcard_inside) {
      return Status(ErrorCode::invalid_argument, std::string(what) + " '" + std::string(text) +
                                                     "': '*' and '>' must be whole tokens");
    }
    if (is_pattern && token == ">" && dot != std::string_view::npos) {
      return Status(ErrorCode::invalid_argument,
                    std::string(what) + " '" + std::string(text) + "': '>' must be the last token");
    }
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  if (tokens > limits::subject_tokens_max) {
    return Status(ErrorCode::invalid_argument, std::string(what) + " has more than " +
                                                   std::to_string(limits::subject_tokens_max) + " tokens");
  }
  return Status::ok();
}

}  // namespace

Status validate_subject(std::string_view subject) { return check_tokens(subject, false, "subject"); }

Status validate_subject_pattern(std::string_view pattern) { return check_tokens(pattern, true, "subject pattern"); }

bool subject_matches(std::string_view pattern, std::string_view subject) {
  std::size_t pattern_position = 0;
  std::size_t subject_position = 0;
  while (true) {
    std::size_t pattern_dot = pattern.find('.', pattern_position);
    std::string_view pattern_token = pattern.substr(
        pattern_position, pattern_dot == std::string_view::npos ? std::string_view::npos : pattern_dot - pattern_position);
    // '>' takes one or more remaining tokens; a valid subject always has a token here.
    if (pattern_token == ">") return subject_position < subject.size();
    std::size_t subject_dot = subject.find('.', subject_position);
    std::string_view subject_token = subject.substr(
        subject_position, subject_dot == std::string_view::npos ? std::string_view::npos : subject_dot - subject_position);
    if (pattern_token != "*" && pattern_token != subject_token) return false;
    bool pattern_done = pattern_dot == std::string_view::npos;
    bool subject_done = subject_dot == std::string_view::npos;
    if (pattern_done || subject_done) return pattern_done && subject_done;
    pattern_position = pattern_dot + 1;
    subject_position = subject_dot + 1;
  }
}

}  // namespace msgstore::base
