// libFuzzer target: arbitrary bytes appended after a valid segment header, and arbitrary index
// files, recovered by PartitionLog::open on the in-memory file system. Recovery must finish
// (open succeeds or fails with a Status), never crash, and never serve a damaged batch.
#include <cstddef>
#include <cstdint>
#include <string>

#include "io/fault_file_system.h"
#include "log/partition_log.h"
#include "log/segment.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace msgstore;
  FaultFileSystem file_system;
  const std::filesystem::path directory = "/p";
  if (!file_system.create_directories(directory).is_ok()) return 0;
  if (!log::Segment::create(file_system, directory, 0, 0)) return 0;
  // Split the input: first byte chooses how much goes into the log versus the offset index.
  std::string input(reinterpret_cast<const char*>(data), size);
  std::size_t split = input.empty() ? 0 : (static_cast<unsigned char>(input[0]) * input.size()) / 256;
  std::string log_tail = input.substr(input.empty() ? 0 : 1, split);
  std::string index_bytes = input.size() > split + 1 ? input.substr(split + 1) : std::string();
  auto log_path = log::segment_file_path(directory, 0, log::SegmentFileKind::log);
  auto log_file = file_system.open(log_path, OpenMode::read_write);
  if (!log_file) return 0;
  (void)(*log_file)->write_at(32, log_tail.data(), log_tail.size());
  auto index_file = file_system.open(log::segment_file_path(directory, 0, log::SegmentFileKind::offset_index),
                                     OpenMode::create_truncate);
  if (index_file) (void)(*index_file)->write_at(0, index_bytes.data(), index_bytes.size());
  log::RecoveryReport report;
  auto opened = log::PartitionLog::open(file_system, directory, "fuzz/0", {}, nullptr, &report);
  if (!opened) return 0;
  VerifyReport verify;
  (*opened)->verify(verify);
  (void)(*opened)->scan(0, 1000, 1 << 20, [](const MessageView&) { return true; });
  (void)(*opened)->offset_for_time(0);
  return 0;
}
