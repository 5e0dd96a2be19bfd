#include "store/store_test_support.h"

#include <gtest/gtest.h>

#include <utility>

namespace msgstore::testing {

StreamConfig stream_config(std::string name, std::vector<std::string> subjects, std::uint32_t partitions,
                           FsyncPolicy fsync) {
  StreamConfig config;
  config.name = std::move(name);
  config.subjects = std::move(subjects);
  config.partitions = partitions;
  config.fsync = fsync;
  return config;
}

OutgoingMessage message(std::string_view subject, std::string_view payload) {
  OutgoingMessage result;
  result.subject = subject;
  result.payload = payload;
  return result;
}

std::unique_ptr<Store> open_store(const std::filesystem::path& directory, StoreOptions options,
                                  Maintenance maintenance) {
  if (maintenance == Maintenance::by_hand) options.background_maintenance = false;
  auto store = Store::open(directory, std::move(options));
  EXPECT_TRUE(store.is_ok()) << directory << ": " << store.status().to_string();
  if (!store) return nullptr;
  return std::move(*store);
}

std::vector<Message> read_all(const Store& store, std::string_view stream, std::uint32_t partition,
                              std::uint32_t page_messages) {
  std::vector<Message> all;
  auto start = store.resolve_start(stream, partition, StartPosition::from_beginning());
  if (!start) {
    ADD_FAILURE() << start.status().to_string();
    return all;
  }
  Offset next = *start;
  while (true) {
    auto result = store.read(stream, partition, next, ReadOptions{.max_messages = page_messages});
    if (!result) {
      ADD_FAILURE() << "read " << stream << "/" << partition << " at " << next << ": " << result.status().to_string();
      break;
    }
    for (Message& read : result->messages) all.push_back(std::move(read));
    if (result->next_offset >= result->high_watermark) break;
    if (result->next_offset == next) {
      ADD_FAILURE() << "read made no progress at " << next;
      break;
    }
    next = result->next_offset;
  }
  return all;
}

}  // namespace msgstore::testing
