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

// Zeros written ahead of the data by the preallocating loop, one chunk at a time.
constexpr std::size_t zero_chunk_bytes = 1024 * 1024;

class RawAppendSession final : public PublishSession {
 public:
  RawAppendSession(const PayloadSource& payloads, std::size_t batch_bytes, std::size_t messages_per_batch,
                   std::uint64_t preallocate_bytes)
      : messages_per_batch_(messages_per_batch), preallocate_bytes_(preallocate_bytes) {
    // The batch bytes: payloads laid end to end, as varied as msgstore's.
    batch_.reserve(batch_bytes);
    for (std::uint64_t index = 0; batch_.size() < batch_bytes; ++index) {
      const std::string_view payload = payloads.payload(index);
      batch_.append(payload.substr(0, std::min(payload.size(), batch_bytes - batch_.size())));
    }
  }
  ~RawAppendSession() override { (void)close(); }
  std::string name() const override { return preallocate_bytes_ > 0 ? "write+fdatasync, preallocated" : "write+fdatasync"; }
  std::string open(const std::filesystem::path& directory) override {
    const auto path = directory / "raw.log";
    // Appending: O_APPEND, every sync commits the new file size too. Preallocating: pwrite at
    // our own position into zeros written ahead, as msgstore's segments do with fsync=always.
    const int append = preallocate_bytes_ > 0 ? 0 : O_APPEND;
    descriptor_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | append | O_CLOEXEC, 0644);
    if (descriptor_ < 0) return std::string("open: ") + std::strerror(errno);
    return {};
  }
  // Every call writes and syncs the whole batch, so a last, partial batch writes a full one.
  RunResult run_slice(std::uint64_t messages, SteadyClock::time_point deadline) override {
    std::uint64_t bytes_written = 0;
    RunResult result = run_batches(messages, messages_per_batch_, deadline, next_index_, [&](std::uint64_t, std::uint64_t) {
      const std::uint64_t end = position_ + batch_.size();
      if (preallocate_bytes_ > 0 && end > preallocated_end_) {
        // The same step as Segment::append: zeros from the end of the old ones to a full step
        // past this batch's end; the sync below commits them and the new size once.
        const std::uint64_t to = end + preallocate_bytes_;
        for (std::uint64_t at = std::max(position_, preallocated_end_); at < to; at += zero_chunk_bytes) {
          std::string error = write_all(zeros_.data(), static_cast<std::size_t>(std::min<std::uint64_t>(zero_chunk_bytes, to - at)), at);
          if (!error.empty()) return error;
        }
        preallocated_end_ = to;
      }
      if (std::string error = write_all(batch_.data(), batch_.size(), position_); !error.empty()) return error;
      position_ = end;
      if (::fdatasync(descriptor_) != 0) return std::string("fdatasync: ") + std::strerror(errno);
      bytes_written += batch_.size();
      return std::string();
    });
    result.bytes_written = bytes_written;
    return result;
  }
  std::string close() override {
    if (descriptor_ >= 0) ::close(descriptor_);
    descriptor_ = -1;
    return {};
  }

 private:
  // Writes all of [data, data + size) at `at` (pwrite; write() when appending); an error text or
  // nothing.
  std::string write_all(const char* data, std::size_t size, std::uint64_t at) {
    std::size_t written = 0;
    while (written < size) {
      const ssize_t got = preallocate_bytes_ > 0
                              ? ::pwrite(descriptor_, data + written, size - written, static_cast<off_t>(at + written))
                              : ::write(descriptor_, data + written, size - written);
      if (got < 0 && errno == EINTR) continue;
      if (got <= 0) return std::string("write: ") + (got < 0 ? std::strerror(errno) : "wrote nothing");
      written += static_cast<std::size_t>(got);
    }
    return {};
  }

  std::size_t messages_per_batch_;
  std::uint64_t next_index_ = 0;  // run_batches counts on; the batch bytes do not depend on it
  std::uint64_t preallocate_bytes_;
  std::string batch_;
  std::string zeros_ = std::string(zero_chunk_bytes, '\0');
  std::uint64_t position_ = 0;
  std::uint64_t preallocated_end_ = 0;
  int descriptor_ = -1;
};

}  // namespace

std::unique_ptr<PublishSession> make_raw_append_session(const PayloadSource& payloads, std::size_t batch_bytes,
                                                        std::size_t messages_per_batch, std::uint64_t preallocate_bytes) {
  return std::make_unique<RawAppendSession>(payloads, batch_bytes, messages_per_batch, preallocate_bytes);
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
