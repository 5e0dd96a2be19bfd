// A latency histogram with fixed buckets, updated with relaxed atomics only: cheap enough for
// hot paths (an fdatasync, a publish), never a lock. Rendering (Prometheus text) belongs to the
// front end that exposes it (server/metrics.cc).
//
// Thread safety: observe() and snapshot() from any thread; a snapshot taken while observations
// run may be off by the observations in progress (each bucket, count and sum is exact on its own).
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>

namespace msgstore {

class LatencyHistogram {
 public:
  // Upper bounds in seconds (Prometheus `le`), from 50 microseconds (a fast NVMe fdatasync)
  // to 10 seconds; one more bucket counts everything above.
  static constexpr std::array<double, 16> bucket_bounds_seconds = {
      0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10};

  struct Snapshot {
    std::array<std::uint64_t, bucket_bounds_seconds.size() + 1> buckets{};  // per bucket, not cumulative; last = +Inf
    std::uint64_t count = 0;
    std::uint64_t sum_nanoseconds = 0;
  };

  void observe(std::chrono::nanoseconds duration) {
    const std::int64_t nanoseconds = duration.count() < 0 ? 0 : duration.count();
    const double seconds = static_cast<double>(nanoseconds) / 1e9;
    std::size_t bucket = 0;
    while (bucket < bucket_bounds_seconds.size() && seconds > bucket_bounds_seconds[bucket]) ++bucket;
    buckets_[bucket].fetch_add(1, std::memory_order_relaxed);
    count_.fetch_add(1, std::memory_order_relaxed);
    sum_nanoseconds_.fetch_add(static_cast<std::uint64_t>(nanoseconds), std::memory_order_relaxed);
  }
  void observe_seconds(double seconds) {
    observe(std::chrono::nanoseconds(static_cast<std::int64_t>(seconds < 0 ? 0 : seconds * 1e9)));
  }

  Snapshot snapshot() const {
    Snapshot snapshot;
    for (std::size_t i = 0; i < buckets_.size(); ++i) snapshot.buckets[i] = buckets_[i].load(std::memory_order_relaxed);
    snapshot.count = count_.load(std::memory_order_relaxed);
    snapshot.sum_nanoseconds = sum_nanoseconds_.load(std::memory_order_relaxed);
    return snapshot;
  }

 private:
  std::array<std::atomic<std::uint64_t>, bucket_bounds_seconds.size() + 1> buckets_{};
  std::atomic<std::uint64_t> count_{0};
  std::atomic<std::uint64_t> sum_nanoseconds_{0};
};

}  // namespace msgstore
