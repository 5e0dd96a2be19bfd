// Helpers shared by the Store tests (store_test, policies_test, subscription_test): a stream
// configuration, an outgoing message, opening a store with test-friendly options, and reading a
// whole partition back. Failures are reported through gtest (ADD_FAILURE / EXPECT), so a test
// keeps going and says where it broke.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "msgstore/store.h"

namespace msgstore::testing {

StreamConfig stream_config(std::string name, std::vector<std::string> subjects, std::uint32_t partitions = 1,
                           FsyncPolicy fsync = FsyncPolicy::always);

OutgoingMessage message(std::string_view subject, std::string_view payload);

// Who runs retention, compaction and TTL expiry in a test store.
enum class Maintenance {
  by_hand,        // background maintenance off: the test calls Store::run_maintenance()
  as_configured,  // StoreOptions::background_maintenance as the test set it (default on)
};

// Opens `directory`; nullptr (and a test failure) when the store refuses.
std::unique_ptr<Store> open_store(const std::filesystem::path& directory, StoreOptions options = {},
                                  Maintenance maintenance = Maintenance::by_hand);

// Every readable message of one partition, from the log start to the high watermark, read
// `page_messages` at a time.
std::vector<Message> read_all(const Store& store, std::string_view stream, std::uint32_t partition,
                              std::uint32_t page_messages = 500);

}  // namespace msgstore::testing
