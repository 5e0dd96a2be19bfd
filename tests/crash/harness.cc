#include "crash/harness.h"

#include <gtest/gtest.h>
#include <malloc.h>
#include <unistd.h>

#include <chrono>
#include <random>
#include <cstdlib>
#include <thread>

#include "io/metadata_file.h"

namespace msgstore::crash {

// ---- Memory ---------------------------------------------------------------------------------
// Every crash cycle builds a fresh FaultFileSystem whose files are strings (a preallocated
// segment is a megabyte of zeros, copied for its unsynced write and again at each sync) and
// drops it afterwards. glibc maps each such block on its own and unmaps it when freed, so the
// pages were faulted in again every cycle: 40% of rewrite_crash_test's time was page faults,
// and it ran 6x slower than with the blocks kept in the heap (measured on seed 5: 2.8-3.7 s
// against 0.5-0.7 s). Linked into every crash test through this file.
namespace {
[[maybe_unused]] const bool heap_kept_for_file_images = [] {
  mallopt(M_MMAP_THRESHOLD, 32 * 1024 * 1024);
  mallopt(M_TRIM_THRESHOLD, 1024 * 1024 * 1024);
  return true;
}();
}  // namespace

// ---- Seeds ----------------------------------------------------------------------------------
std::uint64_t environment_u64(const char* name, std::uint64_t fallback) {
  const char* text = std::getenv(name);
  if (text == nullptr || *text == '\0') return fallback;
  char* end = nullptr;
  const unsigned long long value = std::strtoull(text, &end, 10);
  if (end == nullptr || *end != '\0') {
    std::fprintf(stderr, "%s=%s is not a number; using %llu\n", name, text, static_cast<unsigned long long>(fallback));
    return fallback;
  }
  return value;
}

std::vector<std::uint64_t> seeds_from_environment(std::uint64_t default_count) {
  if (const char* one = std::getenv("CRASH_SEED"); one != nullptr && *one != '\0') {
    return {environment_u64("CRASH_SEED", 1)};
  }
  const std::uint64_t count = environment_u64("CRASH_SEEDS", default_count);
  const std::uint64_t first = environment_u64("CRASH_SEED_FIRST", 1);
  std::vector<std::uint64_t> seeds;
  seeds.reserve(count);
  for (std::uint64_t i = 0; i < count; ++i) seeds.push_back(first + i);
  return seeds;
}

std::string replay_command(std::uint64_t seed) {
  std::string binary = "<test binary>";
  char buffer[4096];
  const ssize_t length = ::readlink("/proc/self/exe", buffer, sizeof buffer - 1);
  if (length > 0) {
    binary.assign(buffer, static_cast<std::size_t>(length));
    std::error_code error;
    const auto relative = std::filesystem::relative(binary, std::filesystem::current_path(), error);
    if (!error && !relative.empty() && relative.native().size() < binary.size()) {
      binary = relative.native();
      if (binary.find('/') == std::string::npos || binary.rfind("..", 0) != 0) binary = "./" + binary;
    }
  }
  std::string filter;
  if (const auto* info = ::testing::UnitTest::GetInstance()->current_test_info()) {
    filter = std::string(" --gtest_filter=") + info->test_suite_name() + "." + info->name();
  }
  return "CRASH_SEED=" + std::to_string(seed) + " " + binary + filter;
}

int failures_so_far() {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  if (info == nullptr) return 0;
  const ::testing::TestResult* result = info->result();
  int failed = 0;
  for (int i = 0; i < result->total_part_count(); ++i) {
    if (result->GetTestPartResult(i).failed()) ++failed;
  }
  return failed;
}

// ---- ProcessFileSystem ----------------------------------------------------------------------
struct ProcessFileSystem::Shared {
  std::shared_ptr<FaultFileSystem> disk;
  std::atomic<bool> dead{false};
  std::atomic<int> in_flight{0};
  std::atomic<std::uint64_t> calls{0};
  std::atomic<std::uint64_t> mutations{0};
  std::atomic<std::uint64_t> die_at{0};  // die once mutations reaches this (0: never)
  mutable std::mutex mutex;              // guards faults and metadata versions
  std::vector<Fault> faults;
  std::map<std::filesystem::path, std::vector<std::string>> metadata_versions;
  std::map<std::filesystem::path, std::uint64_t> last_sync_starts;
  RenameHook before_rename;  // set while no other thread runs (set_before_rename)

  // Holds a call in flight; `alive` is false once the process died.
  class Call {
   public:
    Call(Shared& shared, bool mutating) : shared_(shared), mutating_(mutating) {
      shared_.in_flight.fetch_add(1);
      alive_ = !shared_.dead.load();
      if (alive_) sequence_ = shared_.calls.fetch_add(1) + 1;
    }
    ~Call() {
      if (alive_ && mutating_) {
        const std::uint64_t done = shared_.mutations.fetch_add(1) + 1;
        const std::uint64_t die_at = shared_.die_at.load();
        if (die_at != 0 && done >= die_at) shared_.dead.store(true);
      }
      shared_.in_flight.fetch_sub(1);
    }
    bool alive() const { return alive_; }
    std::uint64_t sequence() const { return sequence_; }  // calls() including this one

   private:
    Shared& shared_;
    bool mutating_;
    bool alive_ = false;
    std::uint64_t sequence_ = 0;
  };

  static Status dead_status() { return Status(ErrorCode::io_error, "the process is dead (simulated crash)"); }

  Status observe(Status status, const char* operation, const std::filesystem::path& path) {
    if (!status.is_ok() && (status.code() == ErrorCode::no_space ||
                            status.message().find("(injected fault)") != std::string::npos)) {
      std::lock_guard lock(mutex);
      faults.push_back(Fault{calls.load(), operation, path, status.code()});
    }
    return status;
  }
};

namespace {

class ProcessFile final : public File {
 public:
  ProcessFile(std::shared_ptr<ProcessFileSystem::Shared> shared, std::unique_ptr<File> file, std::filesystem::path path)
      : shared_(std::move(shared)), file_(std::move(file)), path_(path.lexically_normal()) {}

  Status write_at(std::uint64_t offset, const void* data, std::size_t size) override {
    ProcessFileSystem::Shared::Call call(*shared_, true);
    if (!call.alive()) return ProcessFileSystem::Shared::dead_status();
    return shared_->observe(file_->write_at(offset, data, size), "write", path_);
  }
  Result<std::size_t> read_at(std::uint64_t offset, void* buffer, std::size_t size) const override {
    ProcessFileSystem::Shared::Call call(*shared_, false);
    if (!call.alive()) return ProcessFileSystem::Shared::dead_status();
    return file_->read_at(offset, buffer, size);
  }
  Status sync_data() override {
    ProcessFileSystem::Shared::Call call(*shared_, true);
    if (!call.alive()) return ProcessFileSystem::Shared::dead_status();
    return synced(call, file_->sync_data());
  }
  Status sync() override {
    ProcessFileSystem::Shared::Call call(*shared_, true);
    if (!call.alive()) return ProcessFileSystem::Shared::dead_status();
    return synced(call, file_->sync());
  }
  Status truncate(std::uint64_t size) override {
    ProcessFileSystem::Shared::Call call(*shared_, true);
    if (!call.alive()) return ProcessFileSystem::Shared::dead_status();
    return shared_->observe(file_->truncate(size), "truncate", path_);
  }
  Result<std::uint64_t> size() const override {
    ProcessFileSystem::Shared::Call call(*shared_, false);
    if (!call.alive()) return ProcessFileSystem::Shared::dead_status();
    return file_->size();
  }

 private:
  Status synced(const ProcessFileSystem::Shared::Call& call, Status status) {
    if (status.is_ok()) {
      std::lock_guard lock(shared_->mutex);
      std::uint64_t& start = shared_->last_sync_starts[path_];
      start = std::max(start, call.sequence());
    }
    return shared_->observe(std::move(status), "sync", path_);
  }

  std::shared_ptr<ProcessFileSystem::Shared> shared_;
  std::unique_ptr<File> file_;
  std::filesystem::path path_;
};

bool is_metadata_path(const std::filesystem::path& path) { return path.extension() == ".meta"; }

}  // namespace

ProcessFileSystem::ProcessFileSystem(std::shared_ptr<FaultFileSystem> disk)
    : disk_(disk), shared_(std::make_shared<Shared>()) {
  shared_->disk = std::move(disk);
}

ProcessFileSystem::~ProcessFileSystem() = default;

void ProcessFileSystem::kill() {
  shared_->dead.store(true);
  while (shared_->in_flight.load() > 0) std::this_thread::yield();
}

void ProcessFileSystem::power_loss(std::uint64_t seed, PowerLossMode mode) {
  kill();
  disk_->simulate_power_loss(seed, mode);
}

void ProcessFileSystem::process_crash() {
  kill();
  disk_->simulate_process_crash();
}

bool ProcessFileSystem::dead() const { return shared_->dead.load(); }

void ProcessFileSystem::die_after(std::uint64_t count) {
  shared_->die_at.store(count == 0 ? 0 : shared_->mutations.load() + count);
}

void ProcessFileSystem::set_before_rename(RenameHook hook) { shared_->before_rename = std::move(hook); }

std::uint64_t ProcessFileSystem::calls() const { return shared_->calls.load(); }
std::uint64_t ProcessFileSystem::mutations() const { return shared_->mutations.load(); }

std::vector<ProcessFileSystem::Fault> ProcessFileSystem::faults() const {
  std::lock_guard lock(shared_->mutex);
  return shared_->faults;
}

std::map<std::filesystem::path, std::uint64_t> ProcessFileSystem::last_sync_starts() const {
  std::lock_guard lock(shared_->mutex);
  return shared_->last_sync_starts;
}

std::map<std::filesystem::path, std::vector<std::string>> ProcessFileSystem::metadata_versions() const {
  std::lock_guard lock(shared_->mutex);
  return shared_->metadata_versions;
}

Result<std::unique_ptr<File>> ProcessFileSystem::open(const std::filesystem::path& path, OpenMode mode) {
  const bool mutating = mode == OpenMode::create || mode == OpenMode::create_truncate;
  Shared::Call call(*shared_, mutating);
  if (!call.alive()) return Shared::dead_status();
  auto file = disk_->open(path, mode);
  if (!file) return shared_->observe(file.status(), "open", path);
  return std::unique_ptr<File>(new ProcessFile(shared_, std::move(*file), path));
}

Status ProcessFileSystem::create_directories(const std::filesystem::path& path) {
  Shared::Call call(*shared_, true);
  if (!call.alive()) return Shared::dead_status();
  return disk_->create_directories(path);
}

Status ProcessFileSystem::sync_directory(const std::filesystem::path& path) {
  Shared::Call call(*shared_, true);
  if (!call.alive()) return Shared::dead_status();
  return shared_->observe(disk_->sync_directory(path), "sync_directory", path);
}

Status ProcessFileSystem::rename(const std::filesystem::path& from, const std::filesystem::path& to) {
  Shared::Call call(*shared_, true);
  if (!call.alive()) return Shared::dead_status();
  if (shared_->before_rename) MSGSTORE_RETURN_IF_ERROR(shared_->before_rename(from, to));
  Status renamed = shared_->observe(disk_->rename(from, to), "rename", from);
  if (renamed.is_ok() && is_metadata_path(to)) {
    if (auto content = disk_->current_contents(to)) {
      std::lock_guard lock(shared_->mutex);
      shared_->metadata_versions[to.lexically_normal()].push_back(std::move(*content));
    }
  }
  return renamed;
}

Status ProcessFileSystem::remove(const std::filesystem::path& path) {
  Shared::Call call(*shared_, true);
  if (!call.alive()) return Shared::dead_status();
  return disk_->remove(path);
}

Status ProcessFileSystem::remove_all(const std::filesystem::path& path) {
  Shared::Call call(*shared_, true);
  if (!call.alive()) return Shared::dead_status();
  return disk_->remove_all(path);
}

Result<std::vector<std::string>> ProcessFileSystem::list_directory(const std::filesystem::path& path) {
  Shared::Call call(*shared_, false);
  if (!call.alive()) return Shared::dead_status();
  return disk_->list_directory(path);
}

bool ProcessFileSystem::exists(const std::filesystem::path& path) {
  Shared::Call call(*shared_, false);
  return call.alive() && disk_->exists(path);
}

bool ProcessFileSystem::is_directory(const std::filesystem::path& path) {
  Shared::Call call(*shared_, false);
  return call.alive() && disk_->is_directory(path);
}

Result<std::unique_ptr<FileLock>> ProcessFileSystem::lock(const std::filesystem::path& path) {
  Shared::Call call(*shared_, false);
  if (!call.alive()) return Shared::dead_status();
  return disk_->lock(path);
}

// ---- Helpers --------------------------------------------------------------------------------
std::vector<std::string> check_metadata_files(const FaultFileSystem& disk) {
  std::vector<std::string> problems;
  for (const std::filesystem::path& path : disk.all_files()) {
    if (path.extension() != ".meta") continue;
    const std::string name = path.filename().string();
    const std::string kind = name == "store.meta" ? "store" : name == "stream.meta" ? "stream" : name == "partition.meta" ? "partition" : "";
    if (kind.empty()) {
      problems.push_back("unknown metadata file " + path.string());
      continue;
    }
    auto content = disk.current_contents(path);
    if (!content) continue;
    auto decoded = io::decode_metadata(kind, 1, *content);
    if (!decoded) problems.push_back(path.string() + " is unreadable: " + decoded.status().to_string());
  }
  return problems;
}

StoreOptions replayable_store_options(std::shared_ptr<FileSystem> file_system) {
  StoreOptions options;
  options.file_system = std::move(file_system);
  options.background_maintenance = false;
  options.index_threads = 0;
  return options;
}

Result<std::unique_ptr<Store>> open_timed(const std::filesystem::path& directory, std::shared_ptr<FileSystem> file_system,
                                          double& milliseconds) {
  return open_timed(directory, StoreOptions{.file_system = std::move(file_system), .background_maintenance = false}, milliseconds);
}

Result<std::unique_ptr<Store>> open_timed(const std::filesystem::path& directory, StoreOptions options, double& milliseconds) {
  const auto started = std::chrono::steady_clock::now();
  auto store = Store::open(directory, std::move(options));
  milliseconds = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started).count();
  return store;
}

std::vector<WorkloadStep> make_workload(std::uint64_t seed, const WorkloadShape& shape) {
  std::mt19937_64 random(seed);
  std::vector<WorkloadStep> steps;
  for (std::size_t i = 0; i < shape.steps; ++i) {
    WorkloadStep step;
    if (random() % shape.maintenance_one_in == 0) {
      step.maintenance = true;
    } else {
      step.stream = random() % 4 == 0 ? shape.other_stream : shape.stream;
      step.key = "k" + std::to_string(random() % shape.keys);
      step.count = random() % shape.batch_one_in == 0 ? 2 + random() % 4 : 1;
      step.filler = 20 + random() % shape.filler_spread_bytes;
    }
    steps.push_back(step);
  }
  return steps;
}

StepMessages step_messages(const WorkloadStep& step, std::uint64_t& sequence, Checker& checker) {
  StepMessages result;
  result.subject = step.stream + ".m";
  result.key = step.key;
  for (std::size_t m = 0; m < step.count; ++m) {
    const MessageId id{0, sequence++};
    checker.attempted(id);
    result.ids.push_back(id);
    result.payloads.push_back(make_payload(id, step.filler + m));
  }
  return result;
}

std::vector<OutgoingMessage> StepMessages::outgoing() const {
  std::vector<OutgoingMessage> messages;
  for (const std::string& payload : payloads) {
    OutgoingMessage message;
    message.subject = subject;
    message.key = key;
    message.payload = payload;
    messages.push_back(message);
  }
  return messages;
}

}  // namespace msgstore::crash
