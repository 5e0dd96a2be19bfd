// Crash test of the real binary: `msgstore publish` is killed with SIGKILL at random times,
// over and over, in every fsync mode (always, interval:50, never), and every acknowledged
// message must survive. SIGKILL keeps the page cache, so even fsync=never must lose nothing
// that was acked: an ack is printed only once the bytes are written to the OS.
//
// Each cycle starts `msgstore publish crash.events --batch B` reading messages "m-<id>-<pad>"
// from a pipe and records every ack line it prints ({"stream","partition","offset","index"};
// `index` is the line number in this child's input, so it names the message id). At a random
// moment the child gets SIGKILL. Then, with the child dead, the test opens the store itself
// and checks:
//   - every acked message is stored at exactly its acked partition and offset, byte for byte
//     (0 acked lost, 0 inconsistent offsets);
//   - every stored message is one the test sent (exact payload), and none is stored twice
//     (0 unexpected, 0 duplicated), and offsets are dense from the log start;
//   - every message seen stored after an earlier crash is still there, at the same place;
// and runs `msgstore verify`, which must report the store clean.
//
// KILL_CYCLES (default 20) sets the number of kills per fsync mode, KILL_SEED reproduces a run
// (the seed is printed at the start; every mode uses the same seed). On failure the test
// prints the command that replays it.
#include <signal.h>
#include <sys/wait.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <random>
#include <set>
#include <thread>

#include <gtest/gtest.h>

#include "e2e/json_fields.h"
#include "e2e/process.h"
#include "msgstore/store.h"
#include "support/temporary_directory.h"

namespace msgstore::e2e {
namespace {

using namespace std::chrono_literals;

struct Place {
  std::uint32_t partition = 0;
  Offset offset = 0;
  bool operator==(const Place&) const = default;
};

std::string place_text(const Place& place) {
  return "partition " + std::to_string(place.partition) + " offset " + std::to_string(place.offset);
}

std::uint64_t environment_number(const char* name, std::uint64_t fallback) {
  const char* value = std::getenv(name);
  if (value == nullptr || *value == '\0') return fallback;
  return std::strtoull(value, nullptr, 10);
}

// The payload of message `id`: its id first (so a stored message names itself), then padding
// of a length and content that depend only on the id, so the exact bytes can be checked.
std::string payload_for(std::uint64_t id) {
  std::string payload = "m-" + std::to_string(id) + "-";
  std::mt19937_64 padding(id * 0x9E3779B97F4A7C15ull + 1);
  const std::size_t length = padding() % 300;
  for (std::size_t i = 0; i < length; ++i) payload += static_cast<char>('a' + padding() % 26);
  return payload;
}

std::optional<std::uint64_t> id_of(const std::string& payload) {
  if (payload.rfind("m-", 0) != 0) return std::nullopt;
  const std::size_t dash = payload.find('-', 2);
  if (dash == std::string::npos || dash == 2) return std::nullopt;
  std::uint64_t id = 0;
  for (std::size_t i = 2; i < dash; ++i) {
    if (payload[i] < '0' || payload[i] > '9') return std::nullopt;
    id = id * 10 + static_cast<std::uint64_t>(payload[i] - '0');
  }
  return id;
}

constexpr const char* stream_name = "crash";
constexpr std::uint32_t partition_count = 2;

// One fsync mode under test: the stream's --fsync value and a name usable in a test name.
struct FsyncMode {
  const char* flag;
  const char* name;
};

void PrintTo(const FsyncMode& mode, std::ostream* out) { *out << "fsync=" << mode.flag; }

class Kill9Test : public ::testing::TestWithParam<FsyncMode> {
 protected:
  Kill9Test() : binary_(binary_from_environment("MSGSTORE_BINARY")), data_(directory_.path() / "data") {}

  // Records one ack line printed by the child whose input was `sent_order`.
  void record_ack(const std::string& line, const std::vector<std::uint64_t>& sent_order) {
    const auto index = json_number(line, "index");
    const auto partition = json_number(line, "partition");
    const auto offset = json_number(line, "offset");
    ASSERT_TRUE(index && partition && offset && json_text(line, "stream") == stream_name) << "bad ack line: " << line;
    ASSERT_LT(*index, sent_order.size()) << "ack for a line never sent: " << line;
    const std::uint64_t id = sent_order[*index];
    const Place place{static_cast<std::uint32_t>(*partition), *offset};
    ASSERT_TRUE(acked_.emplace(id, place).second) << "message " << id << " acked twice: " << line;
    auto [other, inserted] = acked_places_.emplace(std::make_pair(place.partition, place.offset), id);
    ASSERT_TRUE(inserted) << "messages " << other->second << " and " << id << " were both acked at " << place_text(place);
  }

  // One cycle: start a publisher, feed it, kill it at `kill_after`.
  void run_publisher_and_kill(std::mt19937_64& random, std::chrono::milliseconds kill_after, std::uint32_t batch) {
    ChildProcess child({binary_, "--data", data_.string(), "publish", "crash.events", "--batch", std::to_string(batch)});
    std::vector<std::uint64_t> sent_order;  // index in this child's input -> message id
    std::uint64_t acks_seen = 0;
    const auto deadline = std::chrono::steady_clock::now() + kill_after;
    bool input_open = true;
    while (std::chrono::steady_clock::now() < deadline) {
      // Keep a bounded number of messages in flight so the pipe never fills and blocks us.
      if (input_open && sent_order.size() - acks_seen < 4 * batch + 8) {
        const std::uint64_t burst = 1 + random() % (2 * batch);
        std::string lines;
        for (std::uint64_t i = 0; i < burst; ++i) {
          const std::uint64_t id = next_id_++;
          lines += payload_for(id) + "\n";
          sent_order.push_back(id);
        }
        input_open = child.write_input(lines);  // false once the child is gone (it should not be)
      }
      const auto line = child.read_line(std::chrono::milliseconds(random() % 4));
      if (line) {
        record_ack(*line, sent_order);
        if (HasFatalFailure()) return;
        ++acks_seen;
      }
    }
    child.send_signal(SIGKILL);
    const int status = child.wait();
    // Acks printed before the kill are acks too (they were flushed after a durable publish).
    std::string partial;
    for (const std::string& line : child.drain_lines(&partial)) {
      record_ack(line, sent_order);
      if (HasFatalFailure()) return;
      ++acks_seen;
    }
    ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
        << "the publisher ended on its own before the kill (status " << status << "); see its stderr above";
    total_sent_ += sent_order.size();
    total_acked_ += acks_seen;
  }

  // Opens the store in this process (the child is dead) and checks everything stored.
  void check_store(int cycle) {
    StoreOptions options;
    options.create_if_missing = false;
    options.background_maintenance = false;
    auto store = Store::open(data_, options);
    ASSERT_TRUE(store) << "cycle " << cycle << ": " << store.status().to_string();
    std::map<std::uint64_t, Place> stored;
    for (std::uint32_t partition = 0; partition < partition_count; ++partition) {
      auto start = (*store)->resolve_start(stream_name, partition, StartPosition::from_beginning());
      ASSERT_TRUE(start) << start.status().to_string();
      Offset next = *start;
      Offset expected_offset = *start;
      while (true) {
        std::string problem;
        auto scanned = (*store)->scan(stream_name, partition, next, 4096, [&](const MessageView& message) {
          const std::string payload(message.payload);
          const auto id = id_of(payload);
          if (message.offset != expected_offset) {
            problem = "offset " + std::to_string(message.offset) + " follows " + std::to_string(expected_offset - 1);
          } else if (message.subject != "crash.events") {
            problem = "unexpected subject " + std::string(message.subject);
          } else if (!id || *id >= next_id_) {
            problem = "a message the test never sent: '" + payload.substr(0, 40) + "'";
          } else if (payload != payload_for(*id)) {
            problem = "message " + std::to_string(*id) + " has the wrong payload";
          } else if (!stored.emplace(*id, Place{partition, message.offset}).second) {
            problem = "message " + std::to_string(*id) + " stored twice: " + place_text(stored[*id]) + " and " +
                      place_text({partition, message.offset});
          }
          ++expected_offset;
          return problem.empty() ? ScanControl::proceed : ScanControl::stop;
        });
        ASSERT_TRUE(scanned) << "cycle " << cycle << " partition " << partition << ": " << scanned.status().to_string();
        ASSERT_TRUE(problem.empty()) << "cycle " << cycle << " partition " << partition << ": " << problem;
        if (*scanned <= next) break;
        next = *scanned;
      }
    }
    for (const auto& [id, place] : acked_) {
      auto found = stored.find(id);
      ASSERT_NE(found, stored.end()) << "cycle " << cycle << ": acked message " << id << " (" << place_text(place)
                                     << ") is missing after SIGKILL";
      ASSERT_EQ(found->second, place) << "cycle " << cycle << ": acked message " << id << " was acked at "
                                      << place_text(place) << " but is stored at " << place_text(found->second);
    }
    for (const auto& [id, place] : stored_before_) {
      auto found = stored.find(id);
      ASSERT_NE(found, stored.end()) << "cycle " << cycle << ": message " << id << ", stored at " << place_text(place)
                                     << " after an earlier crash, has vanished";
      ASSERT_EQ(found->second, place) << "cycle " << cycle << ": message " << id << " moved";
    }
    stored_before_ = stored;
    ASSERT_TRUE((*store)->close().is_ok());
  }

  std::string binary_;
  testing::TemporaryDirectory directory_{"msgstore-kill9-test"};
  std::filesystem::path data_;
  std::uint64_t next_id_ = 0;
  std::map<std::uint64_t, Place> acked_;
  std::map<std::pair<std::uint32_t, Offset>, std::uint64_t> acked_places_;
  std::map<std::uint64_t, Place> stored_before_;
  std::uint64_t total_sent_ = 0;
  std::uint64_t total_acked_ = 0;
};

TEST_P(Kill9Test, AckedMessagesSurviveSigkill) {
  const FsyncMode mode = GetParam();
  const std::uint64_t cycles = environment_number("KILL_CYCLES", 20);
  // One seed for the whole run, so every mode of one run replays with the same KILL_SEED.
  static const std::uint64_t seed = environment_number("KILL_SEED", std::random_device()());
  const std::string test_name = std::string(::testing::UnitTest::GetInstance()->current_test_info()->test_suite_name()) +
                                "." + ::testing::UnitTest::GetInstance()->current_test_info()->name();
  const char* self = std::getenv("KILL9_TEST_BINARY");
  const std::string replay = "KILL_SEED=" + std::to_string(seed) + " KILL_CYCLES=" + std::to_string(cycles) +
                             " MSGSTORE_BINARY=" + binary_ + " " + (self != nullptr ? self : "kill9_test") +
                             " --gtest_filter='" + test_name + "'";
  std::printf("kill9_test: fsync=%s, seed %llu, %llu cycles (replay: %s)\n", mode.flag,
              static_cast<unsigned long long>(seed), static_cast<unsigned long long>(cycles), replay.c_str());
  std::fflush(stdout);
  RecordProperty("seed", std::to_string(seed));
  RecordProperty("fsync", mode.flag);
  std::mt19937_64 random(seed);
  // Printed on any failure, however the test body exits.
  struct ReplayOnFailure {
    const std::string& command;
    std::uint64_t seed, cycles;
    ~ReplayOnFailure() {
      if (::testing::Test::HasFailure()) {
        std::printf("kill9_test: FAILED; replay with:\n  %s\nor, from the build directory (all three modes):\n"
                    "  KILL_SEED=%llu KILL_CYCLES=%llu ctest -R kill9_test --output-on-failure\n",
                    command.c_str(), static_cast<unsigned long long>(seed), static_cast<unsigned long long>(cycles));
      }
    }
  } replay_on_failure{replay, seed, cycles};

  // Small segments so crashes also land around segment rolls.
  ProcessResult created = run_process({binary_, "--data", data_.string(), "stream", "create", stream_name, "--subjects",
                                       "crash.>", "--partitions", std::to_string(partition_count), "--fsync", mode.flag,
                                       "--segment-bytes", "16KiB"});
  ASSERT_EQ(created.exit_code, 0) << created.err;

  const auto started = std::chrono::steady_clock::now();
  for (std::uint64_t cycle = 0; cycle < cycles; ++cycle) {
    SCOPED_TRACE("fsync=" + std::string(mode.flag) + " cycle " + std::to_string(cycle) + " (seed " + std::to_string(seed) + ")");
    // Mostly mid-stream kills; sometimes very early (during recovery/open) or late.
    const std::uint64_t shape = random() % 10;
    const auto kill_after = std::chrono::milliseconds(shape == 0 ? random() % 15 : 20 + random() % 400);
    const auto batch = static_cast<std::uint32_t>(random() % 3 == 0 ? 1 : 1 + random() % 16);
    run_publisher_and_kill(random, kill_after, batch);
    if (HasFatalFailure()) return;
    check_store(static_cast<int>(cycle));
    if (HasFatalFailure()) return;
    ProcessResult verify = run_process({binary_, "--data", data_.string(), "verify"});
    ASSERT_EQ(verify.exit_code, 0) << "msgstore verify after cycle " << cycle << ":\n" << verify.out << verify.err;
    ASSERT_NE(verify.out.find("\nclean\n"), std::string::npos) << verify.out;
  }
  const auto seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  std::printf("kill9_test: fsync=%s: %llu kills in %.1f s: %llu messages sent, %llu acked, %zu stored at the end: %s\n",
              mode.flag, static_cast<unsigned long long>(cycles), seconds, static_cast<unsigned long long>(total_sent_),
              static_cast<unsigned long long>(total_acked_), stored_before_.size(),
              HasFailure() ? "FAILED" : "0 acked lost, 0 unexpected, 0 inconsistent offsets");
  EXPECT_GT(total_acked_, 0u) << "no message was ever acked: the test exercised nothing";
}

INSTANTIATE_TEST_SUITE_P(EveryFsyncMode, Kill9Test,
                         ::testing::Values(FsyncMode{"always", "always"}, FsyncMode{"interval:50", "interval_50"},
                                           FsyncMode{"never", "never"}),
                         [](const ::testing::TestParamInfo<FsyncMode>& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace msgstore::e2e
