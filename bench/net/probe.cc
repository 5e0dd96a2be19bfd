// probe: the physical limits a networked figure is compared with, measured in the same run:
// fdatasync latency after a 4 KiB append (in the directory given, on the disk the servers use)
// and the loopback TCP round trip of a 100 B request and reply (TCP_NODELAY, one connection).
// With --group-commit-rate R it also runs the ideal group commit at R requests per second:
// requests fall due at start + k/R (no network, no parsing, no server CPU); one loop writes
// 100 B per due request into preallocated zeros and fdatasyncs, again and again, each sync
// covering every request due before its write; a request's latency runs from its due time to
// the end of the sync that covers it. That is the least latency any server that syncs before
// it answers can show at that rate on this disk, the same minute: the floor under goal 5.
// It runs twice: on an otherwise idle machine, and beside one thread that only spins (as busy
// as the load generator of a latency run is on 2 vCPUs). On the 2-vCPU VM of
// docs/performance.md the second is 5-10x worse at p99: a busy vCPU delays the completion of
// the other's fdatasync by 10-25 ms dozens of times a second (even with the loop under
// SCHED_FIFO on its own CPU), which no count-based fdatasync p99 shows.
//
//   probe --dir SCRATCH [--syncs 2000] [--round-trips 20000] [--group-commit-rate 10000 --group-commit-seconds 5]
//
// Prints one JSON object: {"fdatasync_us":{p50,p99,p999,max},"loopback_rtt_us":{...}} and, with
// --group-commit-rate, "ideal_group_commit_us":{...}, "ideal_group_commit_syncs" and the same
// two with one CPU busy: "ideal_group_commit_busy_us", "ideal_group_commit_busy_syncs".
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>

namespace {

using Clock = std::chrono::steady_clock;

std::string percentiles(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  auto at = [&](double fraction) {
    if (values.empty()) return 0.0;
    const auto rank = static_cast<std::size_t>(std::ceil(fraction * static_cast<double>(values.size())));
    return values[std::min(values.size() - 1, rank == 0 ? 0 : rank - 1)];
  };
  char text[200];
  std::snprintf(text, sizeof text, "{\"p50\":%.1f,\"p99\":%.1f,\"p999\":%.1f,\"max\":%.1f}", at(0.5), at(0.99), at(0.999),
                values.empty() ? 0.0 : values.back());
  return text;
}

bool read_exactly(int fd, char* buffer, std::size_t bytes) {
  std::size_t done = 0;
  while (done < bytes) {
    const ssize_t got = ::recv(fd, buffer + done, bytes - done, 0);
    if (got <= 0) return false;
    done += static_cast<std::size_t>(got);
  }
  return true;
}

// The ideal group commit (see the top of this file). Returns the latencies in microseconds and
// the number of syncs, or an empty vector after an error (printed).
std::vector<double> ideal_group_commit(const std::string& directory, double rate, double seconds, std::size_t& syncs) {
  constexpr std::size_t request_bytes = 100;
  constexpr std::size_t preallocate_bytes = 1 << 20;
  const std::string path = directory + "/probe-group-commit.data";
  const int file = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (file < 0) { std::perror("probe: open"); return {}; }
  const std::vector<char> zeros(preallocate_bytes, 0);
  // One second's worth at most per write, and at least one request (a rate under 1/s would
  // otherwise give an empty buffer and a loop that never covers anything).
  std::vector<char> data(request_bytes * std::max<std::size_t>(1, static_cast<std::size_t>(rate)), 'g');
  std::vector<double> latencies;
  latencies.reserve(static_cast<std::size_t>(rate * seconds));
  std::uint64_t position = 0, preallocated_end = 0, covered = 0;
  const auto total = static_cast<std::uint64_t>(rate * seconds);
  const auto start = Clock::now();
  auto due = [&](std::uint64_t request) {
    return start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(static_cast<double>(request) / rate));
  };
  syncs = 0;
  while (covered < total) {
    std::this_thread::sleep_until(due(covered));
    const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
    const std::uint64_t due_now = std::min<std::uint64_t>(total, static_cast<std::uint64_t>(elapsed * rate) + 1);
    const std::size_t bytes = std::min<std::size_t>(data.size(), (due_now - covered) * request_bytes);
    const std::uint64_t end = position + bytes;
    bool ok = true;
    if (end > preallocated_end) {
      const std::uint64_t to = end + preallocate_bytes;
      for (std::uint64_t at = std::max(position, preallocated_end); at < to && ok; at += preallocate_bytes) {
        const auto chunk = static_cast<std::size_t>(std::min<std::uint64_t>(preallocate_bytes, to - at));
        ok = ::pwrite(file, zeros.data(), chunk, static_cast<off_t>(at)) == static_cast<ssize_t>(chunk);
      }
      preallocated_end = to;
    }
    ok = ok && ::pwrite(file, data.data(), bytes, static_cast<off_t>(position)) == static_cast<ssize_t>(bytes) && ::fdatasync(file) == 0;
    if (!ok) {
      std::perror("probe: group commit write/fdatasync");
      ::close(file);
      return {};
    }
    ++syncs;
    const auto synced = Clock::now();
    const std::uint64_t now_covered = covered + bytes / request_bytes;
    for (std::uint64_t request = covered; request < now_covered; ++request) {
      latencies.push_back(std::chrono::duration<double, std::micro>(synced - due(request)).count());
    }
    covered = now_covered;
    position = end;
  }
  ::close(file);
  ::unlink(path.c_str());
  return latencies;
}

}  // namespace

int main(int argc, char** argv) {
  std::string directory;
  unsigned syncs = 2000, round_trips = 20000;
  double group_commit_rate = 0, group_commit_seconds = 5;
  CLI::App app{"probe: fdatasync and loopback round-trip latency"};
  app.add_option("--group-commit-rate", group_commit_rate, "also run the ideal group commit at this many requests per second (0: no)")
      ->check(CLI::Range(0.0, 1e7));
  app.add_option("--group-commit-seconds", group_commit_seconds, "how long the ideal group commit runs")
      ->check(CLI::Range(0.1, 3600.0));
  app.add_option("--dir", directory, "scratch directory on the disk under test")->required();
  app.add_option("--syncs", syncs, "fdatasync samples");
  app.add_option("--round-trips", round_trips, "loopback round-trip samples");
  CLI11_PARSE(app, argc, argv);

  std::vector<double> sync_us;
  const std::string path = directory + "/probe.data";
  const int file = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
  if (file < 0) { std::perror("probe: open"); return 2; }
  std::vector<char> block(4096, 'p');
  for (unsigned index = 0; index < syncs; ++index) {
    const auto begin = Clock::now();
    if (::write(file, block.data(), block.size()) != static_cast<ssize_t>(block.size()) || ::fdatasync(file) != 0) {
      std::perror("probe: write/fdatasync");
      return 2;
    }
    sync_us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - begin).count());
  }
  ::close(file);
  ::unlink(path.c_str());

  // Loopback: an echo thread on an ephemeral port of 127.0.0.1.
  const int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof address;
  if (::bind(listener, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 || ::listen(listener, 1) != 0 ||
      ::getsockname(listener, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    std::perror("probe: listen");
    return 2;
  }
  std::thread echo([&] {
    const int peer = ::accept(listener, nullptr, nullptr);
    int one = 1;
    ::setsockopt(peer, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    char buffer[100];
    while (read_exactly(peer, buffer, sizeof buffer)) {
      if (::send(peer, buffer, sizeof buffer, MSG_NOSIGNAL) != static_cast<ssize_t>(sizeof buffer)) break;
    }
    ::close(peer);
  });
  const int client = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  ::setsockopt(client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (::connect(client, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
    std::perror("probe: connect");
    return 2;
  }
  std::vector<double> rtt_us;
  char buffer[100] = {};
  for (unsigned index = 0; index < round_trips; ++index) {
    const auto begin = Clock::now();
    if (::send(client, buffer, sizeof buffer, MSG_NOSIGNAL) != static_cast<ssize_t>(sizeof buffer) ||
        !read_exactly(client, buffer, sizeof buffer)) {
      std::perror("probe: round trip");
      return 2;
    }
    rtt_us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - begin).count());
  }
  ::close(client);
  echo.join();
  ::close(listener);
  std::string group_commit;
  if (group_commit_rate > 0) {
    std::size_t group_syncs = 0;
    const std::vector<double> latencies = ideal_group_commit(directory, group_commit_rate, group_commit_seconds, group_syncs);
    if (latencies.empty()) return 2;
    group_commit = ",\"ideal_group_commit_us\":" + percentiles(latencies) + ",\"ideal_group_commit_syncs\":" + std::to_string(group_syncs);
    // Again beside a thread that spins until the loop is done.
    std::atomic<bool> done{false};
    std::thread spinner([&done] {
      while (!done.load(std::memory_order_relaxed)) {
      }
    });
    const std::vector<double> busy = ideal_group_commit(directory, group_commit_rate, group_commit_seconds, group_syncs);
    done.store(true);
    spinner.join();
    if (busy.empty()) return 2;
    group_commit += ",\"ideal_group_commit_busy_us\":" + percentiles(busy) + ",\"ideal_group_commit_busy_syncs\":" + std::to_string(group_syncs);
  }
  std::printf("{\"fdatasync_us\":%s,\"loopback_rtt_us\":%s%s}\n", percentiles(sync_us).c_str(), percentiles(rtt_us).c_str(),
              group_commit.c_str());
  return 0;
}
