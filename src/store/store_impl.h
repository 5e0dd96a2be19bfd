// The store's internals: the stream table, routing, the publish path, subscriptions and
// background maintenance. The public face is msgstore::Store (include/msgstore/store.h).
//
// Concurrency: the stream table is a copy-on-write snapshot (streams_mutex_ guards the
// pointer; readers copy it and work without locks). Each stream's partitions have their own
// locks (log/partition_log.h). The maintenance thread and every subscription thread only use
// public, thread-safe operations.
#pragma once

#include <atomic>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <thread>
#include <vector>

#include "index/partition_index.h"
#include "log/partition_log.h"
#include "log/worker_threads.h"
#include "store/compaction.h"
#include "msgstore/file_system.h"
#include "msgstore/query.h"
#include "msgstore/store.h"
#include "store/dedup_table.h"

namespace msgstore {

struct StreamState {
  StreamConfig config;  // immutable once published in a table; updates publish a new StreamState
  std::vector<std::shared_ptr<log::PartitionLog>> partitions;
  std::vector<std::shared_ptr<index::PartitionIndex>> indexes;  // one per partition (src/index)
  std::shared_ptr<std::atomic<std::uint32_t>> round_robin = std::make_shared<std::atomic<std::uint32_t>>(0);
  std::filesystem::path directory;
  // Recently published message ids (duplicate suppression); shared by every StreamState of
  // the stream, like the partition logs. Rebuilt from the log on open.
  std::shared_ptr<store::DedupTable> dedup = std::make_shared<store::DedupTable>(limits::dedup_entries_max);
};

using StreamTable = std::map<std::string, std::shared_ptr<const StreamState>, std::less<>>;

// A part of the store that a module above it builds (the consumer registry, src/consumer). The
// store owns it so that it shares the data directory (and its lock), the file system and the
// store's lifetime; close() closes it before the partition logs.
class StoreComponent {
 public:
  virtual ~StoreComponent() = default;
  virtual void close() = 0;
};

class StoreImpl : public std::enable_shared_from_this<StoreImpl> {
 public:
  StoreImpl(std::filesystem::path directory, StoreOptions options);
  ~StoreImpl();

  Status open();
  Status close();

  Status create_stream(const StreamConfig& config);
  Status update_stream(const StreamConfig& config);
  std::vector<StreamConfig> list_streams() const;
  Result<StreamInfo> describe_stream(std::string_view name) const;
  Status delete_stream(std::string_view name);

  // An fsync=always append not yet durable (publish_async waits for it without blocking).
  struct DurabilityTicket {
    std::shared_ptr<log::PartitionLog> log;
    Offset end = 0;
  };
  // Routes by subject, or appends to `only_stream` alone when it is not empty. With `deferred`,
  // returns without waiting for fdatasync and lists what must become durable before the
  // positions may be acknowledged (duplicates included: their original may still be syncing).
  Result<std::vector<Position>> publish(std::span<const OutgoingMessage> messages, std::string_view only_stream = {},
                                        std::vector<DurabilityTicket>* deferred = nullptr);
  void publish_async(std::span<const OutgoingMessage> messages, std::string_view only_stream, Store::PublishCallback done);

  Result<ReadResult> read(std::string_view stream, std::uint32_t partition, Offset from, ReadOptions options) const;
  Result<Offset> scan(std::string_view stream, std::uint32_t partition, Offset from, std::size_t max_messages,
                      const std::function<ScanControl(const MessageView&)>& callback) const;
  Result<Offset> resolve_start(std::string_view stream, std::uint32_t partition, const StartPosition& start) const;

  Result<std::unique_ptr<Subscription>> subscribe(SubscribeOptions options, SubscriptionHandler handler);

  Result<QueryResult> query(const Query& query, const QueryCallback& callback) const;

  Result<VerifyReport> verify(std::string_view stream) const;
  Status run_maintenance();

  // Compaction and erase (store_rewrite.cc).
  Result<CompactionReport> compact(std::string_view stream);
  Result<EraseReport> erase(const EraseRequest& request);
  Result<EraseProgress> finish_erasures(std::string_view stream, const std::function<void(const EraseProgress&)>& on_progress);
  Result<EraseProgress> erase_progress(std::string_view stream) const;

  const std::filesystem::path& directory() const { return directory_; }
  FileSystem& file_system() const { return *file_system_; }
  // Where deleted things are renamed before removal; open() empties it.
  std::filesystem::path trash_directory() const;

  // The consumer registry: made by `make` on first use, the same one afterwards.
  std::shared_ptr<StoreComponent> consumer_registry(const std::function<std::shared_ptr<StoreComponent>()>& make);

  // For subscriptions.
  std::shared_ptr<const StreamTable> streams() const;
  bool is_closed() const { return closed_.load(); }
  // Waits until new data may be readable, the generation moves, or the timeout passes.
  std::uint64_t data_generation() const { return data_generation_.load(std::memory_order_acquire); }
  void wait_for_data(std::uint64_t seen_generation, std::chrono::milliseconds timeout) const;
  void notify_data();
  std::unique_ptr<DataListenerHandle> add_data_listener(std::function<void()> listener);

 private:
  friend class DataListenerRegistration;
  void remove_data_listener(std::uint64_t id);

  Result<std::shared_ptr<log::PartitionLog>> partition(std::string_view stream, std::uint32_t partition) const;
  Result<std::shared_ptr<StreamState>> open_stream(const std::filesystem::path& stream_directory, const StreamConfig& config);
  // Opens partitions [first_partition, state.config.partitions) of `state` and appends them.
  // The log options of a stream's partitions: its config plus the store's preallocation.
  log::LogOptions log_options(const StreamConfig& config) const;
  Status open_partitions(StreamState& state, std::uint32_t first_partition);
  // Refills the stream's dedup table with the message ids stored within its window, reading
  // only the segments the time index places inside it.
  Status rebuild_dedup(const StreamState& state);
  void maintenance_loop();
  // The background share of compaction and erase removal for one stream (bounded per pass).
  Status maintain_rewrites(const StreamState& stream);
  Result<std::shared_ptr<const StreamState>> find_stream(std::string_view name) const;
  Result<Offset> append_erase_audit(const EraseRequest& request, std::uint64_t matched, TimestampMs now);
  void install_table(std::shared_ptr<const StreamTable> table);

  const std::filesystem::path directory_;
  StoreOptions options_;
  std::shared_ptr<FileSystem> file_system_;
  std::shared_ptr<log::WorkerThreads> sync_threads_;  // runs publish_async's fdatasync calls
  std::shared_ptr<log::WorkerThreads> index_threads_;  // indexes appended batches (null: on the publishing thread)
  std::unique_ptr<FileLock> lock_;

  mutable std::mutex streams_mutex_;          // guards streams_ (the pointer)
  std::mutex admin_mutex_;                    // serialises create/update/delete
  std::shared_ptr<const StreamTable> streams_;
  std::vector<std::string> open_problems_;    // streams that could not be opened

  std::atomic<bool> closed_{false};
  std::atomic<bool> open_{false};

  mutable std::mutex data_mutex_;
  mutable std::condition_variable data_arrived_;
  std::atomic<std::uint64_t> data_generation_{0};
  std::atomic<int> data_waiters_{0};
  // Listeners: called without listeners_mutex_ held; listener_call_mutex_ makes removal wait
  // for a call in progress.
  struct DataListener {
    std::uint64_t id;
    std::shared_ptr<std::function<void()>> callback;
  };
  std::mutex listeners_mutex_;
  std::vector<DataListener> listeners_;
  std::uint64_t next_listener_id_ = 1;
  std::atomic<std::size_t> listener_count_{0};
  std::shared_mutex listener_call_mutex_;

  std::mutex erase_mutex_;       // one erase at a time
  std::mutex compaction_mutex_;  // one compaction at a time; guards compaction_states_
  std::map<std::string, store::CompactionState> compaction_states_;  // by partition directory
  std::mutex component_mutex_;
  std::shared_ptr<StoreComponent> consumer_registry_;  // guarded by component_mutex_

  std::mutex maintenance_mutex_;
  std::condition_variable maintenance_wake_;
  std::thread maintenance_thread_;
};

}  // namespace msgstore
