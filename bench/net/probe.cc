// probe: the physical limits a networked figure is compared with, measured in the same run:
// fdatasync latency after a 4 KiB append (in the directory given, on the disk the servers use)
// and the loopback TCP round trip of a 100 B request and reply (TCP_NODELAY, one connection).
//
//   probe --dir SCRATCH [--syncs 2000] [--round-trips 20000]
//
// Prints one JSON object: {"fdatasync_us":{p50,p99,p999,max},"loopback_rtt_us":{...}}.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
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

}  // namespace

int main(int argc, char** argv) {
  std::string directory;
  unsigned syncs = 2000, round_trips = 20000;
  CLI::App app{"probe: fdatasync and loopback round-trip latency"};
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
  std::printf("{\"fdatasync_us\":%s,\"loopback_rtt_us\":%s}\n", percentiles(sync_us).c_str(), percentiles(rtt_us).c_str());
  return 0;
}
