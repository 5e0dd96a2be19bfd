// PartitionLog's erase list (log/erase_list.h): load on open, add (durable before it returns),
// retire entries once a rewrite removed their bytes or retention removed their segment.
#include <algorithm>

#include "base/assert.h"
#include "io/metadata_file.h"
#include "log/erase_list.h"
#include "log/partition_log.h"

namespace msgstore::log {

std::shared_ptr<const std::vector<Offset>> PartitionLog::erased_offsets() const {
  std::lock_guard lock(erased_mutex_);
  return erased_;
}

Status PartitionLog::load_erase_list() {
  const auto path = directory_ / erase_list_file_name;
  if (!file_system_.exists(path)) return Status::ok();
  auto bytes = io::read_whole_file(file_system_, path);
  if (!bytes) return bytes.status();
  auto offsets = decode_erase_list(*bytes);
  // Never serve erased data because its list is unreadable: refuse to open instead.
  if (!offsets) return Status(offsets.status().code(), path.string() + ": " + offsets.status().message());
  {
    std::lock_guard lock(erased_mutex_);
    erased_ = std::make_shared<const std::vector<Offset>>(std::move(*offsets));
  }
  // Entries below the log start hide nothing any more (a crash came between retention's
  // deletion and their retirement): retire them now; on a full disk they simply stay.
  auto current = erased_offsets();
  std::vector<Offset> below_start(current->begin(), std::lower_bound(current->begin(), current->end(), log_start_offset()));
  Status retired = retire_erased_offsets(below_start);
  return retired.code() == ErrorCode::no_space ? Status::ok() : retired;
}

Status PartitionLog::write_erase_list(std::shared_ptr<const std::vector<Offset>> offsets) {
  const auto path = directory_ / erase_list_file_name;
  if (offsets->empty()) {
    MSGSTORE_RETURN_IF_ERROR(file_system_.remove(path));
    MSGSTORE_RETURN_IF_ERROR(file_system_.sync_directory(directory_));
  } else {
    MSGSTORE_RETURN_IF_ERROR(io::write_file_atomically(file_system_, path, encode_erase_list(*offsets)));
  }
  std::lock_guard lock(erased_mutex_);
  erased_ = std::move(offsets);
  return Status::ok();
}

Status PartitionLog::add_erased_offsets(const std::vector<Offset>& offsets) {
  if (offsets.empty()) return Status::ok();
  MS_ASSERT(std::is_sorted(offsets.begin(), offsets.end()));
  std::lock_guard writing(erase_list_write_mutex_);
  auto merged = std::make_shared<const std::vector<Offset>>(merge_offsets(*erased_offsets(), offsets));
  // Durable first, then in force for every reader; the caller returns only once both hold.
  return write_erase_list(std::move(merged));
}

Status PartitionLog::retire_erased_offsets(const std::vector<Offset>& retired) {
  std::lock_guard writing(erase_list_write_mutex_);
  auto current = erased_offsets();
  auto remaining = std::make_shared<const std::vector<Offset>>(subtract_offsets(*current, retired));
  if (remaining->size() == current->size()) return Status::ok();
  return write_erase_list(std::move(remaining));
}

}  // namespace msgstore::log
