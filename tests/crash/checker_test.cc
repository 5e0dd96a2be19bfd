// The checker catches what it claims to: each test provokes one kind of violation (with a
// file system that lies about fsync, or by publishing behind the checker's back) and expects
// check() to report it, and a clean run to report nothing.
#include <gtest/gtest.h>

#include "crash/checker.h"
#include "crash/harness.h"

namespace msgstore::crash {
namespace {

const std::filesystem::path data_directory = "/data";

// Forwards to a ProcessFileSystem, but once a log segment holds more than its header, its
// syncs return ok without syncing: the bug a crash test exists to catch.
class LyingFile final : public File {
 public:
  explicit LyingFile(std::unique_ptr<File> file) : file_(std::move(file)) {}
  Status write_at(std::uint64_t offset, const void* data, std::size_t size) override { return file_->write_at(offset, data, size); }
  Result<std::size_t> read_at(std::uint64_t offset, void* buffer, std::size_t size) const override {
    return file_->read_at(offset, buffer, size);
  }
  Status sync_data() override { return holds_records() ? Status::ok() : file_->sync_data(); }
  Status sync() override { return holds_records() ? Status::ok() : file_->sync(); }
  Status truncate(std::uint64_t size) override { return file_->truncate(size); }
  Result<std::uint64_t> size() const override { return file_->size(); }

 private:
  bool holds_records() const {
    auto bytes = file_->size();
    return bytes.is_ok() && *bytes > 32;
  }
  std::unique_ptr<File> file_;
};

class LyingFileSystem final : public FileSystem {
 public:
  explicit LyingFileSystem(std::shared_ptr<FileSystem> target) : target_(std::move(target)) {}
  Result<std::unique_ptr<File>> open(const std::filesystem::path& path, OpenMode mode) override {
    auto file = target_->open(path, mode);
    if (!file || path.extension() != ".log") return file;
    return std::unique_ptr<File>(new LyingFile(std::move(*file)));
  }
  Status create_directories(const std::filesystem::path& path) override { return target_->create_directories(path); }
  Status sync_directory(const std::filesystem::path& path) override { return target_->sync_directory(path); }
  Status rename(const std::filesystem::path& from, const std::filesystem::path& to) override { return target_->rename(from, to); }
  Status remove(const std::filesystem::path& path) override { return target_->remove(path); }
  Status remove_all(const std::filesystem::path& path) override { return target_->remove_all(path); }
  Result<std::vector<std::string>> list_directory(const std::filesystem::path& path) override {
    return target_->list_directory(path);
  }
  bool exists(const std::filesystem::path& path) override { return target_->exists(path); }
  bool is_directory(const std::filesystem::path& path) override { return target_->is_directory(path); }
  Result<std::unique_ptr<FileLock>> lock(const std::filesystem::path& path) override { return target_->lock(path); }

 private:
  std::shared_ptr<FileSystem> target_;
};

struct Harness {
  std::shared_ptr<FaultFileSystem> disk = std::make_shared<FaultFileSystem>();
  std::shared_ptr<ProcessFileSystem> process = std::make_shared<ProcessFileSystem>(disk);
  std::unique_ptr<Store> store;
  Checker checker;

  explicit Harness(bool lying = false, FsyncPolicy fsync = FsyncPolicy::always, std::uint32_t partitions = 1) {
    std::shared_ptr<FileSystem> file_system = process;
    if (lying) file_system = std::make_shared<LyingFileSystem>(process);
    auto opened = Store::open(data_directory, StoreOptions{.file_system = file_system, .background_maintenance = false});
    EXPECT_TRUE(opened.is_ok());
    store = std::move(*opened);
    StreamConfig config;
    config.name = "s";
    config.subjects = {"s.*"};
    config.partitions = partitions;
    config.fsync = fsync;
    config.fsync_interval_ms = fsync == FsyncPolicy::interval ? 1000 : 0;
    config.segment_bytes = limits::segment_bytes_min;
    EXPECT_TRUE(store->create_stream(config).is_ok());
    checker.expect_stream("s", {fsync, 0});
  }

  // Publishes `id`; tells the checker only if `record`.
  Result<Position> publish(MessageId id, bool record = true, std::size_t filler = 30) {
    const std::string payload = make_payload(id, filler);
    if (record) checker.attempted(id);
    OutgoingMessage message;
    message.subject = "s.x";
    message.key = "k";
    message.payload = payload;
    auto positions = store->publish(message);
    if (!positions) return positions.status();
    if (record) checker.acked((*positions)[0], id);
    return (*positions)[0];
  }

  CheckReport power_loss_and_check(std::uint64_t seed, PowerLossMode mode) {
    process->power_loss(seed, mode);
    store.reset();
    process = std::make_shared<ProcessFileSystem>(disk);
    double open_ms = 0;
    auto opened = open_timed(data_directory, process, open_ms);
    EXPECT_TRUE(opened.is_ok()) << opened.status().to_string();
    store = std::move(*opened);
    return checker.check(*store, Event::power_loss, open_ms);
  }
};

TEST(Checker, PayloadsRoundTripAndForgeriesAreRejected) {
  const MessageId id{3, 123};
  EXPECT_EQ(make_payload(id, 0), "p3-s000000123|");
  for (std::size_t filler : {0u, 1u, 7u, 8u, 100u}) {
    auto parsed = parse_payload(make_payload(id, filler));
    ASSERT_TRUE(parsed.has_value());
    EXPECT_EQ(*parsed, id);
  }
  std::string forged = make_payload(id, 40);
  forged[30] = forged[30] == 'a' ? 'b' : 'a';
  EXPECT_FALSE(parse_payload(forged).has_value());
  EXPECT_FALSE(parse_payload("hello").has_value());
  EXPECT_FALSE(parse_payload("p1-s1").has_value());
}

TEST(Checker, ACleanRunReportsNothing) {
  Harness h;
  for (std::uint64_t i = 0; i < 200; ++i) ASSERT_TRUE(h.publish({0, i}).is_ok());
  CheckReport report = h.power_loss_and_check(7, PowerLossMode::random);
  EXPECT_TRUE(report.ok()) << report.summary();
  EXPECT_EQ(report.acked_checked, 200u);
  EXPECT_EQ(report.messages_read, 200u);
  EXPECT_GT(report.index_checks, 0u);
}

TEST(Checker, CatchesAcksLostToAnFsyncThatLies) {
  Harness h(/*lying=*/true);
  for (std::uint64_t i = 0; i < 200; ++i) ASSERT_TRUE(h.publish({0, i}).is_ok());
  CheckReport report = h.power_loss_and_check(7, PowerLossMode::drop_all_unsynced);
  EXPECT_FALSE(report.ok());
  EXPECT_GT(report.lost_violations(), 0u) << report.summary();
  EXPECT_EQ(report.lost_allowed, 0u);
  EXPECT_EQ(report.lost, report.lost_prefix + report.lost_middle + report.lost_suffix);
}

TEST(Checker, AllowsAnUnsyncedSuffixOnlyUnderRelaxedPolicies) {
  Harness h(/*lying=*/false, FsyncPolicy::interval);
  for (std::uint64_t i = 0; i < 200; ++i) ASSERT_TRUE(h.publish({0, i}).is_ok());
  CheckReport report = h.power_loss_and_check(7, PowerLossMode::drop_all_unsynced);
  EXPECT_TRUE(report.ok()) << report.summary();
  EXPECT_GT(report.lost_allowed, 0u);
  EXPECT_EQ(report.lost_violations(), 0u);
  EXPECT_EQ(report.lost_suffix, report.lost);
}

TEST(Checker, CatchesUnexpectedRefusedDuplicatedAndOutOfOrderMessages) {
  Harness h;
  ASSERT_TRUE(h.publish({0, 0}).is_ok());
  ASSERT_TRUE(h.publish({0, 1}, /*record=*/false).is_ok());  // never attempted
  h.checker.attempted({0, 2});
  h.checker.refused({0, 2});
  ASSERT_TRUE(h.publish({0, 2}, /*record=*/false).is_ok());  // refused, yet stored
  ASSERT_TRUE(h.publish({0, 5}).is_ok());
  ASSERT_TRUE(h.publish({0, 5}, /*record=*/false).is_ok());  // the same message again
  ASSERT_TRUE(h.publish({0, 4}).is_ok());                   // producer 0 goes backwards
  CheckReport report = h.checker.check(*h.store, Event::none, 0);
  EXPECT_EQ(report.unexpected, 2u) << report.summary();
  EXPECT_EQ(report.duplicates, 1u) << report.summary();
  EXPECT_GE(report.order_violations, 1u) << report.summary();
  EXPECT_FALSE(report.ok());
}

TEST(Checker, CatchesInconsistentOffsets) {
  Harness h;
  ASSERT_TRUE(h.publish({0, 0}).is_ok());
  auto position = h.publish({0, 1}, /*record=*/false);
  ASSERT_TRUE(position.is_ok());
  h.checker.attempted({0, 9});
  h.checker.acked(*position, {0, 9});  // the checker believes offset 1 holds p0-s9
  CheckReport report = h.checker.check(*h.store, Event::none, 0);
  EXPECT_EQ(report.inconsistent_offsets, 1u) << report.summary();
  EXPECT_FALSE(report.ok());
}

TEST(Checker, CatchesRetentionBelowMaxMessagesAndMissingStreams) {
  Harness h;
  for (std::uint64_t i = 0; i < 300; ++i) ASSERT_TRUE(h.publish({0, i}, true, 120).is_ok());
  StreamConfig config = h.store->describe_stream("s")->config;
  config.max_messages = 50;
  ASSERT_TRUE(h.store->update_stream(config).is_ok());
  ASSERT_TRUE(h.store->run_maintenance().is_ok());
  h.checker.expect_stream("s", {FsyncPolicy::always, 200});  // claims more must be kept
  h.checker.expect_stream("ghost", {});
  CheckReport report = h.checker.check(*h.store, Event::none, 0);
  EXPECT_GT(report.retired, 0u);
  EXPECT_EQ(report.retention_violations, 1u) << report.summary();
  EXPECT_EQ(report.missing_streams, 1u) << report.summary();
}

}  // namespace
}  // namespace msgstore::crash
