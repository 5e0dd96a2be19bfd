#include "crash/checker.h"

#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <limits>
#include <random>

namespace msgstore::crash {
namespace {

constexpr std::size_t problems_per_kind = 6;

std::uint64_t mix(std::uint64_t value) {
  value += 0x9e3779b97f4a7c15ULL;
  value = (value ^ (value >> 30)) * 0xbf58476d1ce4e5b9ULL;
  value = (value ^ (value >> 27)) * 0x94d049bb133111ebULL;
  return value ^ (value >> 31);
}

char filler_byte(MessageId id, std::size_t index) {
  const std::uint64_t h = mix((std::uint64_t{id.producer} << 40) ^ id.sequence ^ (std::uint64_t{index / 8} << 20));
  return static_cast<char>('a' + ((h >> ((index % 8) * 8)) & 0xff) % 26);
}

std::string where(const std::string& stream, std::uint32_t partition, Offset offset) {
  return stream + "/" + std::to_string(partition) + "@" + std::to_string(offset);
}

void note(std::vector<std::string>& problems, std::uint64_t count, const std::string& text) {
  if (count <= problems_per_kind) problems.push_back(text);
}

// The id of a message read back: from its payload, or for an empty payload (a tombstone) from
// the id header.
std::optional<MessageId> identify(const MessageView& message) {
  if (!message.payload.empty()) return parse_payload(message.payload);
  for (const HeaderView& header : message.headers) {
    if (header.name == id_header_name) return parse_payload(header.value);
  }
  return std::nullopt;
}

}  // namespace

std::string make_payload(MessageId id, std::size_t filler_bytes) {
  char head[48];
  std::snprintf(head, sizeof head, "p%u-s%09" PRIu64 "|", id.producer, id.sequence);
  std::string payload = head;
  payload.reserve(payload.size() + filler_bytes);
  for (std::size_t i = 0; i < filler_bytes; ++i) payload.push_back(filler_byte(id, i));
  return payload;
}

std::optional<MessageId> parse_payload(std::string_view payload) {
  if (payload.size() < 4 || payload[0] != 'p') return std::nullopt;
  const std::size_t dash = payload.find("-s");
  const std::size_t bar = payload.find('|');
  if (dash == std::string_view::npos || bar == std::string_view::npos || dash < 2 || bar < dash + 3) return std::nullopt;
  MessageId id;
  std::uint64_t producer = 0;
  for (std::size_t i = 1; i < dash; ++i) {
    if (payload[i] < '0' || payload[i] > '9') return std::nullopt;
    producer = producer * 10 + static_cast<std::uint64_t>(payload[i] - '0');
    if (producer > std::numeric_limits<std::uint32_t>::max()) return std::nullopt;
  }
  for (std::size_t i = dash + 2; i < bar; ++i) {
    if (payload[i] < '0' || payload[i] > '9') return std::nullopt;
    id.sequence = id.sequence * 10 + static_cast<std::uint64_t>(payload[i] - '0');
  }
  id.producer = static_cast<std::uint32_t>(producer);
  // The whole payload must be exactly what make_payload produced.
  const std::size_t filler = payload.size() - bar - 1;
  if (make_payload(id, filler) != payload) return std::nullopt;
  return id;
}

std::string to_string(MessageId id) { return make_payload(id, 0); }

StreamExpectation expectation_of(const StreamConfig& config) {
  return StreamExpectation{.fsync = config.fsync,
                           .max_messages = config.max_messages,
                           .cleanup = config.cleanup,
                           .tombstone_retention_ms = config.tombstone_retention_ms};
}

const char* event_name(Event event) {
  switch (event) {
    case Event::none: return "none";
    case Event::clean_restart: return "clean_restart";
    case Event::process_crash: return "process_crash";
    case Event::power_loss: return "power_loss";
  }
  return "?";
}

// ---- CheckReport ----------------------------------------------------------------------------
bool CheckReport::ok() const {
  return lost_violations() == 0 && unexpected == 0 && duplicates == 0 && inconsistent_offsets == 0 &&
         order_violations == 0 && index_mismatches == 0 && retention_violations == 0 && verify_problems == 0 &&
         missing_streams == 0 && read_errors == 0 && damaged_offsets == 0 && erased_present == 0;
}

std::string CheckReport::summary() const {
  char line[1024];
  std::snprintf(line, sizeof line,
                "partitions=%llu read=%llu acked_checked=%llu retired=%llu removed=%llu erased_present=%llu "
                "unacked_present=%llu lost=%llu "
                "(allowed=%llu; per producer prefix=%llu middle=%llu suffix=%llu) unexpected=%llu duplicates=%llu "
                "inconsistent_offsets=%llu order_violations=%llu index=%llu/%llu mismatched retention_violations=%llu "
                "damaged_offsets=%llu verify_problems=%llu missing_streams=%llu read_errors=%llu recovery_ms=%.2f",
                static_cast<unsigned long long>(partitions), static_cast<unsigned long long>(messages_read),
                static_cast<unsigned long long>(acked_checked), static_cast<unsigned long long>(retired),
                static_cast<unsigned long long>(removed), static_cast<unsigned long long>(erased_present),
                static_cast<unsigned long long>(unacked_present), static_cast<unsigned long long>(lost),
                static_cast<unsigned long long>(lost_allowed), static_cast<unsigned long long>(lost_prefix),
                static_cast<unsigned long long>(lost_middle), static_cast<unsigned long long>(lost_suffix),
                static_cast<unsigned long long>(unexpected), static_cast<unsigned long long>(duplicates),
                static_cast<unsigned long long>(inconsistent_offsets), static_cast<unsigned long long>(order_violations),
                static_cast<unsigned long long>(index_mismatches), static_cast<unsigned long long>(index_checks),
                static_cast<unsigned long long>(retention_violations), static_cast<unsigned long long>(damaged_offsets),
                static_cast<unsigned long long>(verify_problems), static_cast<unsigned long long>(missing_streams),
                static_cast<unsigned long long>(read_errors), recovery_ms);
  std::string text = line;
  for (const std::string& problem : problems) text += "\n  " + problem;
  return text;
}

// ---- Checker --------------------------------------------------------------------------------
void Checker::expect_stream(const std::string& name, StreamExpectation expectation) {
  std::lock_guard lock(mutex_);
  StreamState& state = streams_[name];
  state.expectation = expectation;
  state.may_be_gone = false;
  if (expectation.max_messages > 0) {
    state.retention_floor = state.retention_floor == 0 ? expectation.max_messages
                                                       : std::min(state.retention_floor, expectation.max_messages);
  }
}

void Checker::forget_stream(const std::string& name) {
  std::lock_guard lock(mutex_);
  streams_.erase(name);
}

void Checker::stream_may_be_gone(const std::string& name) {
  std::lock_guard lock(mutex_);
  auto found = streams_.find(name);
  if (found != streams_.end()) found->second.may_be_gone = true;
}

bool Checker::knows_stream(const std::string& name) const {
  std::lock_guard lock(mutex_);
  return streams_.count(name) > 0;
}

void Checker::attempted(MessageId id) { attempted(id, MessageTraits{}); }

void Checker::attempted(MessageId id, MessageTraits traits) {
  std::lock_guard lock(mutex_);
  attempted_.insert_or_assign(id, Attempt{++clock_, std::move(traits)});
}

std::uint64_t Checker::erase_started(const std::string& stream, const EraseCriteria& criteria) {
  std::lock_guard lock(mutex_);
  erases_.push_back(Erase{stream, criteria, ++clock_, std::nullopt});
  return erases_.size() - 1;
}

void Checker::erase_returned(std::uint64_t ticket) {
  std::lock_guard lock(mutex_);
  erases_.at(ticket).returned_tick = ++clock_;
}

const MessageTraits* Checker::traits_of(MessageId id) const {
  auto found = attempted_.find(id);
  return found == attempted_.end() ? nullptr : &found->second.traits;
}

bool Checker::erase_matches(const Erase& erase, MessageId id) const {
  const MessageTraits* traits = traits_of(id);
  if (traits == nullptr) return false;
  if (erase.criteria.key) return traits->key == erase.criteria.key;
  return erase.criteria.header && erase.criteria.header->name == tag_header_name && traits->tag == erase.criteria.header->value;
}

bool Checker::erase_may_remove(const std::string& stream, MessageId id) const {
  auto attempt = attempted_.find(id);
  if (attempt == attempted_.end()) return false;
  return std::any_of(erases_.begin(), erases_.end(), [&](const Erase& erase) {
    // Published before the erase returned (or an erase that never returned): it may be covered.
    return erase.stream == stream && erase_matches(erase, id) &&
           (!erase.returned_tick || attempt->second.tick < *erase.returned_tick);
  });
}

std::string Checker::describe_erases(const std::string& stream, MessageId id) const {
  std::string text;
  for (const Erase& erase : erases_) {
    if (erase.stream != stream || !erase_matches(erase, id)) continue;
    if (!text.empty()) text += ", ";
    text += "erase of " + (erase.criteria.key ? "key " + *erase.criteria.key : "tag " + erase.criteria.header->value) +
            " began at tick " + std::to_string(erase.started_tick) + ", " +
            (erase.returned_tick ? "returned at " + std::to_string(*erase.returned_tick) : std::string("never returned"));
  }
  return text;
}

std::string Checker::key_history(const std::string& stream, MessageId id) const {
  const MessageTraits* traits = traits_of(id);
  if (traits == nullptr || !traits->key) return "";
  auto found = streams_.find(stream);
  if (found == streams_.end() || found->second.expectation.cleanup != CleanupPolicy::compact) return "";
  // The key's later attempts: what could have superseded it.
  std::string text = "; key " + *traits->key + (traits->tombstone ? " (a tombstone)" : "") + ", later with the key:";
  int shown = 0;
  for (auto it = attempted_.upper_bound(id); it != attempted_.end() && it->first.producer == id.producer && shown < 6; ++it) {
    if (it->second.traits.key != traits->key) continue;
    ++shown;
    const bool acked = acked_by_producer_.count(id.producer) && acked_by_producer_.at(id.producer).count(it->first.sequence);
    text += " " + to_string(it->first) + (acked ? " acked" : " unacked") + (it->second.traits.tombstone ? " tombstone" : "") +
            (erase_may_remove(stream, it->first) ? " erasable" : "");
  }
  return text;
}

bool Checker::erase_must_remove(const std::string& stream, MessageId id, std::uint64_t seen_tick) const {
  return std::any_of(erases_.begin(), erases_.end(), [&](const Erase& erase) {
    // In the log (acknowledged or read back) before an erase began that returned ok.
    return erase.stream == stream && erase.returned_tick && seen_tick < erase.started_tick && erase_matches(erase, id);
  });
}

void Checker::refused(MessageId id) {
  std::lock_guard lock(mutex_);
  refused_.insert(id);
}

void Checker::acked(const Position& position, MessageId id) {
  std::lock_guard lock(mutex_);
  const std::uint64_t tick = ++clock_;
  attempted_.try_emplace(id, Attempt{tick, MessageTraits{}});
  auto& known = streams_[position.stream].partitions[position.partition].known;
  auto [entry, inserted] = known.emplace(position.offset, Known{id, true, false, tick});
  if (!inserted) {
    // The offset was acknowledged (or read) before with another message and never legitimately
    // lost in between: remember both, check() reports the conflict.
    if (entry->second.id != id) {
      conflicts_.push_back(where(position.stream, position.partition, position.offset) + " acknowledged for " +
                           to_string(id) + " but already held " + to_string(entry->second.id));
    }
    entry->second.acked = true;
  }
  acked_by_producer_[id.producer].insert(id.sequence);
  ++acked_total_;
}

void Checker::mark_durable(const std::string& stream, std::uint32_t partition, Offset offset) {
  std::lock_guard lock(mutex_);
  auto found = streams_.find(stream);
  if (found == streams_.end()) return;
  auto partition_state = found->second.partitions.find(partition);
  if (partition_state == found->second.partitions.end()) return;
  auto known = partition_state->second.known.find(offset);
  if (known != partition_state->second.known.end()) known->second.durable = true;
}

std::uint64_t Checker::acked_total() const {
  std::lock_guard lock(mutex_);
  return acked_total_;
}

CheckReport Checker::check(const Store& store, Event event, double recovery_ms, const CheckOptions& options) {
  std::lock_guard lock(mutex_);
  CheckReport report;
  report.recovery_ms = recovery_ms;
  for (const std::string& conflict : conflicts_) {
    ++report.inconsistent_offsets;
    note(report.problems, report.inconsistent_offsets, "inconsistent offset: " + conflict);
  }
  conflicts_.clear();

  struct Lost {
    MessageId id;
    bool allowed;
  };
  std::vector<Lost> lost_now;
  std::set<MessageId> lost_ids;

  if (options.verify) {
    auto verified = store.verify();
    if (!verified) {
      ++report.read_errors;
      note(report.problems, report.read_errors, "verify failed: " + verified.status().to_string());
    } else {
      report.verify_problems = verified->problems.size();
      for (std::size_t i = 0; i < verified->problems.size() && i < problems_per_kind; ++i) {
        report.problems.push_back("verify: " + verified->problems[i]);
      }
    }
  }

  for (auto stream_it = streams_.begin(); stream_it != streams_.end();) {
    const std::string& name = stream_it->first;
    StreamState& state = stream_it->second;
    auto info = store.describe_stream(name);
    if (!info) {
      if (info.status().code() == ErrorCode::stream_not_found && state.may_be_gone) {
        stream_it = streams_.erase(stream_it);
        continue;
      }
      ++report.missing_streams;
      note(report.problems, report.missing_streams, "stream " + name + " missing: " + info.status().to_string());
      for (auto& [partition, partition_state] : state.partitions) {
        for (auto& [offset, known] : partition_state.known) {
          if (!known.acked) continue;
          ++report.lost;
          lost_now.push_back({known.id, false});
          lost_ids.insert(known.id);
        }
      }
      ++stream_it;
      continue;
    }
    state.may_be_gone = false;
    const bool relaxed = state.expectation.fsync != FsyncPolicy::always;
    const bool compacted = state.expectation.cleanup == CleanupPolicy::compact;
    // Compaction and erase leave gaps in the offsets.
    const bool gaps_allowed =
        compacted || std::any_of(erases_.begin(), erases_.end(), [&](const Erase& erase) { return erase.stream == name; });
    std::map<MessageId, std::pair<std::uint32_t, Offset>> in_stream;  // duplicates
    const auto partition_count = static_cast<std::uint32_t>(info->partitions.size());
    for (std::uint32_t partition = 0; partition < partition_count; ++partition) {
      ++report.partitions;
      PartitionState& partition_state = state.partitions[partition];
      auto start = store.resolve_start(name, partition, StartPosition::from_beginning());
      auto end = store.resolve_start(name, partition, StartPosition::new_only());
      if (!start || !end) {
        ++report.read_errors;
        note(report.problems, report.read_errors,
             "resolve_start " + name + "/" + std::to_string(partition) + ": " +
                 (!start ? start.status().to_string() : end.status().to_string()));
        continue;
      }
      const Offset log_start = *start;
      const Offset high_watermark = *end;

      // Read everything. Damage is stepped over one offset at a time and counted.
      struct Found {
        std::optional<MessageId> id;
        TimestampMs timestamp_ms = 0;
      };
      std::map<Offset, Found> found;
      std::set<Offset> damaged;
      Offset next = log_start;
      while (next < high_watermark) {
        auto scanned = store.scan(name, partition, next, limits::read_messages_max, [&](const MessageView& message) {
          found[message.offset] = Found{identify(message), message.timestamp_ms};
          return ScanControl::proceed;
        });
        if (!scanned) {
          if (scanned.status().code() == ErrorCode::corruption) {
            if (damaged.empty()) {
              note(report.problems, report.damaged_offsets + 1,
                   "damage reported at " + where(name, partition, next) + ": " + scanned.status().message());
            }
            damaged.insert(next);
            ++next;
            continue;
          }
          ++report.read_errors;
          note(report.problems, report.read_errors, "scan " + where(name, partition, next) + ": " + scanned.status().to_string());
          break;
        }
        if (*scanned <= next) {
          ++report.read_errors;
          note(report.problems, report.read_errors, "scan made no progress at " + where(name, partition, next));
          break;
        }
        next = *scanned;
      }
      report.messages_read += found.size();
      report.damaged_offsets += damaged.size();
      for (Offset offset = log_start; offset < high_watermark && !gaps_allowed; ++offset) {
        if (!found.count(offset) && !damaged.count(offset)) {
          ++report.read_errors;
          note(report.problems, report.read_errors, "offset " + where(name, partition, offset) + " neither served nor reported damaged");
          break;
        }
      }

      // What was read: unexpected, duplicated, out of order.
      std::map<std::uint32_t, std::uint64_t> last_sequence;
      for (const auto& [offset, message] : found) {
        if (!message.id) {
          ++report.unexpected;
          note(report.problems, report.unexpected, "malformed payload at " + where(name, partition, offset));
          continue;
        }
        const MessageId id = *message.id;
        if (!attempted_.count(id)) {
          ++report.unexpected;
          note(report.problems, report.unexpected, "never attempted " + to_string(id) + " at " + where(name, partition, offset));
        } else if (refused_.count(id)) {
          ++report.unexpected;
          note(report.problems, report.unexpected, "refused " + to_string(id) + " present at " + where(name, partition, offset));
        }
        auto [previous, inserted] = in_stream.emplace(id, std::make_pair(partition, offset));
        if (!inserted) {
          ++report.duplicates;
          note(report.problems, report.duplicates,
               "duplicate " + to_string(id) + " at " + where(name, partition, offset) + " and " +
                   where(name, previous->second.first, previous->second.second));
        }
        auto [last, first_seen] = last_sequence.emplace(id.producer, id.sequence);
        if (!first_seen) {
          if (id.sequence <= last->second) {
            ++report.order_violations;
            note(report.problems, report.order_violations,
                 "order: " + to_string(id) + " at " + where(name, partition, offset) + " after sequence " +
                     std::to_string(last->second));
          }
          last->second = id.sequence;
        }
      }

      // Which missing known messages compaction or an erase was allowed to remove. Newest first,
      // so that whether a later message with the same key supersedes an older one is known.
      std::set<Offset> removed_legally;
      if (gaps_allowed) {
        const TimestampMs now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                                       std::chrono::system_clock::now().time_since_epoch())
                                       .count();
        std::set<Offset> offsets;
        for (const auto& [offset, known] : partition_state.known) offsets.insert(offset);
        for (const auto& [offset, message] : found) offsets.insert(offset);
        std::set<std::string> superseded_keys;  // keys with a later message that supersedes
        // A message never acknowledged and never read back may have superseded older values
        // and then been erased: per key, the latest attempt of such a message.
        std::map<std::string, std::uint64_t> erased_unacked_latest_tick;
        if (compacted) {
          for (const auto& [id, attempt] : attempted_) {
            if (!attempt.traits.key || acked_by_producer_[id.producer].count(id.sequence) || !erase_may_remove(name, id)) continue;
            std::uint64_t& latest = erased_unacked_latest_tick[*attempt.traits.key];
            latest = std::max(latest, attempt.tick);
          }
        }
        for (auto it = offsets.rbegin(); it != offsets.rend() && *it >= log_start; ++it) {
          const Offset offset = *it;
          auto message = found.find(offset);
          auto known = partition_state.known.find(offset);
          bool supersedes = false;
          std::optional<MessageId> id;
          if (message != found.end()) {
            id = message->second.id;
            supersedes = true;
          } else {
            id = known->second.id;
            const MessageTraits* traits = traits_of(*id);
            auto erased_later = traits && traits->key ? erased_unacked_latest_tick.find(*traits->key) : erased_unacked_latest_tick.end();
            const bool superseded = compacted && traits && traits->key &&
                                    (superseded_keys.count(*traits->key) ||
                                     (erased_later != erased_unacked_latest_tick.end() && erased_later->second > attempted_.at(*id).tick));
            const bool expired_tombstone = compacted && traits && traits->tombstone &&
                                           traits->timestamp_ms <= now_ms - state.expectation.tombstone_retention_ms;
            if (superseded || expired_tombstone || erase_may_remove(name, *id)) {
              removed_legally.insert(offset);
              supersedes = true;
            } else {
              // A missing acknowledged message the policy keeps is reported lost below; it
              // may still have superseded older values before it went. One a power loss was
              // allowed to take under a relaxed policy supersedes nothing.
              supersedes = known->second.acked && (!relaxed || known->second.durable || event != Event::power_loss);
            }
          }
          if (!supersedes || !id) continue;
          const MessageTraits* traits = traits_of(*id);
          if (traits && traits->key) superseded_keys.insert(*traits->key);
        }
      }

      // What was known (acknowledged, or read at an earlier check) against what was read.
      for (auto it = partition_state.known.begin(); it != partition_state.known.end();) {
        const Offset offset = it->first;
        Known& known = it->second;
        if (offset < log_start) {
          if (known.acked) ++report.retired;
          ++it;
          continue;
        }
        auto message = found.find(offset);
        if (message != found.end() && message->second.id == known.id && erase_must_remove(name, known.id, known.seen_tick)) {
          ++report.erased_present;
          note(report.problems, report.erased_present,
               "erased " + to_string(known.id) + " still readable at " + where(name, partition, offset) + " after " +
                   event_name(event) + " (" + (known.acked ? "acknowledged" : "read back") + " at tick " +
                   std::to_string(known.seen_tick) + "; " + describe_erases(name, known.id) + ")");
        }
        if (message == found.end() && removed_legally.count(offset)) {
          ++report.removed;
          it = partition_state.known.erase(it);
          continue;
        }
        if (message != found.end()) {
          if (!message->second.id || *message->second.id != known.id) {
            ++report.inconsistent_offsets;
            note(report.problems, report.inconsistent_offsets,
                 "inconsistent offset " + where(name, partition, offset) + ": held " + to_string(known.id) + ", now " +
                     (message->second.id ? to_string(*message->second.id) : std::string("a malformed payload")));
          } else if (known.acked) {
            ++report.acked_checked;
          }
          ++it;
          continue;
        }
        // Missing: past the recovered end, or damaged. Only an unsynced suffix lost at a power
        // loss under a relaxed fsync policy is allowed; its offsets may be reused afterwards.
        const bool allowed = !known.durable && event == Event::power_loss && relaxed && offset >= high_watermark;
        if (known.acked) {
          ++report.acked_checked;
          ++report.lost;
          if (allowed) ++report.lost_allowed;
          lost_now.push_back({known.id, allowed});
          lost_ids.insert(known.id);
          if (!allowed) {
            note(report.problems, report.lost - report.lost_allowed,
                 "lost acknowledged " + to_string(known.id) + " at " + where(name, partition, offset) + " (" +
                     (known.durable ? "durable: synced, or read after a restart" : "acknowledged") + ", fsync " +
                     fsync_policy_to_string(state.expectation.fsync, 1) + ", after " + event_name(event) + ", log " +
                     std::to_string(log_start) + ".." + std::to_string(high_watermark) +
                     (damaged.count(offset) ? ", offset reported damaged" : "") + ")" + key_history(name, known.id));
          }
        } else if (!allowed) {
          ++report.inconsistent_offsets;
          note(report.problems, report.inconsistent_offsets,
               "vanished: " + to_string(known.id) + " was read at " + where(name, partition, offset) + " and is gone after " +
                   event_name(event));
        }
        it = partition_state.known.erase(it);
      }
      // Newly seen messages that were attempted (in flight at a crash, or refused partially):
      // from now on they are part of the log and must stay.
      for (const auto& [offset, message] : found) {
        if (!message.id || !attempted_.count(*message.id)) continue;
        auto [entry, inserted] = partition_state.known.emplace(offset, Known{*message.id, false, false, ++clock_});
        if (inserted) ++report.unacked_present;
      }
      if (event != Event::none) {
        for (auto& [offset, known] : partition_state.known) {
          if (found.count(offset)) known.durable = true;
        }
      }

      // Retention keeps at least max_messages (only exact under fsync=always, where the high
      // watermark retention counts from is durable).
      if (!relaxed && state.retention_floor > 0 && log_start > 0 && high_watermark - log_start < state.retention_floor) {
        ++report.retention_violations;
        note(report.problems, report.retention_violations,
             name + "/" + std::to_string(partition) + ": retention kept " + std::to_string(high_watermark - log_start) +
                 " messages, fewer than max_messages " + std::to_string(state.retention_floor) + " (log " +
                 std::to_string(log_start) + ".." + std::to_string(high_watermark) + ")");
      }

      // Time lookups against a full scan of what was read.
      if (damaged.empty() && options.time_samples > 0) {
        std::mt19937_64 random(options.sample_seed ^ mix(std::hash<std::string>{}(name)) ^ mix(partition));
        std::vector<TimestampMs> probes = {std::numeric_limits<TimestampMs>::min() + 1, std::numeric_limits<TimestampMs>::max(),
                                           -1, 0};
        std::vector<TimestampMs> stamps;
        stamps.reserve(found.size());
        for (const auto& [offset, message] : found) stamps.push_back(message.timestamp_ms);
        for (std::size_t i = 0; i < options.time_samples && !stamps.empty(); ++i) {
          const TimestampMs stamp = stamps[random() % stamps.size()];
          const int delta = static_cast<int>(random() % 3) - 1;
          if ((delta < 0 && stamp == std::numeric_limits<TimestampMs>::min()) ||
              (delta > 0 && stamp == std::numeric_limits<TimestampMs>::max())) {
            probes.push_back(stamp);
          } else {
            probes.push_back(stamp + delta);
          }
        }
        for (TimestampMs probe : probes) {
          if (probe == timestamp_now) continue;
          Offset expected = high_watermark;
          for (const auto& [offset, message] : found) {
            if (message.timestamp_ms >= probe) {
              expected = offset;
              break;
            }
          }
          ++report.index_checks;
          auto answer = store.resolve_start(name, partition, StartPosition::from_time(probe));
          if (!answer || *answer != expected) {
            ++report.index_mismatches;
            note(report.problems, report.index_mismatches,
                 "time lookup " + name + "/" + std::to_string(partition) + " at " + std::to_string(probe) + ": " +
                     (answer ? std::to_string(*answer) : answer.status().to_string()) + ", full scan says " +
                     std::to_string(expected));
          }
        }
      }
    }
    ++stream_it;
  }

  // Lost acknowledged messages, per producer, against the producer's surviving acks.
  for (const Lost& lost : lost_now) {
    const std::set<std::uint64_t>& acked = acked_by_producer_[lost.id.producer];
    std::optional<std::uint64_t> first_surviving;
    std::optional<std::uint64_t> last_surviving;
    for (std::uint64_t sequence : acked) {
      const MessageId id{lost.id.producer, sequence};
      if (lost_ids.count(id) || lost_ever_.count(id)) continue;
      if (!first_surviving) first_surviving = sequence;
      last_surviving = sequence;
    }
    if (!first_surviving || lost.id.sequence > *last_surviving) {
      ++report.lost_suffix;
    } else if (lost.id.sequence < *first_surviving) {
      ++report.lost_prefix;
    } else {
      ++report.lost_middle;
    }
  }
  lost_ever_.insert(lost_ids.begin(), lost_ids.end());
  return report;
}

// ---- Figures --------------------------------------------------------------------------------
void Figures::add(const CheckReport& report) {
  ++cycles;
  messages_checked += report.messages_read;
  acked += report.acked_checked;
  removed += report.removed;
  lost += report.lost_violations();
  lost_allowed += report.lost_allowed;
  unexpected += report.unexpected;
  duplicates += report.duplicates;
  inconsistent += report.inconsistent_offsets;
  order_violations += report.order_violations;
  index_checks += report.index_checks;
  index_mismatches += report.index_mismatches;
  damaged_offsets += report.damaged_offsets;
  other_violations += report.erased_present + report.retention_violations + report.verify_problems + report.missing_streams + report.read_errors;
  if (report.recovery_ms > 0) add_recovery(report.recovery_ms);
}

void Figures::add_recovery(double milliseconds) {
  ++recoveries;
  recovery_ms_total += milliseconds;
  recovery_ms_max = std::max(recovery_ms_max, milliseconds);
}

std::string Figures::line() const {
  char text[1024];
  std::snprintf(text, sizeof text,
                "CRASH-FIGURES test=%s seeds=%llu cycles=%llu messages_checked=%llu acked=%llu removed=%llu lost=%llu "
                "lost_allowed=%llu unexpected=%llu duplicates=%llu inconsistent=%llu order_violations=%llu "
                "index_checks=%llu index_mismatches=%llu damaged_offsets=%llu other_violations=%llu failures=%llu "
                "recoveries=%llu recovery_ms_mean=%.3f recovery_ms_max=%.3f",
                test.c_str(), static_cast<unsigned long long>(seeds), static_cast<unsigned long long>(cycles),
                static_cast<unsigned long long>(messages_checked), static_cast<unsigned long long>(acked),
                static_cast<unsigned long long>(removed), static_cast<unsigned long long>(lost), static_cast<unsigned long long>(lost_allowed),
                static_cast<unsigned long long>(unexpected), static_cast<unsigned long long>(duplicates),
                static_cast<unsigned long long>(inconsistent), static_cast<unsigned long long>(order_violations),
                static_cast<unsigned long long>(index_checks), static_cast<unsigned long long>(index_mismatches),
                static_cast<unsigned long long>(damaged_offsets), static_cast<unsigned long long>(other_violations),
                static_cast<unsigned long long>(failures), static_cast<unsigned long long>(recoveries),
                recoveries ? recovery_ms_total / static_cast<double>(recoveries) : 0.0, recovery_ms_max);
  return text;
}

void Figures::print() const { std::printf("%s\n", line().c_str()); }

}  // namespace msgstore::crash
