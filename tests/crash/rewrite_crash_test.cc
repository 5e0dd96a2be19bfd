// Crash at every step of compaction and erase (the segment rewrite and its rename sequence,
// the erase list, the audit record), followed by a power loss on the fault seam.
//
// For each action a counting run finds how many file-system mutations it makes (K); then for
// k = 1..K the process dies right after mutation k, the power fails (seed % 4 == 1 drops every
// unsynced write, == 2 keeps them all, otherwise each is kept, dropped or torn), the store
// reopens, and:
//   * compaction: every message compaction must keep is readable, unchanged, at its offset;
//     nothing is read twice; nothing that was never published appears; if compact() returned
//     ok, exactly the compacted set is readable;
//   * erase: messages that did not match are all there; per partition the matches are all
//     readable or all hidden (the erase list is replaced atomically); if erase() returned ok
//     none is readable; finishing the erase afterwards leaves no byte of them in any file;
//   * verify is clean, and a second compaction or erase on the recovered store completes.
#include <gtest/gtest.h>

#include <map>
#include <set>

#include "crash/harness.h"
#include "log/partition_log.h"
#include "msgstore/store.h"

namespace msgstore::crash {
namespace {

const std::filesystem::path data_directory = "/data";
constexpr std::int64_t hour_ms = 3'600'000;

using Position = std::pair<std::uint32_t, Offset>;

struct Sent {
  std::optional<std::string> key;
  std::string payload;
  TimestampMs timestamp_ms = 0;
  bool tombstone = false;
};

struct Fixture {
  std::shared_ptr<FaultFileSystem> disk = std::make_shared<FaultFileSystem>();
  std::shared_ptr<ProcessFileSystem> process = std::make_shared<ProcessFileSystem>(disk);
  std::unique_ptr<Store> store;
  std::map<std::string, std::map<Position, Sent>> sent;  // per stream
  TimestampMs now = 0;
  std::uint64_t messages_read = 0;  // by readable(), for the figures
  double open_ms = 0;               // the last open (after a crash: the recovery)

  void open() {
    auto opened = open_timed(data_directory, replayable_store_options(process), open_ms);
    ASSERT_TRUE(opened.is_ok()) << opened.status().to_string();
    store = std::move(*opened);
  }

  void create(const std::string& name, std::uint32_t partitions, CleanupPolicy cleanup) {
    StreamConfig config;
    config.name = name;
    config.subjects = {name + ".>"};
    config.partitions = partitions;
    config.segment_bytes = limits::segment_bytes_min;
    config.cleanup = cleanup;
    config.tombstone_retention_ms = hour_ms;
    ASSERT_TRUE(store->create_stream(config).is_ok());
  }

  void publish(const std::string& stream, Sent message) {
    const HeaderView tombstone[] = {{tombstone_header_name, "1"}};
    OutgoingMessage outgoing;
    outgoing.subject = stream + ".m";
    if (message.key) outgoing.key = std::string_view(*message.key);
    if (message.tombstone) outgoing.headers = tombstone;
    outgoing.payload = message.payload;
    outgoing.timestamp_ms = message.timestamp_ms;
    auto positions = store->publish(outgoing);
    ASSERT_TRUE(positions.is_ok()) << positions.status().to_string();
    sent[stream][{positions->front().partition, positions->front().offset}] = std::move(message);
  }

  // Deterministic data: a compacted stream with superseded values and tombstones (fresh and
  // expired), and a stream of people to erase from.
  void setup() {
    disk->make_all_durable();
    ASSERT_NO_FATAL_FAILURE(open());
    // One clock reading per process, so every run publishes the same bytes; fresh tombstones
    // stay within their retention for the test's lifetime, old ones are three hours past it.
    static const TimestampMs process_start_ms = log::system_clock_ms();
    now = process_start_ms;
    ASSERT_NO_FATAL_FAILURE(create("kv", 2, CleanupPolicy::compact));
    ASSERT_NO_FATAL_FAILURE(create("people", 2, CleanupPolicy::delete_segments));
    for (int i = 0; i < 110; ++i) {
      Sent message;
      if (i % 11 != 0) message.key = "k" + std::to_string(i % 7);
      message.tombstone = message.key && i % 13 == 3;
      message.timestamp_ms = message.tombstone && i % 2 == 0 ? now - 3 * hour_ms : now + i;
      if (!message.tombstone) message.payload = "kv-value-" + std::to_string(i) + std::string(static_cast<std::size_t>(i % 50), 'v');
      ASSERT_NO_FATAL_FAILURE(publish("kv", message));
    }
    for (int i = 0; i < 90; ++i) {
      Sent message;
      message.key = "user-" + std::to_string(i % 6);
      message.payload = (i % 6 == 3 ? "PERSONAL-DATA-" : "public-") + std::to_string(i) + std::string(static_cast<std::size_t>(i % 40), 'd');
      message.timestamp_ms = now + i;
      ASSERT_NO_FATAL_FAILURE(publish("people", message));
    }
  }

  std::map<Position, std::string> readable(Store& reader, const std::string& stream) {
    std::map<Position, std::string> result;
    auto info = reader.describe_stream(stream);
    EXPECT_TRUE(info.is_ok()) << info.status().to_string();
    if (!info) return result;
    for (std::uint32_t partition = 0; partition < info->partitions.size(); ++partition) {
      Offset next = *reader.resolve_start(stream, partition, StartPosition::from_beginning());
      while (true) {
        auto read = reader.read(stream, partition, next, ReadOptions{.max_messages = 64});
        if (!read) {
          ADD_FAILURE() << read.status().to_string();
          return result;
        }
        for (const Message& message : read->messages) {
          EXPECT_TRUE(result.emplace(Position{partition, message.offset}, message.payload).second) << "read twice";
          ++messages_read;
        }
        if (read->next_offset >= read->high_watermark) break;
        next = read->next_offset;
      }
    }
    return result;
  }
};

// What compaction keeps: the latest per key unless an expired tombstone, all keyless.
std::set<Position> compacted(const std::map<Position, Sent>& sent, TimestampMs now) {
  std::map<std::string, std::pair<Position, const Sent*>> latest;
  std::set<Position> kept;
  for (const auto& [position, message] : sent) {
    if (!message.key) {
      kept.insert(position);
    } else {
      latest[*message.key] = {position, &message};  // positions ascend per partition, one partition per key
    }
  }
  for (const auto& [key, entry] : latest) {
    if (entry.second->tombstone && entry.second->timestamp_ms <= now - hour_ms) continue;
    kept.insert(entry.first);
  }
  return kept;
}

struct Action {
  std::function<void(Fixture&)> prepare = [](Fixture&) {};  // after setup, before the crash point
  std::function<Status(Fixture&)> run;
  std::function<void(Fixture&, Store&, bool succeeded)> check;
};

void run_steps(const char* name, const Action& action, std::uint64_t default_seeds) {
  Figures figures(name);
  Fixture counting;
  ASSERT_NO_FATAL_FAILURE(counting.setup());
  ASSERT_NO_FATAL_FAILURE(action.prepare(counting));
  const std::uint64_t start = counting.process->mutations();
  Status done = action.run(counting);
  ASSERT_TRUE(done.is_ok()) << done.to_string();
  const std::uint64_t steps = counting.process->mutations() - start;
  ASSERT_GT(steps, 5u);
  for_each_seed(default_seeds, figures, [&](std::uint64_t seed) {
    for (std::uint64_t k = 1; k <= steps; ++k) {
      SCOPED_TRACE("crash after mutation " + std::to_string(k) + " of " + std::to_string(steps));
      const int before = failures_so_far();
      Fixture fixture;
      ASSERT_NO_FATAL_FAILURE(fixture.setup());
      ASSERT_NO_FATAL_FAILURE(action.prepare(fixture));
      fixture.process->die_after(k);
      const bool succeeded = action.run(fixture).is_ok();
      fixture.process->kill();
      fixture.store.reset();
      const PowerLossMode mode = seed % 4 == 1 ? PowerLossMode::drop_all_unsynced
                                 : seed % 4 == 2 ? PowerLossMode::keep_all_unsynced
                                                 : PowerLossMode::random;
      fixture.disk->simulate_power_loss(seed * 7919 + k, mode);
      fixture.process = std::make_shared<ProcessFileSystem>(fixture.disk);
      ASSERT_NO_FATAL_FAILURE(fixture.open());
      figures.add_recovery(fixture.open_ms);
      ++figures.cycles;
      ASSERT_NO_FATAL_FAILURE(action.check(fixture, *fixture.store, succeeded));
      figures.messages_checked += fixture.messages_read;
      auto verified = fixture.store->verify();
      ASSERT_TRUE(verified.is_ok());
      EXPECT_TRUE(verified->clean()) << verified->problems.front();
      if (failures_so_far() != before) return;
    }
  });
  std::printf("%s: %llu mutations per run\n", name, static_cast<unsigned long long>(steps));
  figures.print();
}

TEST(RewriteCrash, CompactionAtEveryStep) {
  Action action;
  action.run = [](Fixture& f) { return f.store->compact("kv").status(); };
  action.check = [](Fixture& f, Store& store, bool succeeded) {
    const std::map<Position, Sent>& sent = f.sent["kv"];
    const std::set<Position> must_keep = compacted(sent, log::system_clock_ms());
    const auto seen = f.readable(store, "kv");
    for (const auto& [position, payload] : seen) {
      auto original = sent.find(position);
      ASSERT_NE(original, sent.end()) << "offset " << position.second << " was never published";
      EXPECT_EQ(payload, original->second.payload) << "offset " << position.second << " changed";
    }
    for (const Position& position : must_keep) EXPECT_TRUE(seen.count(position)) << "lost offset " << position.second;
    if (succeeded) {
      EXPECT_EQ(seen.size(), must_keep.size()) << "compact() returned ok but did not last";
    }
    // The recovered store finishes the job.
    auto again = store.compact("kv");
    ASSERT_TRUE(again.is_ok()) << again.status().to_string();
    EXPECT_EQ(f.readable(store, "kv").size(), must_keep.size());
  };
  run_steps("rewrite_crash.compaction", action, 3);
}

// The erase of user-3 from "people": list, audit, rewrites (remove_now), all in one action.
void check_erase(Fixture& f, Store& store, bool succeeded) {
  const std::map<Position, Sent>& sent = f.sent["people"];
  const auto seen = f.readable(store, "people");
  std::map<std::uint32_t, std::pair<int, int>> victims_per_partition;  // seen, total
  for (const auto& [position, message] : sent) {
    const bool victim = message.key == "user-3";
    if (!victim) {
      EXPECT_TRUE(seen.count(position)) << "lost offset " << position.second << " that the erase did not match";
      continue;
    }
    ++victims_per_partition[position.first].second;
    if (seen.count(position)) ++victims_per_partition[position.first].first;
  }
  for (const auto& [partition, counts] : victims_per_partition) {
    EXPECT_TRUE(counts.first == 0 || counts.first == counts.second)
        << "partition " << partition << " shows " << counts.first << " of " << counts.second << " erased messages";
    if (succeeded) {
      EXPECT_EQ(counts.first, 0) << "erase returned ok but erased messages came back";
    }
  }
  // Finishing the erase on the recovered store (repeating it, as a caller whose erase failed
  // would) leaves no byte of the erased payloads anywhere.
  auto again = store.erase(EraseRequest{.stream = "people", .criteria = {.key = "user-3"}, .actor = "test", .remove_now = true});
  ASSERT_TRUE(again.is_ok()) << again.status().to_string();
  EXPECT_EQ(again->progress.offsets_pending, 0u);
  for (const auto& path : f.disk->all_files()) {
    auto content = f.disk->current_contents(path);
    if (!content) continue;
    EXPECT_EQ(content->find("PERSONAL-DATA-"), std::string::npos) << path << " still holds erased bytes";
  }
}

TEST(RewriteCrash, EraseAtEveryStep) {
  Action action;
  action.run = [](Fixture& f) {
    return f.store->erase(EraseRequest{.stream = "people", .criteria = {.key = "user-3"}, .actor = "test", .remove_now = true})
        .status();
  };
  action.check = check_erase;
  run_steps("rewrite_crash.erase", action, 3);
}

TEST(RewriteCrash, BackgroundEraseRemovalAtEveryStep) {
  // The erase itself returned before (durable); the action is the maintenance passes that
  // remove the bytes. A crash in them must never make an erased message readable again.
  Action action;
  action.prepare = [](Fixture& f) {
    auto erased = f.store->erase(EraseRequest{.stream = "people", .criteria = {.key = "user-3"}, .actor = "test"});
    ASSERT_TRUE(erased.is_ok()) << erased.status().to_string();
  };
  action.run = [](Fixture& f) {
    for (int pass = 0; pass < 20; ++pass) {
      MSGSTORE_RETURN_IF_ERROR(f.store->run_maintenance());
      auto progress = f.store->erase_progress("people");
      if (!progress) return progress.status();
      if (progress->offsets_pending == 0) return Status::ok();
    }
    return Status(ErrorCode::timed_out, "erase removal did not finish in 20 passes");
  };
  action.check = [](Fixture& f, Store& store, bool) { check_erase(f, store, /*succeeded=*/true); };
  run_steps("rewrite_crash.background_erase", action, 3);
}

}  // namespace
}  // namespace msgstore::crash
