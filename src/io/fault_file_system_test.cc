#include "io/fault_file_system.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace msgstore {
namespace {

using Operation = FaultFileSystem::Operation;

std::unique_ptr<File> open_or_die(FaultFileSystem& file_system, const std::filesystem::path& path,
                                  OpenMode mode = OpenMode::create) {
  auto file = file_system.open(path, mode);
  EXPECT_TRUE(file.is_ok()) << file.status().to_string();
  return file.is_ok() ? std::move(file).value() : nullptr;
}

void write_or_die(File& file, std::uint64_t offset, const std::string& bytes) {
  Status status = file.write_at(offset, bytes.data(), bytes.size());
  ASSERT_TRUE(status.is_ok()) << status.to_string();
}

std::string read_all(const File& file) {
  auto size = file.size();
  EXPECT_TRUE(size.is_ok()) << size.status().to_string();
  if (!size.is_ok()) return {};
  std::string bytes(*size, '\0');
  auto got = file.read_at(0, bytes.data(), bytes.size());
  EXPECT_TRUE(got.is_ok());
  if (got.is_ok()) bytes.resize(*got);
  return bytes;
}

// A fixture directory /data whose own entry is durable, as a store's data directory would be.
void make_durable_data_directory(FaultFileSystem& file_system) {
  ASSERT_TRUE(file_system.create_directories("/data").is_ok());
  ASSERT_TRUE(file_system.sync_directory("/").is_ok());
}

TEST(FaultFileSystem, WriteReadRoundTrip) {
  FaultFileSystem file_system;
  make_durable_data_directory(file_system);
  auto file = open_or_die(file_system, "/data/a");
  write_or_die(*file, 0, "hello");
  EXPECT_EQ(read_all(*file), "hello");

  write_or_die(*file, 8, "xy");  // beyond the end: the gap reads as zeros
  EXPECT_EQ(read_all(*file), std::string("hello\0\0\0xy", 10));
  EXPECT_EQ(*file->size(), 10u);

  char buffer[16];
  auto got = file->read_at(7, buffer, sizeof buffer);  // short at end of file
  ASSERT_TRUE(got.is_ok());
  EXPECT_EQ(*got, 3u);
  EXPECT_EQ(std::string(buffer, 3), std::string("\0xy", 3));
  got = file->read_at(100, buffer, sizeof buffer);
  ASSERT_TRUE(got.is_ok());
  EXPECT_EQ(*got, 0u);

  ASSERT_TRUE(file->truncate(3).is_ok());
  EXPECT_EQ(read_all(*file), "hel");
  ASSERT_TRUE(file->truncate(5).is_ok());
  EXPECT_EQ(read_all(*file), std::string("hel\0\0", 5));
  EXPECT_EQ(file_system.current_contents("/data/a"), std::string("hel\0\0", 5));
  EXPECT_EQ(file_system.current_contents("data/./a"), std::string("hel\0\0", 5));  // relative = from root
  EXPECT_FALSE(file_system.current_contents("/data/missing").has_value());
}

TEST(FaultFileSystem, CachedReadsAndAdviceChangeNoData) {
  FaultFileSystem file_system;
  auto file = file_system.open("/f", OpenMode::create).value();
  ASSERT_TRUE(file->write_at(0, "abcdef", 6).is_ok());
  char buffer[6] = {};
  // Warm (the default): read_at_if_cached reads like read_at.
  auto cached = file->read_at_if_cached(1, buffer, 4);
  ASSERT_TRUE(cached.is_ok());
  ASSERT_TRUE(cached->has_value());
  EXPECT_EQ(**cached, 4u);
  EXPECT_EQ(std::string(buffer, 4), "bcde");
  // Cold: nothing, counted; read_at still reads.
  file_system.set_cold_reads(true);
  cached = file->read_at_if_cached(0, buffer, 6);
  ASSERT_TRUE(cached.is_ok());
  EXPECT_FALSE(cached->has_value());
  EXPECT_EQ(file_system.counters().cold_reads, 1u);
  EXPECT_EQ(file->read_at(0, buffer, 6).value(), 6u);
  EXPECT_EQ(std::string(buffer, 6), "abcdef");
  // Advice is counted and changes nothing.
  file->will_need(0, 6);
  EXPECT_EQ(file_system.counters().will_need_hints, 1u);
  EXPECT_EQ(file_system.counters().will_need_bytes, 6u);
  EXPECT_EQ(file->size().value(), 6u);
}

TEST(PosixFileSystem, CachedReadsAndAdvice) {
  const auto directory = std::filesystem::temp_directory_path() / ("msgstore-posix-cached-" + std::to_string(::getpid()));
  std::filesystem::remove_all(directory);
  std::filesystem::create_directories(directory);
  {
    auto file = posix_file_system()->open(directory / "f", OpenMode::create).value();
    const std::string bytes(8192, 'x');
    ASSERT_TRUE(file->write_at(0, bytes.data(), bytes.size()).is_ok());
    file->will_need(0, bytes.size());
    std::string back(8192, '\0');
    // Just written: in the page cache, so the read does not wait (or, on a file system without
    // RWF_NOWAIT, answers nothing and the caller reads normally). Never wrong bytes.
    auto cached = file->read_at_if_cached(0, back.data(), back.size());
    ASSERT_TRUE(cached.is_ok()) << cached.status().to_string();
    if (cached->has_value()) {
      EXPECT_EQ(**cached, bytes.size());
      EXPECT_EQ(back, bytes);
    }
    // Past the end: a short read is reported as nothing, not as data.
    cached = file->read_at_if_cached(4096, back.data(), back.size());
    ASSERT_TRUE(cached.is_ok());
    EXPECT_FALSE(cached->has_value());
  }
  std::filesystem::remove_all(directory);
}

TEST(FaultFileSystem, OpenModesAndMissingDirectories) {
  FaultFileSystem file_system;
  auto missing_parent = file_system.open("/nowhere/a", OpenMode::create);
  ASSERT_FALSE(missing_parent.is_ok());
  EXPECT_EQ(missing_parent.status().code(), ErrorCode::io_error);

  make_durable_data_directory(file_system);
  EXPECT_EQ(file_system.open("/data/a", OpenMode::read_only).status().code(), ErrorCode::io_error);
  EXPECT_EQ(file_system.open("/data/a", OpenMode::read_write).status().code(), ErrorCode::io_error);
  EXPECT_FALSE(file_system.exists("/data/a"));

  auto created = open_or_die(file_system, "/data/a", OpenMode::create);
  write_or_die(*created, 0, "abc");
  auto reopened = open_or_die(file_system, "/data/a", OpenMode::create);
  EXPECT_EQ(read_all(*reopened), "abc");  // create keeps an existing file's bytes
  auto read_only = open_or_die(file_system, "/data/a", OpenMode::read_only);
  EXPECT_EQ(read_only->write_at(0, "z", 1).code(), ErrorCode::io_error);
  EXPECT_EQ(read_only->truncate(0).code(), ErrorCode::io_error);
  auto emptied = open_or_die(file_system, "/data/a", OpenMode::create_truncate);
  EXPECT_EQ(*emptied->size(), 0u);
  EXPECT_EQ(*read_only->size(), 0u);

  EXPECT_EQ(file_system.open("/data", OpenMode::read_only).status().code(), ErrorCode::io_error);
  EXPECT_EQ(file_system.open("/data/a/b", OpenMode::create).status().code(), ErrorCode::io_error);
}

TEST(FaultFileSystem, HandlesShareTheFileObjectAndOutliveTheName) {
  FaultFileSystem file_system;
  make_durable_data_directory(file_system);
  auto writer = open_or_die(file_system, "/data/a");
  auto reader = open_or_die(file_system, "/data/a", OpenMode::read_only);
  write_or_die(*writer, 0, "shared");
  EXPECT_EQ(read_all(*reader), "shared");

  ASSERT_TRUE(file_system.remove("/data/a").is_ok());
  EXPECT_FALSE(file_system.exists("/data/a"));
  EXPECT_EQ(read_all(*reader), "shared");  // unlinked, still open

  auto old = open_or_die(file_system, "/data/b");
  write_or_die(*old, 0, "old");
  auto replacement = open_or_die(file_system, "/data/c");
  write_or_die(*replacement, 0, "new");
  ASSERT_TRUE(file_system.rename("/data/c", "/data/b").is_ok());
  EXPECT_EQ(read_all(*old), "old");  // renamed over, still open
  EXPECT_EQ(file_system.current_contents("/data/b"), "new");
}

TEST(FaultFileSystem, DirectoryOperations) {
  FaultFileSystem file_system;
  ASSERT_TRUE(file_system.create_directories("/x/y/z").is_ok());
  ASSERT_TRUE(file_system.create_directories("/x/y/z").is_ok());  // idempotent
  EXPECT_TRUE(file_system.is_directory("/x"));
  EXPECT_TRUE(file_system.is_directory("/x/y/z/"));
  EXPECT_TRUE(file_system.exists("/"));
  open_or_die(file_system, "/x/y/file");
  EXPECT_TRUE(file_system.exists("/x/y/file"));
  EXPECT_FALSE(file_system.is_directory("/x/y/file"));
  EXPECT_FALSE(file_system.create_directories("/x/y/file/sub").is_ok());

  auto names = file_system.list_directory("/x/y");
  ASSERT_TRUE(names.is_ok());
  std::vector<std::string> sorted = *names;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(sorted, (std::vector<std::string>{"file", "z"}));
  EXPECT_FALSE(file_system.list_directory("/missing").is_ok());
  EXPECT_FALSE(file_system.list_directory("/x/y/file").is_ok());

  EXPECT_FALSE(file_system.remove("/x/y").is_ok());  // not empty
  EXPECT_TRUE(file_system.remove("/x/y/z").is_ok());
  EXPECT_TRUE(file_system.remove("/x/y/missing").is_ok());
  EXPECT_TRUE(file_system.remove("/missing/deeper").is_ok());

  // Renaming a directory moves its subtree; moving it below itself is refused.
  ASSERT_TRUE(file_system.rename("/x/y", "/moved").is_ok());
  EXPECT_TRUE(file_system.exists("/moved/file"));
  EXPECT_FALSE(file_system.exists("/x/y"));
  EXPECT_FALSE(file_system.rename("/moved", "/moved/inner").is_ok());
  EXPECT_FALSE(file_system.rename("/missing", "/other").is_ok());
  ASSERT_TRUE(file_system.create_directories("/full/child").is_ok());
  EXPECT_FALSE(file_system.rename("/moved", "/full").is_ok());        // target not empty
  EXPECT_FALSE(file_system.rename("/moved/file", "/full").is_ok());   // file over directory
  EXPECT_FALSE(file_system.rename("/full", "/moved/file").is_ok());   // directory over file

  ASSERT_TRUE(file_system.remove_all("/moved").is_ok());
  EXPECT_FALSE(file_system.exists("/moved"));
  EXPECT_TRUE(file_system.remove_all("/moved").is_ok());  // missing is fine
  EXPECT_EQ(file_system.all_files(), std::vector<std::filesystem::path>{});
}

TEST(FaultFileSystem, SyncedContentSurvivesAndUnsyncedVanishes) {
  FaultFileSystem file_system;
  make_durable_data_directory(file_system);
  auto file = open_or_die(file_system, "/data/log");
  ASSERT_TRUE(file_system.sync_directory("/data").is_ok());
  write_or_die(*file, 0, "durable|");
  ASSERT_TRUE(file->sync_data().is_ok());
  write_or_die(*file, 8, "lost");
  ASSERT_TRUE(file->truncate(4).is_ok());
  EXPECT_EQ(file_system.durable_contents("/data/log"), "durable|");
  EXPECT_EQ(file_system.current_contents("/data/log"), "dura");

  file_system.simulate_power_loss(1, PowerLossMode::drop_all_unsynced);
  EXPECT_EQ(file_system.current_contents("/data/log"), "durable|");

  // The post-crash state is itself durable: another crash changes nothing.
  file_system.simulate_power_loss(2, PowerLossMode::random);
  EXPECT_EQ(file_system.current_contents("/data/log"), "durable|");
}

TEST(FaultFileSystem, FileSyncAlsoMakesContentDurable) {
  FaultFileSystem file_system;
  make_durable_data_directory(file_system);
  auto file = open_or_die(file_system, "/data/log");
  ASSERT_TRUE(file_system.sync_directory("/data").is_ok());
  write_or_die(*file, 0, "fsync");
  ASSERT_TRUE(file->sync().is_ok());
  file_system.simulate_power_loss(1, PowerLossMode::drop_all_unsynced);
  EXPECT_EQ(file_system.current_contents("/data/log"), "fsync");
}

TEST(FaultFileSystem, CreatedFileNeedsItsDirectorySynced) {
  FaultFileSystem file_system;
  make_durable_data_directory(file_system);
  {
    auto file = open_or_die(file_system, "/data/new");
    write_or_die(*file, 0, "content");
    ASSERT_TRUE(file->sync_data().is_ok());  // content durable, name not
  }
  file_system.simulate_power_loss(1, PowerLossMode::keep_all_unsynced);
  EXPECT_FALSE(file_system.exists("/data/new"));

  {
    auto file = open_or_die(file_system, "/data/new");
    write_or_die(*file, 0, "content");
    ASSERT_TRUE(file->sync_data().is_ok());
  }
  ASSERT_TRUE(file_system.sync_directory("/data").is_ok());
  file_system.simulate_power_loss(1, PowerLossMode::drop_all_unsynced);
  EXPECT_EQ(file_system.current_contents("/data/new"), "content");
}

TEST(FaultFileSystem, NamedButNeverSyncedFileComesBackEmpty) {
  FaultFileSystem file_system;
  make_durable_data_directory(file_system);
  auto file = open_or_die(file_system, "/data/new");
  write_or_die(*file, 0, "unsynced");
  ASSERT_TRUE(file_system.sync_directory("/data").is_ok());
  file_system.simulate_power_loss(1, PowerLossMode::drop_all_unsynced);
  EXPECT_EQ(file_system.current_contents("/data/new"), "");
}

TEST(FaultFileSystem, NewDirectoryNeedsItsParentSynced) {
  FaultFileSystem file_system;
  ASSERT_TRUE(file_system.create_directories("/a/b").is_ok());
  ASSERT_TRUE(file_system.sync_directory("/a").is_ok());  // b's entry in a, but a's entry in / is not durable
  file_system.simulate_power_loss(1);
  EXPECT_FALSE(file_system.exists("/a"));

  ASSERT_TRUE(file_system.create_directories("/a/b").is_ok());
  ASSERT_TRUE(file_system.sync_directory("/").is_ok());
  file_system.simulate_power_loss(1);
  EXPECT_TRUE(file_system.is_directory("/a"));
  EXPECT_FALSE(file_system.exists("/a/b"));  // a itself was never synced

  ASSERT_TRUE(file_system.create_directories("/a/b").is_ok());
  ASSERT_TRUE(file_system.sync_directory("/a").is_ok());
  file_system.simulate_power_loss(1);
  EXPECT_TRUE(file_system.is_directory("/a/b"));
}

TEST(FaultFileSystem, UnsyncedRemoveIsUndone) {
  FaultFileSystem file_system;
  make_durable_data_directory(file_system);
  {
    auto file = open_or_die(file_system, "/data/keep");
    write_or_die(*file, 0, "still here");
    ASSERT_TRUE(file->sync_data().is_ok());
  }
  ASSERT_TRUE(file_system.sync_directory("/data").is_ok());
  ASSERT_TRUE(file_system.remove("/data/keep").is_ok());
  file_system.simulate_power_loss(1, PowerLossMode::drop_all_unsynced);
  EXPECT_EQ(file_system.current_contents("/data/keep"), "still here");

  ASSERT_TRUE(file_system.remove("/data/keep").is_ok());
  ASSERT_TRUE(file_system.sync_directory("/data").is_ok());
  file_system.simulate_power_loss(1, PowerLossMode::drop_all_unsynced);
  EXPECT_FALSE(file_system.exists("/data/keep"));
}

TEST(FaultFileSystem, UnsyncedRenameIsUndone) {
  FaultFileSystem file_system;
  make_durable_data_directory(file_system);
  {
    auto current = open_or_die(file_system, "/data/CURRENT");
    write_or_die(*current, 0, "v1");
    ASSERT_TRUE(current->sync_data().is_ok());
  }
  ASSERT_TRUE(file_system.sync_directory("/data").is_ok());

  // The write-temporary, sync, rename pattern, without the final directory sync.
  auto write_temporary = [&] {
    auto temporary = open_or_die(file_system, "/data/CURRENT.tmp", OpenMode::create_truncate);
    write_or_die(*temporary, 0, "v2");
    ASSERT_TRUE(temporary->sync_data().is_ok());
    ASSERT_TRUE(file_system.rename("/data/CURRENT.tmp", "/data/CURRENT").is_ok());
  };
  write_temporary();
  EXPECT_EQ(file_system.current_contents("/data/CURRENT"), "v2");
  file_system.simulate_power_loss(1, PowerLossMode::keep_all_unsynced);
  EXPECT_EQ(file_system.current_contents("/data/CURRENT"), "v1");
  EXPECT_FALSE(file_system.exists("/data/CURRENT.tmp"));  // its creation was never durable either

  write_temporary();
  ASSERT_TRUE(file_system.sync_directory("/data").is_ok());
  file_system.simulate_power_loss(1, PowerLossMode::drop_all_unsynced);
  EXPECT_EQ(file_system.current_contents("/data/CURRENT"), "v2");
  EXPECT_FALSE(file_system.exists("/data/CURRENT.tmp"));
}

TEST(FaultFileSystem, RenameSidesBecomeDurableIndependently) {
  FaultFileSystem file_system;
  ASSERT_TRUE(file_system.create_directories("/from").is_ok());
  ASSERT_TRUE(file_system.create_directories("/to").is_ok());
  ASSERT_TRUE(file_system.sync_directory("/").is_ok());
  {
    auto file = open_or_die(file_system, "/from/f");
    write_or_die(*file, 0, "moving");
    ASSERT_TRUE(file->sync_data().is_ok());
  }
  ASSERT_TRUE(file_system.sync_directory("/from").is_ok());

  // Only the destination synced: both names survive, naming one file.
  ASSERT_TRUE(file_system.rename("/from/f", "/to/f").is_ok());
  ASSERT_TRUE(file_system.sync_directory("/to").is_ok());
  file_system.simulate_power_loss(1);
  EXPECT_EQ(file_system.current_contents("/from/f"), "moving");
  EXPECT_EQ(file_system.current_contents("/to/f"), "moving");
  EXPECT_EQ(file_system.all_files(), (std::vector<std::filesystem::path>{"/from/f", "/to/f"}));
  ASSERT_TRUE(file_system.rename("/from/f", "/to/f").is_ok());  // same object: POSIX does nothing
  EXPECT_TRUE(file_system.exists("/from/f"));

  // Only the source synced: neither name survives.
  ASSERT_TRUE(file_system.remove("/to/f").is_ok());
  ASSERT_TRUE(file_system.sync_directory("/to").is_ok());
  ASSERT_TRUE(file_system.rename("/from/f", "/to/f").is_ok());
  ASSERT_TRUE(file_system.sync_directory("/from").is_ok());
  file_system.simulate_power_loss(1);
  EXPECT_EQ(file_system.all_files(), std::vector<std::filesystem::path>{});
}

TEST(FaultFileSystem, DirectoryRenameIsUndoneWithItsSubtree) {
  FaultFileSystem file_system;
  ASSERT_TRUE(file_system.create_directories("/streams/orders").is_ok());
  {
    auto file = open_or_die(file_system, "/streams/orders/segment");
    write_or_die(*file, 0, "records");
    ASSERT_TRUE(file->sync_data().is_ok());
  }
  ASSERT_TRUE(file_system.sync_directory("/streams/orders").is_ok());
  ASSERT_TRUE(file_system.sync_directory("/streams").is_ok());
  ASSERT_TRUE(file_system.sync_directory("/").is_ok());

  ASSERT_TRUE(file_system.rename("/streams/orders", "/streams/orders.deleted").is_ok());
  file_system.simulate_power_loss(3);
  EXPECT_EQ(file_system.current_contents("/streams/orders/segment"), "records");
  EXPECT_FALSE(file_system.exists("/streams/orders.deleted"));

  ASSERT_TRUE(file_system.rename("/streams/orders", "/streams/orders.deleted").is_ok());
  ASSERT_TRUE(file_system.sync_directory("/streams").is_ok());
  file_system.simulate_power_loss(3);
  EXPECT_EQ(file_system.current_contents("/streams/orders.deleted/segment"), "records");
  EXPECT_FALSE(file_system.exists("/streams/orders"));
}

TEST(FaultFileSystem, CrossedDirectoryRenamesNeverAliasOrLeak) {
  // Each rename side synced separately can leave durable entries that would make a directory
  // reachable twice, or its own ancestor; the revert keeps one name and the tree acyclic.
  FaultFileSystem file_system;
  ASSERT_TRUE(file_system.create_directories("/a").is_ok());
  ASSERT_TRUE(file_system.create_directories("/b").is_ok());
  ASSERT_TRUE(file_system.rename("/b", "/a/b").is_ok());
  ASSERT_TRUE(file_system.sync_directory("/a").is_ok());
  ASSERT_TRUE(file_system.sync_directory("/").is_ok());      // / = {a}, a = {b}
  ASSERT_TRUE(file_system.rename("/a/b", "/b").is_ok());
  ASSERT_TRUE(file_system.sync_directory("/").is_ok());      // / = {a, b}, a still durably {b}
  ASSERT_TRUE(file_system.rename("/a", "/b/a").is_ok());
  ASSERT_TRUE(file_system.sync_directory("/b").is_ok());     // b = {a}: a -> b -> a durably
  file_system.simulate_power_loss(5);
  EXPECT_TRUE(file_system.is_directory("/a"));
  EXPECT_TRUE(file_system.is_directory("/b"));
  EXPECT_FALSE(file_system.exists("/a/b") && file_system.exists("/b/a"));
  // Destroying the file system with such history must not leak (checked under ASan).
  FaultFileSystem uncrashed;
  ASSERT_TRUE(uncrashed.create_directories("/a").is_ok());
  ASSERT_TRUE(uncrashed.create_directories("/b").is_ok());
  ASSERT_TRUE(uncrashed.rename("/b", "/a/b").is_ok());
  ASSERT_TRUE(uncrashed.sync_directory("/a").is_ok());
  ASSERT_TRUE(uncrashed.sync_directory("/").is_ok());
  ASSERT_TRUE(uncrashed.rename("/a/b", "/b").is_ok());
  ASSERT_TRUE(uncrashed.sync_directory("/").is_ok());
  ASSERT_TRUE(uncrashed.rename("/a", "/b/a").is_ok());
  ASSERT_TRUE(uncrashed.sync_directory("/b").is_ok());
}

TEST(FaultFileSystem, KeepAllUnsyncedKeepsEveryWrite) {
  FaultFileSystem file_system;
  make_durable_data_directory(file_system);
  auto file = open_or_die(file_system, "/data/log");
  ASSERT_TRUE(file_system.sync_directory("/data").is_ok());
  write_or_die(*file, 0, "first ");
  ASSERT_TRUE(file->sync_data().is_ok());
  write_or_die(*file, 6, "second third");
  ASSERT_TRUE(file->truncate(12).is_ok());
  write_or_die(*file, 1000, "far");
  const std::string expected = *file_system.current_contents("/data/log");
  file_system.simulate_power_loss(9, PowerLossMode::keep_all_unsynced);
  EXPECT_EQ(file_system.current_contents("/data/log"), expected);
}

TEST(FaultFileSystem, ProcessCrashLosesNothing) {
  FaultFileSystem file_system;
  ASSERT_TRUE(file_system.create_directories("/data").is_ok());
  auto file = open_or_die(file_system, "/data/log");
  write_or_die(*file, 0, "never synced");
  file_system.simulate_process_crash();
  EXPECT_EQ(file_system.current_contents("/data/log"), "never synced");
  EXPECT_EQ(file->size().status().code(), ErrorCode::io_error);
}

TEST(FaultFileSystem, RandomPowerLossNeverDamagesSyncedPrefix) {
  const std::string synced(1000, 's');  // not sector aligned on purpose
  std::vector<std::string> appends;
  for (int index = 0; index < 3; ++index) appends.push_back(std::string(700, static_cast<char>('a' + index)));
  const std::size_t full_size = synced.size() + 3 * 700;
  bool saw_everything_kept = false, saw_everything_dropped = false, saw_mixed = false;
  for (std::uint64_t seed = 0; seed < 200; ++seed) {
    FaultFileSystem file_system;
    make_durable_data_directory(file_system);
    auto file = open_or_die(file_system, "/data/log");
    ASSERT_TRUE(file_system.sync_directory("/data").is_ok());
    write_or_die(*file, 0, synced);
    ASSERT_TRUE(file->sync_data().is_ok());
    std::string expected = synced;
    for (const std::string& append : appends) {
      write_or_die(*file, expected.size(), append);
      expected += append;
    }
    file_system.simulate_power_loss(seed);
    auto after = file_system.current_contents("/data/log");
    ASSERT_TRUE(after.has_value());
    ASSERT_GE(after->size(), synced.size()) << "seed " << seed;
    ASSERT_LE(after->size(), full_size) << "seed " << seed;
    ASSERT_EQ(after->substr(0, synced.size()), synced) << "seed " << seed;
    EXPECT_EQ(*after, *file_system.durable_contents("/data/log"));
    if (*after == expected) {
      saw_everything_kept = true;
    } else if (*after == synced) {
      saw_everything_dropped = true;
    } else {
      saw_mixed = true;
    }
  }
  EXPECT_TRUE(saw_everything_kept);
  EXPECT_TRUE(saw_everything_dropped);
  EXPECT_TRUE(saw_mixed);
}

TEST(FaultFileSystem, RandomPowerLossOnlyTouchesUnsyncedRanges) {
  bool saw_torn_sector = false;
  for (std::uint64_t seed = 0; seed < 200; ++seed) {
    FaultFileSystem file_system;
    make_durable_data_directory(file_system);
    auto file = open_or_die(file_system, "/data/page");
    ASSERT_TRUE(file_system.sync_directory("/data").is_ok());
    write_or_die(*file, 0, std::string(4096, 'A'));
    ASSERT_TRUE(file->sync_data().is_ok());
    write_or_die(*file, 1024, std::string(1024, 'B'));  // exactly sectors 2 and 3
    file_system.simulate_power_loss(seed);
    auto after = *file_system.current_contents("/data/page");
    ASSERT_EQ(after.size(), 4096u) << "seed " << seed;
    EXPECT_EQ(after.substr(0, 1024), std::string(1024, 'A')) << "seed " << seed;
    EXPECT_EQ(after.substr(2048), std::string(2048, 'A')) << "seed " << seed;
    const std::string first = after.substr(1024, 512), second = after.substr(1536, 512);
    // A sector that is neither all old nor all new was garbled.
    for (const std::string& sector : {first, second}) {
      if (sector != std::string(512, 'A') && sector != std::string(512, 'B')) saw_torn_sector = true;
    }
    if (first != second) saw_torn_sector = true;
  }
  EXPECT_TRUE(saw_torn_sector);
}

TEST(FaultFileSystem, SameSeedSameCrash) {
  auto crash = [](std::uint64_t seed) {
    FaultFileSystem file_system;
    make_durable_data_directory(file_system);
    auto file = open_or_die(file_system, "/data/log");
    EXPECT_TRUE(file_system.sync_directory("/data").is_ok());
    for (int index = 0; index < 16; ++index) write_or_die(*file, index * 300, std::string(300, static_cast<char>('a' + index)));
    file_system.simulate_power_loss(seed);
    return *file_system.current_contents("/data/log");
  };
  std::set<std::string> outcomes;
  for (std::uint64_t seed = 0; seed < 10; ++seed) {
    EXPECT_EQ(crash(seed), crash(seed));
    outcomes.insert(crash(seed));
  }
  EXPECT_GT(outcomes.size(), 1u);
}

TEST(FaultFileSystem, HandlesAreInvalidAfterCrash) {
  FaultFileSystem file_system;
  make_durable_data_directory(file_system);
  auto file = open_or_die(file_system, "/data/log");
  ASSERT_TRUE(file_system.sync_directory("/data").is_ok());
  write_or_die(*file, 0, "x");
  file_system.simulate_power_loss(1);
  char byte;
  std::vector<Status> failures = {file->write_at(0, "y", 1), file->read_at(0, &byte, 1).status(), file->sync_data(),
                                  file->sync(), file->truncate(0), file->size().status()};
  for (const Status& status : failures) {
    EXPECT_EQ(status.code(), ErrorCode::io_error);
    EXPECT_EQ(status.message(), "file handle invalidated by simulated crash");
  }
  auto reopened = open_or_die(file_system, "/data/log", OpenMode::read_write);
  write_or_die(*reopened, 0, "after");
  EXPECT_EQ(read_all(*reopened), "after");
}

TEST(FaultFileSystem, FailedWriteAppliesNothing) {
  FaultFileSystem file_system;
  make_durable_data_directory(file_system);
  auto file = open_or_die(file_system, "/data/log");
  file_system.fail_after(Operation::write, 2);
  write_or_die(*file, 0, "one");
  Status failed = file->write_at(3, "two", 3);
  EXPECT_EQ(failed.code(), ErrorCode::io_error);
  EXPECT_EQ(file_system.current_contents("/data/log"), "one");
  write_or_die(*file, 3, "three");  // the failure fires once
  EXPECT_EQ(file_system.current_contents("/data/log"), "onethree");
  EXPECT_EQ(file_system.counters().writes, 2u);
}

TEST(FaultFileSystem, FailedSyncLeavesDataUnsyncedUntilASyncSucceeds) {
  FaultFileSystem file_system;
  make_durable_data_directory(file_system);
  auto file = open_or_die(file_system, "/data/log");
  ASSERT_TRUE(file_system.sync_directory("/data").is_ok());
  write_or_die(*file, 0, "data");
  file_system.fail_after(Operation::sync, 1);
  EXPECT_EQ(file->sync_data().code(), ErrorCode::io_error);
  EXPECT_EQ(file_system.durable_contents("/data/log"), "");
  file_system.simulate_power_loss(1, PowerLossMode::drop_all_unsynced);
  EXPECT_EQ(file_system.current_contents("/data/log"), "");

  file = open_or_die(file_system, "/data/log");
  write_or_die(*file, 0, "data");
  file_system.fail_after(Operation::sync, 1);
  EXPECT_EQ(file->sync().code(), ErrorCode::io_error);  // fsync counts as a sync too
  ASSERT_TRUE(file->sync_data().is_ok());
  file_system.simulate_power_loss(1, PowerLossMode::drop_all_unsynced);
  EXPECT_EQ(file_system.current_contents("/data/log"), "data");
  EXPECT_EQ(file_system.counters().syncs, 1u);
}

TEST(FaultFileSystem, FailedRenameOpenDirectorySyncAndTruncate) {
  FaultFileSystem file_system;
  make_durable_data_directory(file_system);
  auto file = open_or_die(file_system, "/data/a");
  write_or_die(*file, 0, "abcdef");

  file_system.fail_after(Operation::rename, 1);
  EXPECT_EQ(file_system.rename("/data/a", "/data/b").code(), ErrorCode::io_error);
  EXPECT_TRUE(file_system.exists("/data/a"));
  EXPECT_FALSE(file_system.exists("/data/b"));

  file_system.fail_after(Operation::open, 1);
  EXPECT_EQ(file_system.open("/data/c", OpenMode::create).status().code(), ErrorCode::io_error);
  EXPECT_FALSE(file_system.exists("/data/c"));
  EXPECT_TRUE(file_system.open("/data/c", OpenMode::create).is_ok());

  file_system.fail_after(Operation::sync_directory, 1);
  EXPECT_EQ(file_system.sync_directory("/data").code(), ErrorCode::io_error);
  file_system.simulate_power_loss(1, PowerLossMode::keep_all_unsynced);
  EXPECT_FALSE(file_system.exists("/data/a"));  // the failed directory sync made nothing durable

  file = open_or_die(file_system, "/data/a");
  write_or_die(*file, 0, "abcdef");
  file_system.fail_after(Operation::truncate, 1);
  EXPECT_EQ(file->truncate(2).code(), ErrorCode::io_error);
  EXPECT_EQ(*file->size(), 6u);
  ASSERT_TRUE(file->truncate(2).is_ok());
  EXPECT_EQ(*file->size(), 2u);

  const FaultFileSystem::Counters counters = file_system.counters();
  EXPECT_EQ(counters.renames, 0u);
  EXPECT_EQ(counters.directory_syncs, 1u);  // the fixture's sync of /
  EXPECT_EQ(counters.truncates, 1u);
  EXPECT_EQ(counters.power_losses, 1u);
}

TEST(FaultFileSystem, FaultsCanBeCancelled) {
  FaultFileSystem file_system;
  make_durable_data_directory(file_system);
  file_system.fail_after(Operation::sync_directory, 1);
  file_system.fail_after(Operation::sync_directory, 0);
  EXPECT_TRUE(file_system.sync_directory("/data").is_ok());
  file_system.fail_after(Operation::rename, 1);
  file_system.fail_after(Operation::open, 3);
  file_system.clear_faults();
  auto file = open_or_die(file_system, "/data/a");
  EXPECT_TRUE(file_system.rename("/data/a", "/data/b").is_ok());
}

TEST(FaultFileSystem, QuotaRefusesGrowthWithNoSpace) {
  FaultFileSystem file_system;
  make_durable_data_directory(file_system);
  file_system.set_quota_bytes(100);
  auto file = open_or_die(file_system, "/data/a");
  write_or_die(*file, 0, std::string(60, 'a'));
  auto other = open_or_die(file_system, "/data/b");
  Status refused = other->write_at(0, std::string(50, 'b').data(), 50);
  EXPECT_EQ(refused.code(), ErrorCode::no_space);
  EXPECT_EQ(*other->size(), 0u);  // nothing written
  EXPECT_EQ(file_system.used_bytes(), 60u);
  write_or_die(*file, 0, std::string(60, 'c'));  // overwriting does not grow
  write_or_die(*other, 0, std::string(40, 'b'));  // exactly at the quota
  EXPECT_EQ(file->write_at(60, "x", 1).code(), ErrorCode::no_space);
  ASSERT_TRUE(file->truncate(500).is_ok());  // truncate is never refused

  file_system.set_quota_bytes(1000);
  write_or_die(*other, 40, std::string(100, 'b'));
  file_system.set_quota_bytes(0);
  write_or_die(*other, 0, std::string(10000, 'b'));
}

TEST(FaultFileSystem, QuotaCountsUnlinkedOpenFilesUntilClosed) {
  FaultFileSystem file_system;
  make_durable_data_directory(file_system);
  auto file = open_or_die(file_system, "/data/a");
  write_or_die(*file, 0, std::string(80, 'a'));
  file_system.set_quota_bytes(100);
  ASSERT_TRUE(file_system.remove("/data/a").is_ok());
  auto other = open_or_die(file_system, "/data/b");
  EXPECT_EQ(other->write_at(0, std::string(50, 'b').data(), 50).code(), ErrorCode::no_space);
  file.reset();
  write_or_die(*other, 0, std::string(50, 'b'));
  EXPECT_EQ(file_system.used_bytes(), 50u);
}

TEST(FaultFileSystem, LocksConflictUntilReleased) {
  FaultFileSystem file_system;
  make_durable_data_directory(file_system);
  auto first = file_system.lock("/data/LOCK");
  ASSERT_TRUE(first.is_ok());
  EXPECT_TRUE(file_system.exists("/data/LOCK"));
  auto second = file_system.lock("/data/../data/LOCK");
  ASSERT_FALSE(second.is_ok());
  EXPECT_EQ(second.status().code(), ErrorCode::store_locked);
  EXPECT_TRUE(file_system.lock("/data/OTHER").is_ok());
  EXPECT_EQ(file_system.lock("/missing/LOCK").status().code(), ErrorCode::io_error);

  first = Status(ErrorCode::closed, "released");  // destroys the FileLock
  auto third = file_system.lock("/data/LOCK");
  ASSERT_TRUE(third.is_ok());

  // A crash releases every lock; the stale FileLock must not release its successor.
  ASSERT_TRUE(file_system.sync_directory("/data").is_ok());
  file_system.simulate_power_loss(1);
  auto after_crash = file_system.lock("/data/LOCK");
  ASSERT_TRUE(after_crash.is_ok());
  third = Status(ErrorCode::closed, "released");
  EXPECT_EQ(file_system.lock("/data/LOCK").status().code(), ErrorCode::store_locked);
}

TEST(FaultFileSystem, CorruptAndFlipBitDamageBothImages) {
  FaultFileSystem file_system;
  make_durable_data_directory(file_system);
  auto file = open_or_die(file_system, "/data/log");
  ASSERT_TRUE(file_system.sync_directory("/data").is_ok());
  write_or_die(*file, 0, "abcdefgh");
  ASSERT_TRUE(file->sync_data().is_ok());
  ASSERT_TRUE(file_system.corrupt("/data/log", 2, "XY").is_ok());
  ASSERT_TRUE(file_system.flip_bit("/data/log", 0, 5).is_ok());  // 'a' ^ 0x20 == 'A'
  EXPECT_EQ(read_all(*file), "AbXYefgh");
  EXPECT_EQ(file_system.durable_contents("/data/log"), "AbXYefgh");
  file_system.simulate_power_loss(1, PowerLossMode::drop_all_unsynced);
  EXPECT_EQ(file_system.current_contents("/data/log"), "AbXYefgh");

  EXPECT_EQ(file_system.corrupt("/data/missing", 0, "x").code(), ErrorCode::io_error);
  EXPECT_EQ(file_system.corrupt("/data/log", 100, "x").code(), ErrorCode::invalid_argument);
  EXPECT_EQ(file_system.flip_bit("/data/log", 100, 0).code(), ErrorCode::invalid_argument);
  EXPECT_EQ(file_system.flip_bit("/data/log", 0, 8).code(), ErrorCode::invalid_argument);
}

TEST(FaultFileSystem, AllFilesAndCounters) {
  FaultFileSystem file_system;
  ASSERT_TRUE(file_system.create_directories("/s/p0").is_ok());
  auto segment = open_or_die(file_system, "/s/p0/00000.log");
  auto index = open_or_die(file_system, "/s/p0/00000.index");
  open_or_die(file_system, "/top");
  EXPECT_EQ(file_system.all_files(),
            (std::vector<std::filesystem::path>{"/s/p0/00000.index", "/s/p0/00000.log", "/top"}));

  file_system.reset_counters();
  write_or_die(*segment, 0, "12345");
  write_or_die(*index, 0, "12");
  ASSERT_TRUE(segment->sync_data().is_ok());
  ASSERT_TRUE(index->sync().is_ok());
  ASSERT_TRUE(file_system.sync_directory("/s/p0").is_ok());
  ASSERT_TRUE(file_system.rename("/top", "/s/top").is_ok());
  const FaultFileSystem::Counters counters = file_system.counters();
  EXPECT_EQ(counters.writes, 2u);
  EXPECT_EQ(counters.written_bytes, 7u);
  EXPECT_EQ(counters.syncs, 2u);
  EXPECT_EQ(counters.directory_syncs, 1u);
  EXPECT_EQ(counters.renames, 1u);
  EXPECT_EQ(counters.opens, 0u);
}

TEST(FaultFileSystem, MakeAllDurableForFixtures) {
  FaultFileSystem file_system;
  ASSERT_TRUE(file_system.create_directories("/data/streams").is_ok());
  auto file = open_or_die(file_system, "/data/streams/meta");
  write_or_die(*file, 0, "fixture");
  file_system.make_all_durable();
  file_system.simulate_power_loss(1, PowerLossMode::drop_all_unsynced);
  EXPECT_EQ(file_system.current_contents("/data/streams/meta"), "fixture");
}

TEST(FaultFileSystem, ConcurrentAppendsAndSyncs) {
  FaultFileSystem file_system;
  make_durable_data_directory(file_system);
  auto file = open_or_die(file_system, "/data/log");
  constexpr int threads = 4, writes_per_thread = 200, record_bytes = 10;
  std::vector<std::thread> workers;
  for (int thread = 0; thread < threads; ++thread) {
    workers.emplace_back([&, thread] {
      for (int write = 0; write < writes_per_thread; ++write) {
        const std::uint64_t offset = static_cast<std::uint64_t>(write * threads + thread) * record_bytes;
        const std::string record(record_bytes, static_cast<char>('a' + thread));
        EXPECT_TRUE(file->write_at(offset, record.data(), record.size()).is_ok());
        if (write % 50 == 0) {
          EXPECT_TRUE(file->sync_data().is_ok());
        }
      }
    });
  }
  for (auto& worker : workers) worker.join();
  EXPECT_EQ(*file->size(), static_cast<std::uint64_t>(threads * writes_per_thread * record_bytes));
  EXPECT_EQ(file_system.counters().writes, static_cast<std::uint64_t>(threads * writes_per_thread));
}

}  // namespace
}  // namespace msgstore
