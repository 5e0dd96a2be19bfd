#include "base/text_parse.h"

#include <charconv>
#include <chrono>

namespace msgstore {
namespace {

Status invalid(std::string_view what, std::string_view text, std::string_view expected) {
  return Status(ErrorCode::invalid_argument,
                std::string(what) + ": '" + std::string(text) + "' is not " + std::string(expected));
}

// Reads exactly `count` digits at text[at].
bool fixed_digits(std::string_view text, std::size_t at, std::size_t count, int& value) {
  if (at + count > text.size()) return false;
  value = 0;
  for (std::size_t i = at; i < at + count; ++i) {
    if (text[i] < '0' || text[i] > '9') return false;
    value = value * 10 + (text[i] - '0');
  }
  return true;
}

}  // namespace

Result<std::uint64_t> parse_unsigned(std::string_view text, std::string_view what, std::uint64_t max) {
  std::uint64_t value = 0;
  auto parsed = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || parsed.ec != std::errc() || parsed.ptr != text.data() + text.size() || value > max) {
    return invalid(what, text, "an integer from 0 to " + std::to_string(max));
  }
  return value;
}

Result<TimestampMs> parse_time_ms(std::string_view text, std::string_view what) {
  constexpr std::string_view expected =
      "milliseconds since the epoch or an ISO 8601 time like 2024-05-01T12:30:00Z or 2024-05-01T12:30:00.250+02:00";
  if (!text.empty() && text.find_first_not_of("0123456789") == std::string_view::npos) {
    auto value = parse_unsigned(text, what, static_cast<std::uint64_t>(INT64_MAX));
    if (!value) return value.status();
    return static_cast<TimestampMs>(*value);
  }
  int year = 0, month = 0, day = 0, hour = 0, minute = 0, second = 0;
  if (!fixed_digits(text, 0, 4, year) || text.size() < 10 || text[4] != '-' || !fixed_digits(text, 5, 2, month) ||
      text[7] != '-' || !fixed_digits(text, 8, 2, day)) {
    return invalid(what, text, expected);
  }
  std::size_t at = 10;
  std::int64_t millisecond = 0;
  std::int64_t zone_offset_minutes = 0;
  if (at < text.size()) {
    if ((text[at] != 'T' && text[at] != 't' && text[at] != ' ') || !fixed_digits(text, at + 1, 2, hour) ||
        at + 3 >= text.size() || text[at + 3] != ':' || !fixed_digits(text, at + 4, 2, minute)) {
      return invalid(what, text, expected);
    }
    at += 6;
    if (at < text.size() && text[at] == ':') {
      if (!fixed_digits(text, at + 1, 2, second)) return invalid(what, text, expected);
      at += 3;
      if (at < text.size() && (text[at] == '.' || text[at] == ',')) {
        ++at;
        std::size_t digits = 0;
        std::int64_t scale = 100;
        while (at < text.size() && text[at] >= '0' && text[at] <= '9') {
          millisecond += (text[at] - '0') * scale;  // digits past milliseconds are truncated
          scale /= 10;
          ++at;
          ++digits;
        }
        if (digits == 0) return invalid(what, text, expected);
      }
    }
    if (at < text.size()) {
      const char zone = text[at];
      if ((zone == 'Z' || zone == 'z') && at + 1 == text.size()) {
        at += 1;
      } else if (zone == '+' || zone == '-') {
        int zone_hours = 0, zone_minutes = 0;
        if (!fixed_digits(text, at + 1, 2, zone_hours)) return invalid(what, text, expected);
        std::size_t minutes_at = at + 3;
        if (minutes_at < text.size() && text[minutes_at] == ':') ++minutes_at;
        if (!fixed_digits(text, minutes_at, 2, zone_minutes) || minutes_at + 2 != text.size() || zone_hours > 23 ||
            zone_minutes > 59) {
          return invalid(what, text, expected);
        }
        zone_offset_minutes = (zone == '+' ? 1 : -1) * (zone_hours * 60 + zone_minutes);
        at = text.size();
      } else {
        return invalid(what, text, expected);
      }
    }
  }
  using namespace std::chrono;
  const year_month_day date{std::chrono::year{year}, std::chrono::month{static_cast<unsigned>(month)},
                            std::chrono::day{static_cast<unsigned>(day)}};
  if (!date.ok() || hour > 23 || minute > 59 || second > 60) return invalid(what, text, "a valid calendar date and time");
  const std::int64_t days = sys_days(date).time_since_epoch().count();
  const std::int64_t result =
      ((days * 24 + hour) * 60 + minute - zone_offset_minutes) * 60'000 + std::int64_t{second} * 1000 + millisecond;
  if (result < 0) return invalid(what, text, "a time at or after 1970-01-01T00:00:00Z");
  return result;
}

}  // namespace msgstore
