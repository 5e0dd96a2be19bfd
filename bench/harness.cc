#include "harness.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/resource.h>
#include <sys/statvfs.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <latch>
#include <mutex>
#include <random>
#include <sstream>
#include <thread>

#ifndef MSGSTORE_BENCH_BUILD_TYPE
#define MSGSTORE_BENCH_BUILD_TYPE "unknown"
#endif

namespace msgstore::bench {
namespace {

// Payload starts rotate through this many positions of the shared buffer.
constexpr std::size_t payload_start_positions = 4096;
constexpr std::size_t distinct_keys = 1000;

double timeval_seconds(const timeval& value) { return static_cast<double>(value.tv_sec) + static_cast<double>(value.tv_usec) / 1e6; }

// /proc/self/mountinfo escapes spaces and friends as \ooo.
std::string unescape_mount_field(const std::string& field) {
  std::string result;
  for (std::size_t i = 0; i < field.size(); ++i) {
    if (field[i] == '\\' && i + 3 < field.size()) {
      const std::string octal = field.substr(i + 1, 3);
      if (octal.size() == 3 && octal.find_first_not_of("01234567") == std::string::npos) {
        result.push_back(static_cast<char>(std::stoi(octal, nullptr, 8)));
        i += 3;
        continue;
      }
    }
    result.push_back(field[i]);
  }
  return result;
}

std::string file_system_type_of(const std::filesystem::path& path) {
  std::error_code error;
  const std::string target = std::filesystem::weakly_canonical(path, error).string();
  std::ifstream mountinfo("/proc/self/mountinfo");
  std::string line;
  std::string best_type = "unknown";
  std::size_t best_length = 0;
  while (std::getline(mountinfo, line)) {
    std::istringstream fields(line);
    std::string id, parent, device, root, mount_point;
    fields >> id >> parent >> device >> root >> mount_point;
    const std::size_t separator = line.find(" - ");
    if (separator == std::string::npos) continue;
    std::istringstream tail(line.substr(separator + 3));
    std::string type;
    tail >> type;
    mount_point = unescape_mount_field(mount_point);
    const bool covers = target == mount_point || mount_point == "/" ||
                        (target.compare(0, mount_point.size(), mount_point) == 0 && target.size() > mount_point.size() &&
                         target[mount_point.size()] == '/');
    if (covers && mount_point.size() >= best_length) {
      best_length = mount_point.size();
      best_type = type;
    }
  }
  return best_type;
}

}  // namespace

double seconds_between(SteadyClock::time_point begin, SteadyClock::time_point end) {
  return std::chrono::duration<double>(end - begin).count();
}

std::vector<RunResult> run_interleaved(const std::vector<PublishSession*>& sessions, const std::vector<RunLimits>& limits,
                                       unsigned slices, unsigned rotation, const std::function<void()>& before_slice) {
  std::vector<RunResult> totals(sessions.size());
  if (sessions.empty() || slices == 0 || limits.size() != sessions.size()) return totals;
  for (unsigned round = 0; round < slices; ++round) {
    for (std::size_t turn = 0; turn < sessions.size(); ++turn) {
      const std::size_t index = (turn + rotation + round) % sessions.size();
      RunResult& total = totals[index];
      if (!total.ok()) continue;
      const RunLimits& limit = limits[index];
      const std::uint64_t slice_messages = limit.messages_max / slices + (round < limit.messages_max % slices ? 1 : 0);
      if (before_slice) before_slice();
      const RunResult slice =
          sessions[index]->run_slice(slice_messages, deadline_after(SteadyClock::now(), limit.seconds_max / slices));
      total.messages += slice.messages;
      total.elapsed_seconds += slice.elapsed_seconds;
      total.cpu_seconds += slice.cpu_seconds;
      total.bytes_written += slice.bytes_written;
      total.time_bound_hit = total.time_bound_hit || slice.time_bound_hit;
      if (!slice.ok()) total.error = slice.error;
    }
  }
  return totals;
}

SteadyClock::time_point deadline_after(SteadyClock::time_point begin, double seconds) {
  return begin + std::chrono::duration_cast<SteadyClock::duration>(std::chrono::duration<double>(seconds));
}

double process_cpu_seconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return timeval_seconds(usage.ru_utime) + timeval_seconds(usage.ru_stime);
}

PayloadSource::PayloadSource(std::size_t payload_bytes) : payload_bytes_(payload_bytes) {
  buffer_.resize(payload_bytes + payload_start_positions);
  std::mt19937_64 generator(20240601);
  for (char& byte : buffer_) byte = static_cast<char>(generator() & 0xFF);
  keys_.reserve(distinct_keys);
  for (std::size_t index = 0; index < distinct_keys; ++index) {
    char key[16];
    std::snprintf(key, sizeof key, "key-%03zu", index);
    keys_.emplace_back(key);
  }
}

std::string_view PayloadSource::payload(std::uint64_t index) const {
  const std::size_t start = static_cast<std::size_t>((index * 61) % payload_start_positions);
  return std::string_view(buffer_.data() + start, payload_bytes_);
}

std::string_view PayloadSource::key(std::uint64_t index) const { return keys_[index % distinct_keys]; }

ScratchDirectory::ScratchDirectory(const std::filesystem::path& parent, const std::string& prefix) {
  static std::atomic<unsigned> counter{0};
  std::error_code error;
  std::filesystem::create_directories(parent, error);
  for (int attempt = 0; attempt < 100; ++attempt) {
    auto candidate = parent / (prefix + "-" + std::to_string(::getpid()) + "-" + std::to_string(counter.fetch_add(1)));
    if (std::filesystem::create_directory(candidate, error)) {
      path_ = std::move(candidate);
      return;
    }
  }
}

ScratchDirectory::~ScratchDirectory() {
  if (path_.empty()) return;
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

std::uint64_t file_bytes_with_suffix(const std::filesystem::path& directory, std::string_view suffix) {
  std::uint64_t total = 0;
  std::error_code error;
  for (auto it = std::filesystem::recursive_directory_iterator(directory, error);
       !error && it != std::filesystem::recursive_directory_iterator(); it.increment(error)) {
    if (!it->is_regular_file(error)) continue;
    const std::string name = it->path().filename().string();
    if (name.size() >= suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0) {
      total += it->file_size(error);
    }
  }
  return total;
}

void warm_page_cache(const std::filesystem::path& directory, std::uint64_t bytes) {
  constexpr std::size_t piece_bytes = 1 << 20;
  const auto path = directory / "page-cache-warmup.tmp";
  const int descriptor = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (descriptor < 0) return;  // a warm-up is an optimisation of the conditions, never required
  std::vector<char> piece(piece_bytes, 'w');
  for (std::uint64_t written = 0; written < bytes; written += piece_bytes) {
    if (::pwrite(descriptor, piece.data(), piece_bytes, static_cast<off_t>(written)) <= 0) break;
  }
  ::close(descriptor);
  ::unlink(path.c_str());
}

std::uint64_t free_disk_bytes(const std::filesystem::path& path) {
  struct statvfs info {};
  if (::statvfs(path.c_str(), &info) != 0) return 0;
  return static_cast<std::uint64_t>(info.f_bavail) * info.f_frsize;
}

std::uint64_t proc_status_kib(const char* field) {
  std::ifstream status("/proc/self/status");
  std::string line;
  const std::size_t field_length = std::strlen(field);
  while (std::getline(status, line)) {
    if (line.compare(0, field_length, field) == 0 && line.size() > field_length && line[field_length] == ':') {
      return std::strtoull(line.c_str() + field_length + 1, nullptr, 10);
    }
  }
  return 0;
}

MachineDescription describe_machine(const std::filesystem::path& benchmark_directory) {
  MachineDescription machine;
  {
    std::ifstream cpuinfo("/proc/cpuinfo");
    std::string line;
    while (std::getline(cpuinfo, line)) {
      if (line.compare(0, 10, "model name") == 0) {
        const std::size_t colon = line.find(':');
        if (colon != std::string::npos) machine.processor_model = line.substr(line.find_first_not_of(" \t", colon + 1));
        break;
      }
    }
  }
  machine.logical_processors = std::thread::hardware_concurrency();
  {
    std::ifstream meminfo("/proc/meminfo");
    std::string name;
    std::uint64_t kib = 0;
    while (meminfo >> name >> kib) {
      if (name == "MemTotal:") {
        machine.memory_bytes = kib * 1024;
        break;
      }
      meminfo.ignore(1 << 10, '\n');
    }
  }
  machine.file_system_type = file_system_type_of(benchmark_directory);
  utsname names{};
  if (::uname(&names) == 0) machine.kernel_release = names.release;
  machine.sqlite_version = sqlite3_libversion();
#if defined(__clang__)
  machine.compiler = "clang " __clang_version__;
#elif defined(__GNUC__)
  machine.compiler = "gcc " __VERSION__;
#endif
  machine.build_type = MSGSTORE_BENCH_BUILD_TYPE;
  return machine;
}

RunResult run_concurrently(unsigned threads, std::uint64_t messages, SteadyClock::time_point deadline,
                           std::uint64_t& next_index,
                           const std::function<bool(unsigned thread_index, std::uint64_t message_index, std::string& error)>& publish_one) {
  RunResult result;
  const std::uint64_t first_index = next_index;
  std::atomic<std::uint64_t> claimed{0};
  std::atomic<std::uint64_t> published{0};
  std::atomic<bool> out_of_time{false};
  std::atomic<bool> failed{false};
  std::mutex error_mutex;
  std::latch start_line(static_cast<std::ptrdiff_t>(threads) + 1);
  auto worker = [&](unsigned thread_index) {
    start_line.arrive_and_wait();
    std::uint64_t mine = 0;
    std::string error;
    while (!failed.load(std::memory_order_relaxed)) {
      if (SteadyClock::now() >= deadline) {
        out_of_time = true;
        break;
      }
      const std::uint64_t claim = claimed.fetch_add(1, std::memory_order_relaxed);
      if (claim >= messages) break;
      if (!publish_one(thread_index, first_index + claim, error)) {
        if (error.empty()) {
          out_of_time = true;
        } else {
          std::lock_guard lock(error_mutex);
          if (result.error.empty()) result.error = error;
          failed = true;
        }
        break;
      }
      ++mine;
    }
    published.fetch_add(mine, std::memory_order_relaxed);
  };
  std::vector<std::thread> workers;
  workers.reserve(threads);
  for (unsigned index = 0; index < threads; ++index) workers.emplace_back(worker, index);
  const double cpu_begin = process_cpu_seconds();
  const auto begin = SteadyClock::now();
  start_line.arrive_and_wait();
  for (std::thread& thread : workers) thread.join();
  result.elapsed_seconds = seconds_between(begin, SteadyClock::now());
  result.cpu_seconds = process_cpu_seconds() - cpu_begin;
  result.messages = published.load();
  result.time_bound_hit = out_of_time.load() && result.messages < messages;
  next_index += std::min(claimed.load(), messages);
  return result;
}

}  // namespace msgstore::bench
