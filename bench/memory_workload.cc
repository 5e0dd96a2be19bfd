#include "memory_workload.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <map>
#include <sstream>
#include <thread>
#include <vector>

#include "harness.h"
#include "msgstore/store.h"

namespace msgstore::bench {
namespace {

constexpr std::size_t payload_bytes = 1024;
constexpr std::size_t batch_messages = 1000;
constexpr auto sample_period = std::chrono::milliseconds(10);
// Free space asked for on top of the target: segment framing, indexes, SQLite-free headroom.
constexpr std::uint64_t disk_margin_bytes_min = 512ull * 1024 * 1024;
// The child may take this long beyond its publish time limit to close and report.
constexpr double child_grace_seconds = 120;

std::string format_gib(std::uint64_t bytes) {
  char text[32];
  std::snprintf(text, sizeof text, "%.2f GiB", static_cast<double>(bytes) / (1024.0 * 1024 * 1024));
  return text;
}

}  // namespace

MemoryRun measure_publish_memory(const std::filesystem::path& parent_directory, std::uint64_t payload_bytes_target,
                                 double seconds_max) {
  MemoryRun run;
  run.payload_bytes_target = payload_bytes_target;
  std::error_code ignored;
  std::filesystem::create_directories(parent_directory, ignored);
  const std::uint64_t needed = payload_bytes_target + std::max(disk_margin_bytes_min, payload_bytes_target / 5);
  const std::uint64_t available = free_disk_bytes(parent_directory);
  if (available < needed) {
    run.skipped_reason = "needs " + format_gib(needed) + " free under --dir, only " + format_gib(available) + " available";
    return run;
  }
  ScratchDirectory scratch(parent_directory, "memory");
  if (!scratch.created()) {
    run.error = "could not create a scratch directory";
    return run;
  }

  int pipe_ends[2];
  if (::pipe2(pipe_ends, O_CLOEXEC) != 0) {
    run.error = std::string("pipe: ") + std::strerror(errno);
    return run;
  }
  const std::string directory_argument = (scratch.path() / "store").string();
  const std::string bytes_argument = std::to_string(payload_bytes_target);
  const std::string seconds_argument = std::to_string(seconds_max);
  const pid_t child = ::fork();
  if (child < 0) {
    run.error = std::string("fork: ") + std::strerror(errno);
    ::close(pipe_ends[0]);
    ::close(pipe_ends[1]);
    return run;
  }
  if (child == 0) {
    // A fresh image of this binary: nothing of the parent's heap stays resident.
    ::dup2(pipe_ends[1], STDOUT_FILENO);
    std::vector<char*> arguments = {const_cast<char*>("msgstore_bench"), const_cast<char*>(memory_child_flag),
                                    const_cast<char*>(directory_argument.c_str()),
                                    const_cast<char*>(bytes_argument.c_str()), const_cast<char*>(seconds_argument.c_str()),
                                    nullptr};
    ::execv("/proc/self/exe", arguments.data());
    _exit(127);
  }
  ::close(pipe_ends[1]);

  std::string output;
  const auto deadline = deadline_after(SteadyClock::now(), seconds_max + child_grace_seconds);
  bool killed = false;
  while (true) {
    const double remaining = seconds_between(SteadyClock::now(), deadline);
    if (remaining <= 0) {
      ::kill(child, SIGKILL);
      killed = true;
      break;
    }
    pollfd readable{pipe_ends[0], POLLIN, 0};
    const int ready = ::poll(&readable, 1, static_cast<int>(std::min(remaining, 1.0) * 1000) + 1);
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) continue;
    char buffer[4096];
    const ssize_t got = ::read(pipe_ends[0], buffer, sizeof buffer);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) break;  // the child closed its end: it is done
    output.append(buffer, static_cast<std::size_t>(got));
  }
  ::close(pipe_ends[0]);
  int status = 0;
  while (::waitpid(child, &status, 0) < 0 && errno == EINTR) {
  }
  if (killed) {
    run.error = "the child overran its time limit and was killed";
    return run;
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    run.error = "the child failed (status " + std::to_string(status) + ")";
  }

  std::map<std::string, std::string> fields;
  std::istringstream words(output);
  std::string word;
  while (words >> word) {
    const std::size_t equals = word.find('=');
    if (equals != std::string::npos) fields[word.substr(0, equals)] = word.substr(equals + 1);
  }
  auto number = [&](const char* name) -> std::uint64_t {
    auto found = fields.find(name);
    return found == fields.end() ? 0 : std::strtoull(found->second.c_str(), nullptr, 10);
  };
  run.payload_bytes_published = number("payload_bytes");
  run.log_bytes = number("log_bytes");
  run.baseline_rss_kib = number("baseline_rss_kib");
  run.peak_sampled_rss_kib = number("peak_rss_kib");
  run.high_water_rss_kib = number("hwm_kib");
  run.final_rss_kib = number("final_rss_kib");
  run.samples = number("samples");
  run.time_bound_hit = number("time_bound_hit") != 0;
  if (auto found = fields.find("seconds"); found != fields.end()) run.elapsed_seconds = std::strtod(found->second.c_str(), nullptr);
  if (auto found = fields.find("error"); found != fields.end() && found->second != "none" && run.error.empty()) {
    run.error = "child: " + found->second;
  }
  if (run.error.empty() && run.samples == 0) run.error = "the child reported nothing";
  return run;
}

int run_memory_child(int argc, char** argv) {
  if (argc != 5) {
    std::fprintf(stderr, "usage: msgstore_bench %s DIRECTORY PAYLOAD_BYTES SECONDS_MAX\n", memory_child_flag);
    return 2;
  }
  const std::filesystem::path directory = argv[2];
  const std::uint64_t payload_bytes_target = std::strtoull(argv[3], nullptr, 10);
  const double seconds_max = std::strtod(argv[4], nullptr);

  const std::uint64_t baseline_rss_kib = proc_status_kib("VmRSS");
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> peak_rss_kib{baseline_rss_kib};
  std::atomic<std::uint64_t> samples{0};
  std::thread sampler([&] {
    while (!stop.load()) {
      const std::uint64_t rss = proc_status_kib("VmRSS");
      if (rss > peak_rss_kib.load()) peak_rss_kib = rss;
      samples.fetch_add(1);
      std::this_thread::sleep_for(sample_period);
    }
  });

  std::string error = "none";
  std::uint64_t published_bytes = 0;
  bool time_bound_hit = false;
  const auto begin = SteadyClock::now();
  {
    const PayloadSource payloads(payload_bytes);
    auto store = Store::open(directory);
    if (!store) {
      error = "open:" + std::string(error_code_name(store.status().code()));
    } else {
      StreamConfig config;
      config.name = "bench";
      config.subjects = {"bench.>"};
      config.fsync = FsyncPolicy::never;  // segment_bytes stays at its default
      Status created = (*store)->create_stream(config);
      if (!created.is_ok()) error = "create_stream:" + std::string(error_code_name(created.code()));
      std::vector<OutgoingMessage> batch(batch_messages);
      std::uint64_t index = 0;
      const auto deadline = deadline_after(begin, seconds_max);
      while (error == "none" && published_bytes < payload_bytes_target) {
        if (SteadyClock::now() >= deadline) {
          time_bound_hit = true;
          break;
        }
        for (OutgoingMessage& message : batch) {
          message.subject = "bench.messages";
          message.key = payloads.key(index);
          message.payload = payloads.payload(index);
          ++index;
        }
        auto positions = (*store)->publish_batch(batch);
        if (!positions) {
          error = "publish_batch:" + std::string(error_code_name(positions.status().code()));
          break;
        }
        published_bytes += batch_messages * payload_bytes;
      }
      Status closed = (*store)->close();
      if (!closed.is_ok() && error == "none") error = "close:" + std::string(error_code_name(closed.code()));
    }
  }
  const double seconds = seconds_between(begin, SteadyClock::now());
  stop = true;
  sampler.join();
  std::printf("payload_bytes=%llu log_bytes=%llu baseline_rss_kib=%llu peak_rss_kib=%llu hwm_kib=%llu final_rss_kib=%llu "
              "samples=%llu seconds=%.3f time_bound_hit=%d error=%s\n",
              static_cast<unsigned long long>(published_bytes),
              static_cast<unsigned long long>(file_bytes_with_suffix(directory, ".log")),
              static_cast<unsigned long long>(baseline_rss_kib), static_cast<unsigned long long>(peak_rss_kib.load()),
              static_cast<unsigned long long>(proc_status_kib("VmHWM")),
              static_cast<unsigned long long>(proc_status_kib("VmRSS")), static_cast<unsigned long long>(samples.load()),
              seconds, time_bound_hit ? 1 : 0, error.c_str());
  std::fflush(stdout);
  return error == "none" ? 0 : 1;
}

}  // namespace msgstore::bench
