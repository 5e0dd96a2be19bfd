#include "store/dedup_table.h"

#include "base/assert.h"

namespace msgstore::store {

DedupTable::DedupTable(std::size_t entries_max) : entries_max_(entries_max) {}

void DedupTable::expire_locked(TimestampMs now_ms, std::int64_t window_ms) {
  while (!by_time_.empty() && by_time_.front().first <= now_ms - window_ms) {
    auto found = entries_.find(by_time_.front().second);
    if (found != entries_.end() && !found->second.pending && found->second.stored_ms == by_time_.front().first) {
      entries_.erase(found);
    }
    by_time_.pop_front();
  }
}

DedupTable::Claim DedupTable::claim(std::string_view id, TimestampMs now_ms, std::int64_t window_ms) {
  std::unique_lock lock(mutex_);
  const std::string key(id);
  while (true) {
    expire_locked(now_ms, window_ms);
    auto found = entries_.find(key);
    if (found == entries_.end()) break;
    if (found->second.pending) {
      resolved_.wait(lock);
      continue;
    }
    if (found->second.stored_ms > now_ms - window_ms) return Claim{Outcome::duplicate, found->second.original};
    // Outside the window (clock or window changes can leave one before expire_locked gets to it).
    entries_.erase(found);
    break;
  }
  if (entries_.size() >= entries_max_) return Claim{Outcome::table_full, {}};
  entries_.emplace(key, Entry{});
  return Claim{Outcome::claimed, {}};
}

void DedupTable::complete(std::string_view id, DedupOriginal original, TimestampMs stored_ms) {
  {
    std::lock_guard lock(mutex_);
    auto found = entries_.find(std::string(id));
    MS_ASSERT(found != entries_.end() && found->second.pending);
    found->second = Entry{false, stored_ms, original};
    by_time_.emplace_back(stored_ms, std::string(id));
  }
  resolved_.notify_all();
}

void DedupTable::abandon(std::string_view id) {
  {
    std::lock_guard lock(mutex_);
    auto found = entries_.find(std::string(id));
    MS_ASSERT(found != entries_.end() && found->second.pending);
    entries_.erase(found);
  }
  resolved_.notify_all();
}

void DedupTable::insert_recovered(std::string_view id, DedupOriginal original, TimestampMs stored_ms) {
  std::lock_guard lock(mutex_);
  if (entries_.size() >= entries_max_) {
    // Keep the newest: the oldest recovered id is the first to leave the window anyway.
    while (!by_time_.empty() && entries_.size() >= entries_max_) {
      auto found = entries_.find(by_time_.front().second);
      if (found != entries_.end() && !found->second.pending && found->second.stored_ms == by_time_.front().first) {
        entries_.erase(found);
      }
      by_time_.pop_front();
    }
    if (entries_.size() >= entries_max_) return;
  }
  auto [it, inserted] = entries_.try_emplace(std::string(id), Entry{false, stored_ms, original});
  if (!inserted) return;
  by_time_.emplace_back(stored_ms, it->first);
}

std::size_t DedupTable::size() const {
  std::lock_guard lock(mutex_);
  return entries_.size();
}

}  // namespace msgstore::store
