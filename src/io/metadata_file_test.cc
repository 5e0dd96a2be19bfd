#include "io/metadata_file.h"

#include <gtest/gtest.h>

#include "io/fault_file_system.h"

namespace msgstore::io {
namespace {

TEST(MetadataFile, RoundTripsFields) {
  MetadataFields fields{{"alpha", "1"}, {"beta", "two words"}, {"empty", ""}};
  std::string text = encode_metadata("thing", 3, fields);
  auto decoded = decode_metadata("thing", 3, text);
  ASSERT_TRUE(decoded.is_ok()) << decoded.status().to_string();
  EXPECT_EQ(*decoded, fields);
}

TEST(MetadataFile, EveryByteFlipIsDetected) {
  std::string text = encode_metadata("thing", 1, {{"log_start_offset", "12345"}, {"name", "orders"}});
  for (std::size_t position = 0; position < text.size(); ++position) {
    for (int bit = 0; bit < 8; ++bit) {
      std::string damaged = text;
      damaged[position] = static_cast<char>(damaged[position] ^ (1 << bit));
      auto decoded = decode_metadata("thing", 1, damaged);
      EXPECT_FALSE(decoded.is_ok()) << "flip at byte " << position << " bit " << bit << " went unnoticed";
    }
  }
}

TEST(MetadataFile, EveryTruncationIsDetected) {
  std::string text = encode_metadata("thing", 1, {{"a", "1"}, {"b", "2"}});
  for (std::size_t length = 0; length < text.size(); ++length) {
    EXPECT_FALSE(decode_metadata("thing", 1, text.substr(0, length)).is_ok()) << "length " << length;
  }
}

TEST(MetadataFile, UnknownVersionIsUnsupportedFormat) {
  std::string text = encode_metadata("thing", 2, {{"a", "1"}});
  auto decoded = decode_metadata("thing", 1, text);
  ASSERT_FALSE(decoded.is_ok());
  EXPECT_EQ(decoded.status().code(), ErrorCode::unsupported_format);
}

TEST(MetadataFile, TypedFieldsRejectGarbage) {
  MetadataFields fields{{"good", "42"}, {"bad", "4x2"}, {"negative", "-7"}};
  EXPECT_EQ(*metadata_u64(fields, "good"), 42u);
  EXPECT_EQ(metadata_u64(fields, "bad").status().code(), ErrorCode::corruption);
  EXPECT_EQ(metadata_u64(fields, "missing").status().code(), ErrorCode::corruption);
  EXPECT_EQ(*metadata_i64(fields, "negative"), -7);
}

TEST(MetadataFile, AtomicWriteIsOldOrNewAfterPowerLossAtEveryStep) {
  // Crash after each file-system call of the second write: the file reads back as the old or
  // the new content, never anything else.
  for (std::uint64_t crash_after = 1; crash_after <= 5; ++crash_after) {
    for (std::uint64_t seed = 0; seed < 20; ++seed) {
      FaultFileSystem file_system;
      ASSERT_TRUE(file_system.create_directories("/data").is_ok());
      file_system.make_all_durable();
      ASSERT_TRUE(write_metadata_file(file_system, "/data/x.meta", "thing", 1, {{"v", "old"}}).is_ok());
      // Stop the second write at each of its steps by failing that step's call.
      const FaultFileSystem::Operation kinds[] = {FaultFileSystem::Operation::open, FaultFileSystem::Operation::write,
                                                  FaultFileSystem::Operation::sync, FaultFileSystem::Operation::rename,
                                                  FaultFileSystem::Operation::sync_directory};
      const auto kind = kinds[(crash_after - 1) % 5];
      file_system.fail_after(kind, 1);
      Status written = write_metadata_file(file_system, "/data/x.meta", "thing", 1, {{"v", "new"}});
      file_system.clear_faults();
      file_system.simulate_power_loss(seed * 31 + crash_after);
      auto read = read_metadata_file(file_system, "/data/x.meta", "thing", 1);
      ASSERT_TRUE(read.is_ok()) << "step " << crash_after << " seed " << seed << ": " << read.status().to_string();
      const std::string& value = read->at("v");
      EXPECT_TRUE(value == "old" || value == "new") << value;
      // A failed write may or may not have landed (say the rename was done and the directory
      // sync failed); a successful one must have.
      if (written.is_ok()) {
        EXPECT_EQ(value, "new");
      }
    }
  }
}

TEST(MetadataFile, SuccessfulAtomicWriteSurvivesPowerLoss) {
  for (std::uint64_t seed = 0; seed < 50; ++seed) {
    FaultFileSystem file_system;
    ASSERT_TRUE(file_system.create_directories("/data").is_ok());
    file_system.make_all_durable();
    ASSERT_TRUE(write_metadata_file(file_system, "/data/x.meta", "thing", 1, {{"v", "old"}}).is_ok());
    ASSERT_TRUE(write_metadata_file(file_system, "/data/x.meta", "thing", 1, {{"v", "new"}}).is_ok());
    file_system.simulate_power_loss(seed);
    auto read = read_metadata_file(file_system, "/data/x.meta", "thing", 1);
    ASSERT_TRUE(read.is_ok()) << read.status().to_string();
    EXPECT_EQ(read->at("v"), "new");
  }
}

}  // namespace
}  // namespace msgstore::io
