// What the end-to-end fault tests (strace_fault_test, real_enospc_test) share: messages that
// name themselves, a ledger of what was sent and acked, and a check of the store as
// `msgstore read` prints it after a restart.
//
// Message `id` has the payload "m-<id>-<padding>", where the padding's length and bytes depend
// only on the id, so a stored payload says which message it is and whether it is intact.
// The ledger checks, for the stored messages of one stream:
//   - every acked message is stored, at exactly its acked partition and offset, byte for byte
//     (0 acked lost, 0 inconsistent offsets);
//   - every stored message is one that was sent (0 unexpected), none is stored twice
//     (0 duplicated), and offsets are dense from 0 in every partition (0 holes).
// Sent-but-unacked messages may or may not be stored: an error after the write and before
// the ack is allowed to leave them. A message refused with no_space must not be stored.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "e2e/json_fields.h"
#include "e2e/process.h"

namespace msgstore::e2e {

// The payload of message `id` (at least `minimum_bytes` long, plus up to `spread_bytes`).
inline std::string ledger_payload(std::uint64_t id, std::size_t minimum_bytes = 0, std::size_t spread_bytes = 300) {
  std::string payload = "m-" + std::to_string(id) + "-";
  std::mt19937_64 padding(id * 0x9E3779B97F4A7C15ull + 1);
  const std::size_t length = minimum_bytes + (spread_bytes == 0 ? 0 : padding() % spread_bytes);
  for (std::size_t i = 0; i < length; ++i) payload += static_cast<char>('a' + padding() % 26);
  return payload;
}

// The id a payload names, if it looks like one of ours.
inline std::optional<std::uint64_t> ledger_id_of(const std::string& payload) {
  if (payload.rfind("m-", 0) != 0) return std::nullopt;
  const std::size_t dash = payload.find('-', 2);
  if (dash == std::string::npos || dash == 2 || dash > 22) return std::nullopt;
  std::uint64_t id = 0;
  for (std::size_t i = 2; i < dash; ++i) {
    if (payload[i] < '0' || payload[i] > '9') return std::nullopt;
    id = id * 10 + static_cast<std::uint64_t>(payload[i] - '0');
  }
  return id;
}

struct LedgerPlace {
  std::uint32_t partition = 0;
  std::uint64_t offset = 0;
  auto operator<=>(const LedgerPlace&) const = default;
};

inline std::string place_text(const LedgerPlace& place) {
  return "partition " + std::to_string(place.partition) + " offset " + std::to_string(place.offset);
}

class AckLedger {
 public:
  AckLedger(std::string stream, std::size_t minimum_bytes = 0, std::size_t spread_bytes = 300)
      : stream_(std::move(stream)), minimum_bytes_(minimum_bytes), spread_bytes_(spread_bytes) {}

  // Input for one `msgstore publish` child: `count` new messages, one per line. `sent_order`
  // maps the child's input index to message ids.
  std::string make_input(std::uint64_t count, std::vector<std::uint64_t>& sent_order) {
    std::string lines;
    for (std::uint64_t i = 0; i < count; ++i) {
      const std::uint64_t id = next_id_++;
      lines += payload(id) + "\n";
      sent_order.push_back(id);
    }
    return lines;
  }

  std::string payload(std::uint64_t id) const { return ledger_payload(id, minimum_bytes_, spread_bytes_); }

  // Records one ack line of a child whose input was `sent_order`; returns a problem or "".
  std::string record_ack(const std::string& line, const std::vector<std::uint64_t>& sent_order) {
    const auto index = json_number(line, "index");
    const auto partition = json_number(line, "partition");
    const auto offset = json_number(line, "offset");
    if (!index || !partition || !offset || json_text(line, "stream") != stream_) return "bad ack line: " + line;
    if (*index >= sent_order.size()) return "ack for a line never sent: " + line;
    const std::uint64_t id = sent_order[*index];
    const LedgerPlace place{static_cast<std::uint32_t>(*partition), *offset};
    if (!acked_.emplace(id, place).second) return "message " + std::to_string(id) + " acked twice: " + line;
    auto [other, inserted] = acked_places_.emplace(place, id);
    if (!inserted) {
      return "messages " + std::to_string(other->second) + " and " + std::to_string(id) + " were both acked at " +
             place_text(place);
    }
    return "";
  }

  // Reads the stream back with `msgstore read` (a normal restart of the store) and checks it
  // against the ledger. Returns every problem found (empty: all good); `stored_count` gets the
  // number of stored messages.
  std::vector<std::string> check_read_back(const std::string& binary, const std::string& data,
                                           std::size_t* stored_count = nullptr) const {
    std::vector<std::string> problems;
    ProcessResult read = run_process({binary, "--data", data, "read", stream_, "--format", "json"});
    if (read.exit_code != 0) {
      problems.push_back("msgstore read failed (exit " + std::to_string(read.exit_code) + "): " + read.err);
      return problems;
    }
    std::map<std::uint64_t, LedgerPlace> stored;
    std::map<std::uint32_t, std::uint64_t> next_offset;  // per partition
    for (const std::string& line : read.out_lines()) {
      const auto partition = json_number(line, "partition");
      const auto offset = json_number(line, "offset");
      const auto payload_text = json_text(line, "payload");
      if (!partition || !offset || !payload_text) {
        problems.push_back("unreadable read line: " + line.substr(0, 120));
        continue;
      }
      const LedgerPlace place{static_cast<std::uint32_t>(*partition), *offset};
      std::uint64_t& expected = next_offset[place.partition];
      if (place.offset != expected) {
        problems.push_back("partition " + std::to_string(place.partition) + ": offset " + std::to_string(place.offset) +
                           " follows " + (expected == 0 ? std::string("the start") : std::to_string(expected - 1)));
      }
      expected = place.offset + 1;
      const auto id = ledger_id_of(*payload_text);
      if (!id || *id >= next_id_) {
        problems.push_back("unexpected message at " + place_text(place) + ": '" + payload_text->substr(0, 40) + "'");
      } else if (*payload_text != payload(*id)) {
        problems.push_back("message " + std::to_string(*id) + " at " + place_text(place) + " has a damaged payload");
      } else if (auto [previous, inserted] = stored.emplace(*id, place); !inserted) {
        problems.push_back("message " + std::to_string(*id) + " stored twice: " + place_text(previous->second) + " and " +
                           place_text(place));
      }
    }
    for (const auto& [id, place] : acked_) {
      auto found = stored.find(id);
      if (found == stored.end()) {
        problems.push_back("acked message " + std::to_string(id) + " (" + place_text(place) + ") is missing");
      } else if (found->second != place) {
        problems.push_back("acked message " + std::to_string(id) + " was acked at " + place_text(place) +
                           " but is stored at " + place_text(found->second));
      }
    }
    for (std::uint64_t id : refused_) {
      if (auto found = stored.find(id); found != stored.end()) {
        problems.push_back("message " + std::to_string(id) + " was refused (no_space) but is stored at " +
                           place_text(found->second));
      }
    }
    if (stored_count != nullptr) *stored_count = stored.size();
    return problems;
  }

  // A message the store refused with no_space: it must not be stored at all (no partial batch).
  void mark_refused(std::uint64_t id) { refused_.insert(id); }

  std::size_t acked_count() const { return acked_.size(); }
  std::uint64_t sent_count() const { return next_id_; }

 private:
  std::string stream_;
  std::size_t minimum_bytes_;
  std::size_t spread_bytes_;
  std::uint64_t next_id_ = 0;
  std::map<std::uint64_t, LedgerPlace> acked_;
  std::map<LedgerPlace, std::uint64_t> acked_places_;
  std::set<std::uint64_t> refused_;
};

// `msgstore verify`: "" when it exits 0 and says clean, else what it printed.
inline std::string verify_problems(const std::string& binary, const std::string& data) {
  ProcessResult verify = run_process({binary, "--data", data, "verify"});
  if (verify.exit_code == 0 && verify.out.find("\nclean\n") != std::string::npos) return "";
  return "msgstore verify (exit " + std::to_string(verify.exit_code) + "): " + verify.out + verify.err;
}

// The input index N of a CLI error "message N not published" (single-message publishes).
inline std::optional<std::uint64_t> cli_failed_message(const std::string& err) {
  const std::string marker = ": message ";
  const std::size_t at = err.find(marker);
  if (at == std::string::npos) return std::nullopt;
  std::size_t cursor = at + marker.size();
  std::uint64_t index = 0;
  bool any = false;
  while (cursor < err.size() && err[cursor] >= '0' && err[cursor] <= '9') {
    index = index * 10 + static_cast<std::uint64_t>(err[cursor++] - '0');
    any = true;
  }
  if (!any || err.compare(cursor, 15, " not published:") != 0) return std::nullopt;
  return index;
}

// The error code name of a CLI error line "msgstore: <code>: ...", or "".
inline std::string cli_error_code(const std::string& err) {
  const std::string prefix = "msgstore: ";
  const std::size_t at = err.find(prefix);
  if (at == std::string::npos) return "";
  const std::size_t begin = at + prefix.size();
  const std::size_t colon = err.find(':', begin);
  if (colon == std::string::npos) return "";
  return err.substr(begin, colon - begin);
}

}  // namespace msgstore::e2e
