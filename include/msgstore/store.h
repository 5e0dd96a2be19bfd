// msgstore/store.h: the embedded message store.
//
//   auto store = msgstore::Store::open("./data").value();
//   store->create_stream({.name = "orders", .subjects = {"orders.>"}});
//   auto position = store->publish({.subject = "orders.created", .payload = "..."});
//
// Ownership and lifetime: Store::open returns a unique_ptr; destroying the Store closes it
// (stops background work, syncs, releases the directory lock). A Subscription may outlive its
// Store: it stops with status `closed`; destroy it to join its thread.
//
// Thread safety: every method may be called concurrently from any number of threads, except
// close() and the destructor. Concurrent publishers to one partition share fdatasync calls
// (group commit).
//
// Durability: publish returns once the stream's fsync policy is met (see stream.h). A batch
// is validated whole before any of it is written; it is then appended atomically per
// partition (all of a partition's share of the batch lands, or none of it).
#pragma once

#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "msgstore/message.h"
#include "msgstore/query.h"
#include "msgstore/status.h"
#include "msgstore/stream.h"

namespace msgstore {

class FileSystem;  // the I/O seam (src/io); tests pass a fault-injecting one
class Consumers;   // durable consumers (msgstore/consumer.h)

struct StoreOptions {
  // Create the directory if it does not exist.
  bool create_if_missing = true;
  // The file system to use; nullptr = the real (POSIX) file system.
  std::shared_ptr<FileSystem> file_system;
  // Run background maintenance (retention, segment age roll, interval fsync). Tests that want
  // to drive maintenance by hand set this false and call Store::run_maintenance.
  bool background_maintenance = true;
  std::chrono::milliseconds maintenance_period{1000};
  // Threads that run the fdatasync calls of publish_async (fsync=always). Partitions sync in
  // parallel up to this count; the publishers of one partition share each fdatasync.
  std::uint32_t sync_threads = 4;
  // Threads that index appended messages (key, subject and header indexes) off the publishing
  // thread, shared by every partition; 0 = each publisher indexes its own batches before
  // append returns. Either way a query sees every message published before it started.
  std::uint32_t index_threads = 1;
  // fsync=always streams: how far ahead of the data the active segment is extended with zeros,
  // so that the fdatasync after an append overwrites blocks the file already has and commits no
  // metadata (about 40% less time per fdatasync on ext4, docs/performance.md). The zeros are
  // cut off when the segment is sealed or the store closes, and after a crash recovery cuts
  // them as a torn tail. 0 = off.
  std::uint64_t preallocation_bytes = 1024 * 1024;
};

// Where a read or a subscription starts.
struct StartPosition {
  enum class Kind : std::uint8_t { beginning, end, offset, time };
  Kind kind = Kind::beginning;
  Offset offset = 0;           // for Kind::offset
  TimestampMs time_ms = 0;     // for Kind::time: the first message with timestamp >= time_ms

  static StartPosition from_beginning() { return {Kind::beginning, 0, 0}; }
  static StartPosition new_only() { return {Kind::end, 0, 0}; }
  static StartPosition from_offset(Offset offset) { return {Kind::offset, offset, 0}; }
  static StartPosition from_time(TimestampMs time_ms) { return {Kind::time, 0, time_ms}; }
};

struct ReadOptions {
  std::size_t max_messages = 1000;
  std::size_t max_bytes = 4 * 1024 * 1024;  // payload + metadata; at least one message is returned
};

struct ReadResult {
  std::vector<Message> messages;
  Offset next_offset = 0;     // where the next read continues
  Offset log_start_offset = 0;
  Offset high_watermark = 0;  // one past the newest readable message
};

// ScanControl (what a MessageView callback returns) is in query.h.

// A delivered message with its origin, for subscription handlers.
struct Delivery {
  std::string_view stream;
  std::uint32_t partition = 0;
  const MessageView& message;
};

struct SubscribeOptions {
  std::string subject_pattern = ">";  // which subjects to deliver ("orders.*", "orders.>")
  std::string stream;                 // restrict to one stream; empty = every capturing stream
  StartPosition start = StartPosition::new_only();
  // Bounded buffering: the subscription reads from the log at most this many messages per
  // step. A slow handler makes its own subscription lag; publishers never wait for it.
  std::size_t batch_messages_max = 256;
};

// A live subscription. Its handler runs on the subscription's own thread, one call at a time,
// in offset order per partition. Replay of history and live delivery are the same loop over
// the log, so there are no gaps or duplicates between them.
class Subscription {
 public:
  virtual ~Subscription() = default;
  // Stops delivery and joins the delivery thread. Must not be called from the handler.
  virtual void cancel() = 0;
  // Messages delivered so far.
  virtual std::uint64_t delivered() const = 0;
  // Messages that retention removed before the subscription reached them.
  virtual std::uint64_t skipped() const = 0;
  // The error that stopped the subscription, if any (ok while it is running).
  virtual Status status() const = 0;
  // Blocks until delivered() >= count or the timeout passes; true if reached.
  virtual bool wait_for_delivered(std::uint64_t count, std::chrono::milliseconds timeout) const = 0;
};

using SubscriptionHandler = std::function<void(const Delivery&)>;

struct VerifyReport {
  std::uint64_t segments_checked = 0;
  std::uint64_t batches_checked = 0;
  std::uint64_t messages_checked = 0;
  std::uint64_t bytes_checked = 0;
  std::uint64_t index_entries_checked = 0;
  std::vector<std::string> problems;  // one line each: stream, partition, file, offsets, what
  bool clean() const { return problems.empty(); }
};

// Returned by Store::add_data_listener; destroying it unregisters the listener (waiting for a
// call in progress to finish, so the callback never runs after the handle is gone).
class DataListenerHandle {
 public:
  virtual ~DataListenerHandle() = default;
};

// ---- Compaction and erase (docs/ARCHITECTURE.md, "Compaction and erase") ----

struct CompactionReport {
  std::uint64_t partitions = 0;
  std::uint64_t segments_rewritten = 0;
  std::uint64_t messages_removed = 0;
  std::uint64_t bytes_before = 0;  // of the rewritten segments
  std::uint64_t bytes_after = 0;
  std::uint64_t segments_pending = 0;  // still holding removable messages (background: next pass)
};

// Which messages an erase covers: exactly one of `key` or `header` (name and value equal).
struct EraseCriteria {
  std::optional<std::string> key;
  std::optional<Header> header;
};

struct EraseRequest {
  std::string stream;
  EraseCriteria criteria;
  std::string actor;  // who asked (recorded in the audit stream); required
  // true: rewrite the affected segments before returning; false: the background maintenance
  // does it (the messages are unreadable either way as soon as erase returns).
  bool remove_now = false;
};

// Physical removal of erased messages still in segment files.
struct EraseProgress {
  std::uint64_t offsets_pending = 0;      // erased offsets whose bytes are still on disk
  std::uint64_t segments_pending = 0;     // segments that still hold them
  std::uint64_t segments_rewritten = 0;   // by this call
};

struct EraseReport {
  std::uint64_t matched_messages = 0;
  std::uint64_t segments_to_rewrite = 0;  // segments holding the matches when erase returned
  EraseProgress progress;                 // after remove_now, or pending for the background
  Offset audit_offset = 0;                // where the audit record went (stream audit_stream_name)
};

// The audit stream, created on demand by the first erase: one message per erase with who, what
// (the criteria), when and how many, never the erased content.
inline constexpr std::string_view audit_stream_name = "_audit";

class StoreImpl;

class Store {
 public:
  // Opens (and recovers) the store in `directory`. Fails with store_locked if another Store,
  // in this process or another, has it open.
  static Result<std::unique_ptr<Store>> open(const std::filesystem::path& directory,
                                             StoreOptions options = {});
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  // Streams.
  Status create_stream(const StreamConfig& config);
  // Changes retention, fsync policy and limits; partitions can only grow; subjects may change.
  Status update_stream(const StreamConfig& config);
  std::vector<StreamConfig> list_streams() const;
  Result<StreamInfo> describe_stream(std::string_view name) const;
  Status delete_stream(std::string_view name);

  // Publishing: routed by subject; returns one Position per (message, capturing stream).
  // Policies (message.h): a message id seen within a stream's dedup window yields the
  // original's Position with duplicate = true and stores nothing there; an expected_offset
  // that does not match fails the whole publish with expected_offset_mismatch; a TTL hides
  // the message from every read once it has passed.
  Result<std::vector<Position>> publish(const OutgoingMessage& message);
  Result<std::vector<Position>> publish_batch(std::span<const OutgoingMessage> messages);
  // A direct append to one stream, whatever its subject patterns (the subject is still
  // validated and stored): for front ends that name the stream (HTTP POST to a stream, Kafka
  // produce to a topic) and for dead-letter streams. Partitioning is as for publish.
  Result<std::vector<Position>> publish_to(std::string_view stream, std::span<const OutgoingMessage> messages);

  // Publishing without waiting for fdatasync on the calling thread (for event loops): writes
  // the messages as publish_batch (empty `stream`) or publish_to would, then calls `done` with
  // the same result once every destination's fsync policy is met. `done` runs inline when
  // nothing is left to wait for (an error, fsync=never or interval, only duplicates already
  // durable), otherwise on one of the store's sync threads after the fdatasync that covers the
  // messages, shared with every publisher waiting at that moment. `done` must be quick (hand
  // the result to another thread and return) and must not call the Store. The call itself may
  // still block briefly: on the partition's append lock, a segment roll, a message id claimed
  // by a concurrent publisher, or an expected_key_offset check that reads an index.
  using PublishCallback = std::function<void(Result<std::vector<Position>>)>;
  void publish_async(std::span<const OutgoingMessage> messages, std::string_view stream, PublishCallback done);

  // Reading one partition.
  Result<ReadResult> read(std::string_view stream, std::uint32_t partition, Offset from,
                          ReadOptions options = {}) const;
  // Zero-copy sequential scan from `from` until the callback says stop, `max_messages` have
  // been seen, or the readable end is reached. Returns the next offset to scan from.
  Result<Offset> scan(std::string_view stream, std::uint32_t partition, Offset from,
                      std::size_t max_messages,
                      const std::function<ScanControl(const MessageView&)>& callback) const;
  // The offset a start position means for one partition (time: first message at or after).
  Result<Offset> resolve_start(std::string_view stream, std::uint32_t partition,
                               const StartPosition& start) const;

  // Live delivery: replays from options.start, then continues with new messages.
  Result<std::unique_ptr<Subscription>> subscribe(SubscribeOptions options,
                                                  SubscriptionHandler handler);

  // Change notification, for long polls and event loops (the server wakes its waiting readers
  // with it). `listener` runs after new messages may have become readable in any partition,
  // or streams were created, changed or deleted, or the store closed. It runs on the thread
  // that made the change (a publisher), so it must be quick and must not call the Store:
  // post work elsewhere. Calls are not coalesced; a listener sees at least one call after
  // each change it could observe.
  std::unique_ptr<DataListenerHandle> add_data_listener(std::function<void()> listener);
  // A counter that moves on every such change, and a blocking wait for it to move from
  // `seen_generation` (or for the timeout, or close). For threads that prefer to block.
  std::uint64_t data_generation() const;
  void wait_for_data(std::uint64_t seen_generation, std::chrono::milliseconds timeout) const;

  // Durable consumers of this store's streams (msgstore/consumer.h); valid while the Store lives.
  Consumers& consumers();
  // Finds messages by key, subject, indexed header values, time and offset ranges and payload
  // text (include/msgstore/query.h). Matches stream through `callback`, at most query.limit;
  // the result carries the cursor of the next page and what the query read.
  Result<QueryResult> query(const Query& query, const QueryCallback& callback) const;

  // Checks every checksum and index of every stream (or of one stream).
  Result<VerifyReport> verify(std::string_view stream = {}) const;

  // Retention, age-based segment rolls and interval syncs, a bounded share of compaction and
  // of erase rewrites; the background thread calls this.
  Status run_maintenance();

  // Compacts a cleanup=compact stream now: rolls its active segments, then rewrites every
  // segment holding superseded messages or expired tombstones. Offsets never change.
  Result<CompactionReport> compact(std::string_view stream);

  // Erases every message matching the criteria: once erase returns they are unreadable through
  // every read path (the offsets are in a durable erase list), and the erase is recorded in the
  // audit stream. Their bytes are removed by segment rewrites (now, or in the background).
  // Messages published while the erase runs may not be covered.
  Result<EraseReport> erase(const EraseRequest& request);
  // Rewrites now every segment of `stream` still holding erased messages; `on_progress` is
  // called after each segment. erase_progress only reports.
  Result<EraseProgress> finish_erasures(std::string_view stream,
                                        const std::function<void(const EraseProgress&)>& on_progress = {});
  Result<EraseProgress> erase_progress(std::string_view stream) const;

  // Syncs everything and releases the directory. Further calls fail with `closed`.
  Status close();

  const std::filesystem::path& directory() const;

 private:
  explicit Store(std::shared_ptr<StoreImpl> impl);
  std::shared_ptr<StoreImpl> impl_;  // shared with running subscriptions
};

}  // namespace msgstore
