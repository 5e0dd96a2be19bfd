// The in-memory fault-injecting file system. The model is stated in fault_file_system.h; this
// file keeps the namespace as a tree of shared objects, much like inodes: directory entries
// point at FileNode / DirectoryNode objects, so a rename moves an object (a whole subtree for a
// directory), and an open handle keeps its FileNode alive after the name goes away.
#include "io/fault_file_system.h"

#include <algorithm>
#include <array>
#include <cerrno>
#include <map>
#include <mutex>
#include <set>
#include <string_view>
#include <utility>
#include <variant>

#include "io/errors.h"

namespace msgstore {
namespace {

constexpr std::size_t sector_bytes = 512;
constexpr std::size_t operation_kinds = 6;

// SplitMix64: tiny, and its output is fixed by its definition (unlike the std distributions),
// so a seed gives the same crash on every platform and standard library.
class SeededRandom {
 public:
  explicit SeededRandom(std::uint64_t seed) : state_(seed) {}

  std::uint64_t next() {
    state_ += 0x9e3779b97f4a7c15ULL;
    std::uint64_t mixed = state_;
    mixed = (mixed ^ (mixed >> 30)) * 0xbf58476d1ce4e5b9ULL;
    mixed = (mixed ^ (mixed >> 27)) * 0x94d049bb133111ebULL;
    return mixed ^ (mixed >> 31);
  }

  // Uniform enough in [0, bound) for fault choices; bound > 0.
  std::uint64_t below(std::uint64_t bound) { return next() % bound; }

 private:
  std::uint64_t state_;
};

// One write_at or truncate not yet covered by a successful sync.
struct UnsyncedOperation {
  bool is_truncate = false;
  std::uint64_t offset = 0;  // write: where; truncate: the new size
  std::string bytes;         // write only
};

struct FileNode {
  std::string current;
  std::string durable;
  std::vector<UnsyncedOperation> unsynced;
  // Valid (current-generation) File handles open on this node: an unlinked file with open
  // handles still occupies space, as on a real disk.
  std::uint64_t open_handles = 0;
};

struct DirectoryNode;
using Entry = std::variant<std::shared_ptr<FileNode>, std::shared_ptr<DirectoryNode>>;
using Entries = std::map<std::string, Entry>;  // ordered: power loss walks it by name

struct DirectoryNode {
  Entries entries;
  Entries durable_entries;
};

FileNode* as_file(const Entry& entry) {
  const auto* file = std::get_if<std::shared_ptr<FileNode>>(&entry);
  return file != nullptr ? file->get() : nullptr;
}

DirectoryNode* as_directory(const Entry& entry) {
  const auto* directory = std::get_if<std::shared_ptr<DirectoryNode>>(&entry);
  return directory != nullptr ? directory->get() : nullptr;
}

// Normalized components below the root; "" and "/" give none (the root itself). A leading
// ".." stays at the root, as it does in POSIX.
std::vector<std::string> components_of(const std::filesystem::path& path) {
  std::vector<std::string> components;
  for (const auto& part : path.lexically_normal().relative_path()) {
    std::string name = part.string();
    if (name.empty() || name == ".") continue;
    if (name == "..") {
      if (!components.empty()) components.pop_back();
      continue;
    }
    components.push_back(std::move(name));
  }
  return components;
}

std::string display_of(const std::vector<std::string>& components) {
  std::string text;
  for (const auto& name : components) text += "/" + name;
  return text.empty() ? "/" : text;
}

Status injected_fault(std::string_view operation, const std::filesystem::path& path) {
  Status status = io::status_from_errno(EIO, operation, path);
  return Status(status.code(), status.message() + " (injected fault)");
}

Status invalidated_handle() {
  return Status(ErrorCode::io_error, "file handle invalidated by simulated crash");
}

}  // namespace

struct FaultFileSystem::State {
  mutable std::mutex mutex;
  std::shared_ptr<DirectoryNode> root = std::make_shared<DirectoryNode>();
  // Every directory ever created, to break reference cycles that a crash or destruction can
  // leave among unreachable directories (a durable entry may point at a moved ancestor).
  std::vector<std::weak_ptr<DirectoryNode>> all_directories;
  std::size_t all_directories_prune_at = 64;
  // Files with valid open handles, for the quota (unlinked-but-open files use space).
  std::vector<std::weak_ptr<FileNode>> open_files;  // may hold stale entries until pruned
  std::size_t open_files_prune_at = 64;
  // Bumped by every crash; handles and locks of an older generation are dead.
  std::uint64_t generation = 0;
  std::map<std::string, std::uint64_t> locks;  // normalized path -> lock id
  std::uint64_t next_lock_id = 1;
  std::array<std::uint64_t, operation_kinds> fail_countdown{};  // 0: no pending failure
  std::uint64_t quota_bytes = 0;
  Counters counters;
  bool cold_reads = false;

  ~State() { break_directory_cycles({}); }

  // Consumes one call of `operation`; true when that call must fail.
  bool take_fault(Operation operation) {
    std::uint64_t& countdown = fail_countdown[static_cast<std::size_t>(operation)];
    if (countdown == 0) return false;
    return --countdown == 0;
  }

  // The directory named by components[0, count), or null if missing or not a directory.
  DirectoryNode* find_directory(const std::vector<std::string>& components, std::size_t count) const {
    DirectoryNode* directory = root.get();
    for (std::size_t index = 0; index < count; ++index) {
      auto found = directory->entries.find(components[index]);
      if (found == directory->entries.end()) return nullptr;
      directory = as_directory(found->second);
      if (directory == nullptr) return nullptr;
    }
    return directory;
  }

  DirectoryNode* find_parent(const std::vector<std::string>& components) const {
    if (components.empty()) return nullptr;
    return find_directory(components, components.size() - 1);
  }

  // The entry named by `components` (not the root), or null.
  Entry* find_entry(const std::vector<std::string>& components) const {
    DirectoryNode* parent = find_parent(components);
    if (parent == nullptr) return nullptr;
    auto found = parent->entries.find(components.back());
    return found == parent->entries.end() ? nullptr : &found->second;
  }

  std::shared_ptr<FileNode> find_file(const std::filesystem::path& path) const {
    Entry* entry = find_entry(components_of(path));
    if (entry == nullptr) return nullptr;
    const auto* file = std::get_if<std::shared_ptr<FileNode>>(entry);
    return file != nullptr ? *file : nullptr;
  }

  std::shared_ptr<DirectoryNode> new_directory() {
    auto directory = std::make_shared<DirectoryNode>();
    if (all_directories.size() >= all_directories_prune_at) {
      std::erase_if(all_directories, [](const auto& weak) { return weak.expired(); });
      all_directories_prune_at = std::max<std::size_t>(64, 2 * all_directories.size());
    }
    all_directories.push_back(directory);
    return directory;
  }

  // Empties every known directory not in `keep`, so that no cycle of shared_ptrs survives.
  void break_directory_cycles(const std::set<const DirectoryNode*>& keep) {
    std::vector<std::shared_ptr<DirectoryNode>> doomed;
    for (const auto& weak : all_directories) {
      if (auto directory = weak.lock(); directory && !keep.contains(directory.get())) doomed.push_back(directory);
    }
    for (const auto& directory : doomed) {
      directory->entries.clear();
      directory->durable_entries.clear();
    }
    std::erase_if(all_directories, [](const auto& weak) { return weak.expired(); });
  }

  void track_open_file(const std::shared_ptr<FileNode>& file) {
    if (open_files.size() >= open_files_prune_at) {
      prune_open_files();
      open_files_prune_at = std::max<std::size_t>(64, 2 * open_files.size());
    }
    open_files.push_back(file);
  }

  void prune_open_files() {
    std::erase_if(open_files, [](const auto& weak) {
      auto file = weak.lock();
      return !file || file->open_handles == 0;
    });
  }

  // Named files (each object once) plus unlinked files that valid handles still hold.
  std::uint64_t compute_used_bytes() {
    std::set<const FileNode*> counted;
    std::uint64_t total = 0;
    std::vector<const DirectoryNode*> pending{root.get()};
    while (!pending.empty()) {
      const DirectoryNode* directory = pending.back();
      pending.pop_back();
      for (const auto& [name, entry] : directory->entries) {
        if (const DirectoryNode* child = as_directory(entry)) {
          pending.push_back(child);
        } else if (const FileNode* file = as_file(entry); counted.insert(file).second) {
          total += file->current.size();
        }
      }
    }
    prune_open_files();
    for (const auto& weak : open_files) {
      auto file = weak.lock();
      if (counted.insert(file.get()).second) total += file->current.size();
    }
    return total;
  }

  // Invalidates every handle and lock: the common part of both crash kinds.
  void start_new_generation() {
    ++generation;
    for (const auto& weak : open_files) {
      if (auto file = weak.lock()) file->open_handles = 0;
    }
    open_files.clear();
    locks.clear();
    ++counters.power_losses;
  }

  void revert_namespace(std::vector<FileNode*>& reachable_files) {
    std::set<const DirectoryNode*> visited_directories{root.get()};
    std::set<const FileNode*> visited_files;
    std::vector<DirectoryNode*> pending{root.get()};
    // Depth-first in name order, so the walk (and the random choices that follow) depends on
    // the seed and the history only.
    while (!pending.empty()) {
      DirectoryNode* directory = pending.back();
      pending.pop_back();
      directory->entries = directory->durable_entries;
      std::vector<DirectoryNode*> children;
      for (auto iterator = directory->entries.begin(); iterator != directory->entries.end();) {
        if (DirectoryNode* child = as_directory(iterator->second)) {
          if (!visited_directories.insert(child).second) {
            // Already reachable under another name: a directory has one parent.
            directory->durable_entries.erase(iterator->first);
            iterator = directory->entries.erase(iterator);
            continue;
          }
          children.push_back(child);
        } else if (FileNode* file = as_file(iterator->second); visited_files.insert(file).second) {
          reachable_files.push_back(file);
        }
        ++iterator;
      }
      pending.insert(pending.end(), children.rbegin(), children.rend());
    }
    break_directory_cycles(visited_directories);
  }
};

namespace {

using State = FaultFileSystem::State;

// Replays `file`'s unsynced operations on its durable image as the mode and random source
// decide, and makes the outcome both current and durable.
void crash_contents(FileNode& file, PowerLossMode mode, SeededRandom& random) {
  std::string result = std::move(file.durable);
  for (const UnsyncedOperation& operation : file.unsynced) {
    enum class Fate { keep, drop, tear } fate = Fate::keep;
    if (mode == PowerLossMode::drop_all_unsynced) {
      fate = Fate::drop;
    } else if (mode == PowerLossMode::random) {
      std::uint64_t choices = operation.is_truncate ? 2 : 3;
      fate = static_cast<Fate>(random.below(choices));
    }
    if (fate == Fate::drop) continue;
    if (operation.is_truncate) {
      result.resize(operation.offset, '\0');
      continue;
    }
    const std::uint64_t begin = operation.offset;
    const std::uint64_t end = begin + operation.bytes.size();
    if (result.size() < end) result.resize(end, '\0');
    if (fate == Fate::keep) {
      result.replace(begin, operation.bytes.size(), operation.bytes);
      continue;
    }
    // Torn: each sector piece independently new, old, or garbage.
    for (std::uint64_t position = begin; position < end;) {
      const std::uint64_t piece_end = std::min<std::uint64_t>(end, (position / sector_bytes + 1) * sector_bytes);
      switch (random.below(3)) {
        case 0:
          result.replace(position, piece_end - position, operation.bytes, position - begin, piece_end - position);
          break;
        case 1:
          break;  // the sector never reached the platter
        default:
          for (std::uint64_t index = position; index < piece_end; ++index) {
            result[index] = static_cast<char>(random.next() & 0xff);
          }
          break;
      }
      position = piece_end;
    }
  }
  file.unsynced.clear();
  file.current = result;
  file.durable = std::move(result);
}

class FaultFile final : public File {
 public:
  FaultFile(std::shared_ptr<State> state, std::shared_ptr<FileNode> node, std::filesystem::path path, bool writable)
      : state_(std::move(state)), node_(std::move(node)), path_(std::move(path)), writable_(writable),
        generation_(state_->generation) {}

  ~FaultFile() override {
    std::lock_guard guard(state_->mutex);
    if (generation_ == state_->generation && node_->open_handles > 0) --node_->open_handles;
  }

  Status write_at(std::uint64_t offset, const void* data, std::size_t size) override {
    std::lock_guard guard(state_->mutex);
    if (generation_ != state_->generation) return invalidated_handle();
    if (!writable_) return io::status_from_errno(EBADF, "write", path_);
    if (state_->take_fault(FaultFileSystem::Operation::write)) return injected_fault("write", path_);
    if (offset > FaultFileSystem::file_size_max_bytes || size > FaultFileSystem::file_size_max_bytes - offset) {
      return io::status_from_errno(EFBIG, "write", path_);
    }
    std::string& current = node_->current;
    const std::uint64_t end = offset + size;
    if (state_->quota_bytes != 0 && end > current.size()) {
      const std::uint64_t growth = end - current.size();
      if (state_->compute_used_bytes() + growth > state_->quota_bytes) {
        Status status = io::status_from_errno(ENOSPC, "write", path_);
        return Status(status.code(),
                      status.message() + " (quota of " + std::to_string(state_->quota_bytes) + " bytes)");
      }
    }
    ++state_->counters.writes;
    state_->counters.written_bytes += size;
    if (size == 0) return Status::ok();  // pwrite of nothing changes nothing, not even the size
    if (current.size() < end) current.resize(end, '\0');
    current.replace(offset, size, static_cast<const char*>(data), size);
    node_->unsynced.push_back(UnsyncedOperation{false, offset, std::string(static_cast<const char*>(data), size)});
    return Status::ok();
  }

  Result<std::size_t> read_at(std::uint64_t offset, void* buffer, std::size_t size) const override {
    std::lock_guard guard(state_->mutex);
    if (generation_ != state_->generation) return invalidated_handle();
    const std::string& current = node_->current;
    if (offset >= current.size()) return std::size_t{0};
    const std::size_t count = std::min<std::uint64_t>(size, current.size() - offset);
    current.copy(static_cast<char*>(buffer), count, offset);
    return count;
  }

  Result<std::optional<std::size_t>> read_at_if_cached(std::uint64_t offset, void* buffer, std::size_t size) const override {
    {
      std::lock_guard guard(state_->mutex);
      if (state_->cold_reads) {
        ++state_->counters.cold_reads;
        return std::optional<std::size_t>();
      }
    }
    auto got = read_at(offset, buffer, size);
    if (!got) return got.status();
    return std::optional<std::size_t>(*got);
  }

  void will_need(std::uint64_t offset, std::uint64_t size) const override {
    (void)offset;
    std::lock_guard guard(state_->mutex);
    ++state_->counters.will_need_hints;
    state_->counters.will_need_bytes += size;
  }

  Status sync_data() override { return sync_contents("fdatasync"); }
  Status sync() override { return sync_contents("fsync"); }

  Status truncate(std::uint64_t size) override {
    std::lock_guard guard(state_->mutex);
    if (generation_ != state_->generation) return invalidated_handle();
    if (!writable_) return io::status_from_errno(EBADF, "truncate", path_);
    if (state_->take_fault(FaultFileSystem::Operation::truncate)) return injected_fault("truncate", path_);
    if (size > FaultFileSystem::file_size_max_bytes) return io::status_from_errno(EFBIG, "truncate", path_);
    ++state_->counters.truncates;
    node_->current.resize(size, '\0');
    node_->unsynced.push_back(UnsyncedOperation{true, size, {}});
    return Status::ok();
  }

  Result<std::uint64_t> size() const override {
    std::lock_guard guard(state_->mutex);
    if (generation_ != state_->generation) return invalidated_handle();
    return static_cast<std::uint64_t>(node_->current.size());
  }

 private:
  Status sync_contents(std::string_view operation) {
    std::lock_guard guard(state_->mutex);
    if (generation_ != state_->generation) return invalidated_handle();
    // A failed sync leaves the unsynced list as it was: nothing became durable.
    if (state_->take_fault(FaultFileSystem::Operation::sync)) return injected_fault(operation, path_);
    ++state_->counters.syncs;
    node_->durable = node_->current;
    node_->unsynced.clear();
    return Status::ok();
  }

  // state_ first: members die in reverse order, so the node goes before the state.
  std::shared_ptr<State> state_;
  std::shared_ptr<FileNode> node_;
  std::filesystem::path path_;
  bool writable_;
  std::uint64_t generation_;
};

class FaultFileLock final : public FileLock {
 public:
  FaultFileLock(std::shared_ptr<State> state, std::string key, std::uint64_t id)
      : state_(std::move(state)), key_(std::move(key)), id_(id) {}

  ~FaultFileLock() override {
    std::lock_guard guard(state_->mutex);
    // After a crash the path may be locked again by someone else: release only our own.
    auto found = state_->locks.find(key_);
    if (found != state_->locks.end() && found->second == id_) state_->locks.erase(found);
  }

 private:
  std::shared_ptr<State> state_;
  std::string key_;
  std::uint64_t id_;
};

}  // namespace

FaultFileSystem::FaultFileSystem() : state_(std::make_shared<State>()) {}

FaultFileSystem::~FaultFileSystem() {
  // Handles may keep the state alive; the directory tree is not theirs to keep.
  std::lock_guard guard(state_->mutex);
  state_->root->entries.clear();
  state_->root->durable_entries.clear();
  state_->break_directory_cycles({});
}

Result<std::unique_ptr<File>> FaultFileSystem::open(const std::filesystem::path& path, OpenMode mode) {
  std::lock_guard guard(state_->mutex);
  if (state_->take_fault(Operation::open)) return injected_fault("open", path);
  const std::vector<std::string> components = components_of(path);
  if (components.empty()) return io::status_from_errno(EISDIR, "open", path);
  DirectoryNode* parent = state_->find_parent(components);
  if (parent == nullptr) return io::status_from_errno(ENOENT, "open", path);

  std::shared_ptr<FileNode> node;
  auto found = parent->entries.find(components.back());
  if (found != parent->entries.end()) {
    const auto* file = std::get_if<std::shared_ptr<FileNode>>(&found->second);
    if (file == nullptr) return io::status_from_errno(EISDIR, "open", path);
    node = *file;
    if (mode == OpenMode::create_truncate && !node->current.empty()) {
      node->current.clear();
      node->unsynced.push_back(UnsyncedOperation{true, 0, {}});
    }
  } else {
    if (mode == OpenMode::read_only || mode == OpenMode::read_write) {
      return io::status_from_errno(ENOENT, "open", path);
    }
    node = std::make_shared<FileNode>();
    parent->entries.emplace(components.back(), node);
  }
  ++state_->counters.opens;
  if (++node->open_handles == 1) state_->track_open_file(node);
  return std::unique_ptr<File>(new FaultFile(state_, std::move(node), path, mode != OpenMode::read_only));
}

Status FaultFileSystem::create_directories(const std::filesystem::path& path) {
  std::lock_guard guard(state_->mutex);
  DirectoryNode* directory = state_->root.get();
  for (const std::string& name : components_of(path)) {
    auto found = directory->entries.find(name);
    if (found == directory->entries.end()) {
      found = directory->entries.emplace(name, state_->new_directory()).first;
    }
    directory = as_directory(found->second);
    if (directory == nullptr) return io::status_from_errno(ENOTDIR, "mkdir", path);
  }
  return Status::ok();
}

Status FaultFileSystem::sync_directory(const std::filesystem::path& path) {
  std::lock_guard guard(state_->mutex);
  if (state_->take_fault(Operation::sync_directory)) return injected_fault("fsync directory", path);
  const std::vector<std::string> components = components_of(path);
  DirectoryNode* directory = state_->find_directory(components, components.size());
  if (directory == nullptr) return io::status_from_errno(ENOENT, "open directory", path);
  ++state_->counters.directory_syncs;
  directory->durable_entries = directory->entries;
  return Status::ok();
}

Status FaultFileSystem::rename(const std::filesystem::path& from, const std::filesystem::path& to) {
  std::lock_guard guard(state_->mutex);
  if (state_->take_fault(Operation::rename)) return injected_fault("rename", from);
  const std::vector<std::string> from_components = components_of(from);
  const std::vector<std::string> to_components = components_of(to);
  if (from_components.empty() || to_components.empty()) return io::status_from_errno(EBUSY, "rename", from);
  DirectoryNode* from_parent = state_->find_parent(from_components);
  DirectoryNode* to_parent = state_->find_parent(to_components);
  if (from_parent == nullptr || to_parent == nullptr) return io::status_from_errno(ENOENT, "rename", from);
  auto source = from_parent->entries.find(from_components.back());
  if (source == from_parent->entries.end()) return io::status_from_errno(ENOENT, "rename", from);
  if (from_components == to_components) {
    ++state_->counters.renames;
    return Status::ok();
  }

  if (DirectoryNode* moving = as_directory(source->second)) {
    // A directory cannot move below itself (EINVAL), which would detach a cycle.
    for (std::size_t count = 0; count < to_components.size(); ++count) {
      if (state_->find_directory(to_components, count) == moving) return io::status_from_errno(EINVAL, "rename", from);
    }
  }
  auto target = to_parent->entries.find(to_components.back());
  if (target != to_parent->entries.end()) {
    // Two names of one object (a crash can leave a hard link): POSIX does nothing.
    if (target->second == source->second) {
      ++state_->counters.renames;
      return Status::ok();
    }
    const bool source_is_directory = as_directory(source->second) != nullptr;
    DirectoryNode* target_directory = as_directory(target->second);
    if (source_is_directory && target_directory == nullptr) return io::status_from_errno(ENOTDIR, "rename", to);
    if (!source_is_directory && target_directory != nullptr) return io::status_from_errno(EISDIR, "rename", to);
    if (target_directory != nullptr && !target_directory->entries.empty()) {
      return io::status_from_errno(ENOTEMPTY, "rename", to);
    }
  }
  Entry moved = source->second;
  from_parent->entries.erase(source);
  to_parent->entries.insert_or_assign(to_components.back(), std::move(moved));
  ++state_->counters.renames;
  return Status::ok();
}

Status FaultFileSystem::remove(const std::filesystem::path& path) {
  std::lock_guard guard(state_->mutex);
  const std::vector<std::string> components = components_of(path);
  if (components.empty()) return io::status_from_errno(EBUSY, "remove", path);
  DirectoryNode* parent = state_->find_parent(components);
  if (parent == nullptr) return Status::ok();
  auto found = parent->entries.find(components.back());
  if (found == parent->entries.end()) return Status::ok();
  if (DirectoryNode* directory = as_directory(found->second); directory != nullptr && !directory->entries.empty()) {
    return io::status_from_errno(ENOTEMPTY, "remove", path);
  }
  parent->entries.erase(found);
  return Status::ok();
}

Status FaultFileSystem::remove_all(const std::filesystem::path& path) {
  std::lock_guard guard(state_->mutex);
  const std::vector<std::string> components = components_of(path);
  if (components.empty()) {
    state_->root->entries.clear();
    return Status::ok();
  }
  if (DirectoryNode* parent = state_->find_parent(components)) parent->entries.erase(components.back());
  return Status::ok();
}

Result<std::vector<std::string>> FaultFileSystem::list_directory(const std::filesystem::path& path) {
  std::lock_guard guard(state_->mutex);
  const std::vector<std::string> components = components_of(path);
  DirectoryNode* directory = state_->find_directory(components, components.size());
  if (directory == nullptr) {
    const int error_number = state_->find_entry(components) != nullptr ? ENOTDIR : ENOENT;
    return io::status_from_errno(error_number, "list", path);
  }
  std::vector<std::string> names;
  names.reserve(directory->entries.size());
  for (const auto& [name, entry] : directory->entries) names.push_back(name);
  return names;
}

bool FaultFileSystem::exists(const std::filesystem::path& path) {
  std::lock_guard guard(state_->mutex);
  const std::vector<std::string> components = components_of(path);
  return components.empty() || state_->find_entry(components) != nullptr;
}

bool FaultFileSystem::is_directory(const std::filesystem::path& path) {
  std::lock_guard guard(state_->mutex);
  const std::vector<std::string> components = components_of(path);
  return state_->find_directory(components, components.size()) != nullptr;
}

Result<std::unique_ptr<FileLock>> FaultFileSystem::lock(const std::filesystem::path& path) {
  std::lock_guard guard(state_->mutex);
  const std::vector<std::string> components = components_of(path);
  if (components.empty()) return io::status_from_errno(EISDIR, "open lock file", path);
  DirectoryNode* parent = state_->find_parent(components);
  if (parent == nullptr) return io::status_from_errno(ENOENT, "open lock file", path);
  auto found = parent->entries.find(components.back());
  if (found == parent->entries.end()) {
    parent->entries.emplace(components.back(), std::make_shared<FileNode>());
  } else if (as_directory(found->second) != nullptr) {
    return io::status_from_errno(EISDIR, "open lock file", path);
  }
  std::string key = display_of(components);
  if (state_->locks.contains(key)) {
    return Status(ErrorCode::store_locked, "data directory is in use (lock file " + path.string() + " is held)");
  }
  const std::uint64_t id = state_->next_lock_id++;
  state_->locks.emplace(key, id);
  return std::unique_ptr<FileLock>(new FaultFileLock(state_, std::move(key), id));
}

void FaultFileSystem::simulate_power_loss(std::uint64_t seed, PowerLossMode mode) {
  std::lock_guard guard(state_->mutex);
  state_->start_new_generation();
  std::vector<FileNode*> reachable_files;
  state_->revert_namespace(reachable_files);
  SeededRandom random(seed);
  for (FileNode* file : reachable_files) crash_contents(*file, mode, random);
}

void FaultFileSystem::make_all_durable() {
  std::lock_guard guard(state_->mutex);
  std::vector<DirectoryNode*> pending{state_->root.get()};
  while (!pending.empty()) {
    DirectoryNode* directory = pending.back();
    pending.pop_back();
    directory->durable_entries = directory->entries;
    for (const auto& [name, entry] : directory->entries) {
      if (DirectoryNode* child = as_directory(entry)) {
        pending.push_back(child);
      } else {
        FileNode* file = as_file(entry);
        file->durable = file->current;
        file->unsynced.clear();
      }
    }
  }
}

void FaultFileSystem::simulate_process_crash() {
  std::lock_guard guard(state_->mutex);
  state_->start_new_generation();
}

void FaultFileSystem::fail_after(Operation operation, std::uint64_t count) {
  std::lock_guard guard(state_->mutex);
  state_->fail_countdown[static_cast<std::size_t>(operation)] = count;
}

void FaultFileSystem::clear_faults() {
  std::lock_guard guard(state_->mutex);
  state_->fail_countdown.fill(0);
}

void FaultFileSystem::set_quota_bytes(std::uint64_t quota_bytes) {
  std::lock_guard guard(state_->mutex);
  state_->quota_bytes = quota_bytes;
}

std::uint64_t FaultFileSystem::used_bytes() const {
  std::lock_guard guard(state_->mutex);
  return state_->compute_used_bytes();
}

FaultFileSystem::Counters FaultFileSystem::counters() const {
  std::lock_guard guard(state_->mutex);
  return state_->counters;
}

void FaultFileSystem::set_cold_reads(bool cold) {
  std::lock_guard guard(state_->mutex);
  state_->cold_reads = cold;
}

void FaultFileSystem::reset_counters() {
  std::lock_guard guard(state_->mutex);
  state_->counters = Counters{};
}

std::optional<std::string> FaultFileSystem::current_contents(const std::filesystem::path& path) const {
  std::lock_guard guard(state_->mutex);
  auto file = state_->find_file(path);
  if (!file) return std::nullopt;
  return file->current;
}

std::optional<std::string> FaultFileSystem::durable_contents(const std::filesystem::path& path) const {
  std::lock_guard guard(state_->mutex);
  auto file = state_->find_file(path);
  if (!file) return std::nullopt;
  return file->durable;
}

Status FaultFileSystem::corrupt(const std::filesystem::path& path, std::uint64_t offset, const std::string& bytes) {
  std::lock_guard guard(state_->mutex);
  auto file = state_->find_file(path);
  if (!file) return io::status_from_errno(ENOENT, "corrupt", path);
  bool touched = false;
  for (std::string* image : {&file->current, &file->durable}) {
    if (offset >= image->size()) continue;
    const std::size_t count = std::min<std::uint64_t>(bytes.size(), image->size() - offset);
    image->replace(offset, count, bytes, 0, count);
    touched = true;
  }
  if (!touched && !bytes.empty()) {
    return Status(ErrorCode::invalid_argument, "corrupt " + path.string() + ": offset past the end of the file");
  }
  return Status::ok();
}

Status FaultFileSystem::flip_bit(const std::filesystem::path& path, std::uint64_t byte_offset, unsigned bit) {
  std::lock_guard guard(state_->mutex);
  if (bit > 7) return Status(ErrorCode::invalid_argument, "flip_bit: bit must be 0..7");
  auto file = state_->find_file(path);
  if (!file) return io::status_from_errno(ENOENT, "flip_bit", path);
  bool touched = false;
  for (std::string* image : {&file->current, &file->durable}) {
    if (byte_offset >= image->size()) continue;
    (*image)[byte_offset] = static_cast<char>(static_cast<unsigned char>((*image)[byte_offset]) ^ (1u << bit));
    touched = true;
  }
  if (!touched) return Status(ErrorCode::invalid_argument, "flip_bit " + path.string() + ": offset past the end");
  return Status::ok();
}

std::vector<std::filesystem::path> FaultFileSystem::all_files() const {
  std::lock_guard guard(state_->mutex);
  std::vector<std::filesystem::path> files;
  std::vector<std::pair<std::filesystem::path, const DirectoryNode*>> pending{{"/", state_->root.get()}};
  while (!pending.empty()) {
    auto [directory_path, directory] = pending.back();
    pending.pop_back();
    for (const auto& [name, entry] : directory->entries) {
      if (const DirectoryNode* child = as_directory(entry)) {
        pending.emplace_back(directory_path / name, child);
      } else {
        files.push_back(directory_path / name);
      }
    }
  }
  std::sort(files.begin(), files.end());
  return files;
}

}  // namespace msgstore
