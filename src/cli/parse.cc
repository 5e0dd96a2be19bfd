#include "cli/parse.h"

#include <cctype>
#include <charconv>
#include <chrono>
#include <cstdio>

namespace msgstore::cli {
namespace {

Status invalid(std::string_view what, std::string_view text, std::string_view expected) {
  return Status(ErrorCode::invalid_argument,
                std::string(what) + ": '" + std::string(text) + "' is not " + std::string(expected));
}

bool equals_ignoring_case(std::string_view left, std::string_view right) {
  if (left.size() != right.size()) return false;
  for (std::size_t i = 0; i < left.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(left[i])) != std::tolower(static_cast<unsigned char>(right[i]))) return false;
  }
  return true;
}

// Splits "123abc" into the leading digits and the rest.
bool split_number(std::string_view text, std::uint64_t& number, std::string_view& unit) {
  std::size_t digits = 0;
  while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9') ++digits;
  if (digits == 0) return false;
  auto parsed = std::from_chars(text.data(), text.data() + digits, number);
  if (parsed.ec != std::errc()) return false;
  unit = text.substr(digits);
  return true;
}

bool multiply_checked(std::uint64_t value, std::uint64_t factor, std::uint64_t& out) {
  if (factor != 0 && value > UINT64_MAX / factor) return false;
  out = value * factor;
  return true;
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

Result<std::int64_t> parse_duration_ms(std::string_view text, std::string_view what) {
  constexpr std::string_view expected = "a duration like 500ms, 3600s, 15m, 2h, 7d, 1w or 0";
  std::uint64_t number = 0;
  std::string_view unit;
  if (!split_number(text, number, unit)) return invalid(what, text, expected);
  std::uint64_t factor = 0;
  if (unit.empty() && number == 0) factor = 1;
  else if (unit == "ms") factor = 1;
  else if (unit == "s") factor = 1000;
  else if (unit == "m") factor = 60'000;
  else if (unit == "h") factor = 3'600'000;
  else if (unit == "d") factor = 86'400'000;
  else if (unit == "w") factor = 7 * 86'400'000ull;
  else return invalid(what, text, expected);
  std::uint64_t milliseconds = 0;
  if (!multiply_checked(number, factor, milliseconds) || milliseconds > static_cast<std::uint64_t>(INT64_MAX)) {
    return invalid(what, text, "a duration that fits in 64-bit milliseconds");
  }
  return static_cast<std::int64_t>(milliseconds);
}

Result<std::uint64_t> parse_bytes(std::string_view text, std::string_view what) {
  constexpr std::string_view expected = "a size like 4096, 512B, 64KiB, 16MiB, 1GiB, 10KB, 1MB or 1GB";
  std::uint64_t number = 0;
  std::string_view unit;
  if (!split_number(text, number, unit)) return invalid(what, text, expected);
  struct Unit {
    std::string_view name;
    std::uint64_t factor;
  };
  static constexpr Unit units[] = {
      {"", 1},          {"b", 1},
      {"kib", 1ull << 10}, {"mib", 1ull << 20}, {"gib", 1ull << 30}, {"tib", 1ull << 40},
      {"kb", 1000},     {"mb", 1000'000},     {"gb", 1000'000'000},  {"tb", 1000'000'000'000},
  };
  for (const Unit& candidate : units) {
    if (!equals_ignoring_case(unit, candidate.name)) continue;
    std::uint64_t bytes = 0;
    if (!multiply_checked(number, candidate.factor, bytes)) return invalid(what, text, "a size that fits in 64 bits");
    return bytes;
  }
  return invalid(what, text, expected);
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

std::string format_time_iso(TimestampMs time_ms) {
  using namespace std::chrono;
  // Years 0001..9999 only: garbage timestamps (dump of a damaged file) must not overflow.
  constexpr TimestampMs earliest_ms = -62'135'596'800'000;
  constexpr TimestampMs latest_ms = 253'402'300'799'999;
  if (time_ms < earliest_ms || time_ms > latest_ms) return "(out of range)";
  const sys_time<milliseconds> point{milliseconds{time_ms}};
  const sys_days day_point = floor<days>(point);
  const year_month_day date{day_point};
  const std::int64_t in_day = (point - day_point).count();
  char text[64];
  std::snprintf(text, sizeof text, "%04d-%02u-%02uT%02d:%02d:%02d.%03dZ", static_cast<int>(date.year()),
                static_cast<unsigned>(date.month()), static_cast<unsigned>(date.day()),
                static_cast<int>(in_day / 3'600'000), static_cast<int>(in_day / 60'000 % 60),
                static_cast<int>(in_day / 1000 % 60), static_cast<int>(in_day % 1000));
  return text;
}

std::vector<std::string> split_list(std::string_view text, char separator) {
  std::vector<std::string> items;
  while (true) {
    const std::size_t at = text.find(separator);
    std::string_view item = text.substr(0, at);
    if (!item.empty()) items.emplace_back(item);
    if (at == std::string_view::npos) break;
    text.remove_prefix(at + 1);
  }
  return items;
}

Result<HeaderView> parse_header_assignment(std::string_view text, std::string_view what) {
  const std::size_t equals = text.find('=');
  if (equals == std::string_view::npos || equals == 0) {
    return Status(ErrorCode::invalid_argument, std::string(what) + ": '" + std::string(text) + "' is not name=value with a non-empty name");
  }
  return HeaderView{text.substr(0, equals), text.substr(equals + 1)};
}

}  // namespace msgstore::cli
