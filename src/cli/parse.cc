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

}  // namespace

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
