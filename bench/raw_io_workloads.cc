#include "raw_io_workloads.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

namespace msgstore::bench {

namespace {

class RawAppendSession final : public PublishSession {
 public:
  RawAppendSession(const PayloadSource& payloads, std::size_t batch_bytes, std::size_t messages_per_batch)
      : messages_per_batch_(messages_per_batch) {
    // The batch bytes: payloads laid end to end, as varied as msgstore's.
    batch_.reserve(batch_bytes);
    for (std::uint64_t index = 0; batch_.size() < batch_bytes; ++index) {
      const std::string_view payload = payloads.payload(index);
      batch_.append(payload.substr(0, std::min(payload.size(), batch_bytes - batch_.size())));
    }
  }
  ~RawAppendSession() override { (void)close(); }
  std::string name() const override { return "write+fdatasync"; }
  std::string open(const std::filesystem::path& directory) override {
    const auto path = directory / "raw.log";
    descriptor_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
    if (descriptor_ < 0) return std::string("open: ") + std::strerror(errno);
    return {};
  }
  RunResult run_slice(std::uint64_t messages, SteadyClock::time_point deadline) override {
    RunResult result;
    const double cpu_begin = process_cpu_seconds();
    const auto begin = SteadyClock::now();
    while (result.messages < messages) {
      if (SteadyClock::now() >= deadline) {
        result.time_bound_hit = true;
        break;
      }
      std::size_t written = 0;
      while (written < batch_.size()) {
        const ssize_t got = ::write(descriptor_, batch_.data() + written, batch_.size() - written);
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) {
          result.error = std::string("write: ") + std::strerror(errno);
          break;
        }
        written += static_cast<std::size_t>(got);
      }
      if (!result.ok()) break;
      if (::fdatasync(descriptor_) != 0) {
        result.error = std::string("fdatasync: ") + std::strerror(errno);
        break;
      }
      result.messages += messages_per_batch_;
      result.bytes_written += batch_.size();
    }
    result.elapsed_seconds = seconds_between(begin, SteadyClock::now());
    result.cpu_seconds = process_cpu_seconds() - cpu_begin;
    return result;
  }
  std::string close() override {
    if (descriptor_ >= 0) ::close(descriptor_);
    descriptor_ = -1;
    return {};
  }

 private:
  std::size_t messages_per_batch_;
  std::string batch_;
  int descriptor_ = -1;
};

}  // namespace

std::unique_ptr<PublishSession> make_raw_append_session(const PayloadSource& payloads, std::size_t batch_bytes,
                                                        std::size_t messages_per_batch) {
  return std::make_unique<RawAppendSession>(payloads, batch_bytes, messages_per_batch);
}

SyncLatency probe_sync_latency(const std::filesystem::path& directory, std::size_t samples, double seconds_max) {
  constexpr std::size_t append_bytes = 4096;
  SyncLatency result;
  const auto path = directory / "sync-probe.dat";
  const int descriptor = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
  if (descriptor < 0) {
    result.error = std::string("open: ") + std::strerror(errno);
    return result;
  }
  const std::string block(append_bytes, 's');
  std::vector<double> latencies;
  latencies.reserve(samples);
  const auto deadline = deadline_after(SteadyClock::now(), seconds_max);
  while (latencies.size() < samples && SteadyClock::now() < deadline) {
    const auto begin = SteadyClock::now();
    if (::write(descriptor, block.data(), block.size()) != static_cast<ssize_t>(block.size()) || ::fdatasync(descriptor) != 0) {
      result.error = std::string("write/fdatasync: ") + std::strerror(errno);
      break;
    }
    latencies.push_back(seconds_between(begin, SteadyClock::now()) * 1e6);
  }
  ::close(descriptor);
  ::unlink(path.c_str());
  if (latencies.empty()) return result;
  std::sort(latencies.begin(), latencies.end());
  result.samples = latencies.size();
  result.p50_microseconds = latencies[latencies.size() / 2];
  result.p99_microseconds = latencies[std::min(latencies.size() - 1, latencies.size() * 99 / 100)];
  return result;
}

}  // namespace msgstore::bench
