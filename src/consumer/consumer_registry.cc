#include "consumer/consumer_registry.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <limits>

#include "base/assert.h"
#include "base/subject.h"
#include "consumer/consumer_config.h"
#include "consumer/state_log.h"
#include "io/metadata_file.h"

namespace msgstore {

// The accessor lives here so that the store does not depend on this module: the registry is
// made on first use and owned by the StoreImpl from then on.
Consumers& Store::consumers() {
  StoreImpl& impl = *impl_;
  std::shared_ptr<StoreComponent> component = impl_->consumer_registry([&impl] {
    auto registry = std::make_shared<consumer::ConsumerRegistry>(impl);
    registry->start();
    return registry;
  });
  return static_cast<consumer::ConsumerRegistry&>(*component);
}

namespace consumer {
namespace {

constexpr const char* consumers_directory_name = "consumers";
constexpr const char* config_file_name = "consumer.meta";
constexpr const char* snapshot_file_name = "state.meta";
constexpr std::int64_t dead_letter_retry_ms = 1000;      // after a failed dead-letter append
constexpr std::int64_t timer_period_ms_max = 1000;        // the timer looks at least this often
constexpr std::size_t scan_messages_per_partition = 4096;  // per fetch attempt, filtered ones included
constexpr std::int64_t never_ms = std::numeric_limits<std::int64_t>::max();

// Deadlines are in-memory only, so a steady clock.
std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

std::size_t message_bytes(const MessageView& message) {
  std::size_t bytes = message.payload.size() + message.subject.size() + (message.key ? message.key->size() : 0);
  for (const HeaderView& header : message.headers) bytes += header.name.size() + header.value.size();
  return bytes;
}

Status consumer_not_found(std::string_view stream, std::string_view name) {
  return Status(ErrorCode::consumer_not_found, "stream '" + std::string(stream) + "' has no consumer '" + std::string(name) + "'");
}

bool is_environment_error(const Status& status) {
  return status.code() == ErrorCode::io_error || status.code() == ErrorCode::no_space;
}

}  // namespace

struct DeadLetterJob {
  std::uint32_t partition = 0;
  Offset offset = 0;
  std::uint32_t attempts = 0;
  const char* reason = "";
  std::size_t token_index = 0;  // settle(): which token asked for it
};

class Consumer {
 public:
  Consumer(std::string stream_name, ConsumerConfig consumer_config, std::filesystem::path consumer_directory)
      : stream(std::move(stream_name)), config(std::move(consumer_config)), directory(std::move(consumer_directory)) {}

  const std::string stream;
  const ConsumerConfig config;
  const std::filesystem::path directory;

  std::mutex mutex;
  std::vector<PartitionCursor> cursors;  // one per partition of the stream (grows with it)
  std::shared_ptr<StateLog> log;
  std::uint64_t generation = 0;
  std::uint32_t next_partition = 0;  // where the next fetch starts looking for new messages
  bool removed = false;
  Status failure;  // sticky: the state log can no longer be trusted
  std::int64_t last_sync_ms = 0;
  std::uint64_t skipped = 0;
  std::uint64_t dead_lettered = 0;
  std::uint64_t dropped = 0;

  // ---- All of the following require `mutex` ----
  std::int64_t backoff_ms(std::uint32_t attempts) const {
    if (config.backoff_ms.empty()) return 0;
    const std::size_t index = std::min<std::size_t>(attempts == 0 ? 0 : attempts - 1, config.backoff_ms.size() - 1);
    return config.backoff_ms[index];
  }
  bool exhausted(const Pending& entry) const {
    return config.max_deliveries > 0 && entry.attempts >= config.max_deliveries;
  }

  // A delivery failed (ack wait expired, or a nak): it goes out again at `available_at_ms`, or,
  // past max deliveries, waits (due now) for the timer thread to dead-letter it.
  void fail_delivery(Pending& entry, std::int64_t now, std::int64_t available_at_ms) {
    entry.out = false;
    entry.deadline_ms = exhausted(entry) ? now : available_at_ms;
  }

  // Ends expired ack waits; true if any did.
  bool expire(std::int64_t now) {
    bool changed = false;
    for (PartitionCursor& cursor : cursors) {
      for (auto& [offset, entry] : cursor.pending) {
        if (!entry.out || entry.deadline_ms > now) continue;
        fail_delivery(entry, now, now + backoff_ms(entry.attempts));
        changed = true;
      }
    }
    return changed;
  }

  // Messages past max deliveries that are due: marks them and returns their jobs.
  void collect_dead_letters(std::int64_t now, std::vector<DeadLetterJob>& jobs) {
    for (std::uint32_t partition = 0; partition < cursors.size(); ++partition) {
      for (auto& [offset, entry] : cursors[partition].pending) {
        if (entry.out || entry.dead_lettering || !exhausted(entry) || entry.deadline_ms > now) continue;
        entry.dead_lettering = true;
        jobs.push_back({partition, offset, entry.attempts, "max_deliveries", 0});
      }
    }
  }

  // The earliest time something changes by itself: an ack wait ends or a redelivery is due.
  // Fetchers leave messages past max deliveries to the timer thread.
  std::int64_t next_due_ms(bool for_timer) const {
    std::int64_t due = never_ms;
    for (const PartitionCursor& cursor : cursors) {
      for (const auto& [offset, entry] : cursor.pending) {
        if (entry.dead_lettering || (!for_timer && !entry.out && exhausted(entry))) continue;
        due = std::min(due, entry.deadline_ms);
      }
    }
    return due;
  }

  // True if a redelivery became due in (after_ms, now].
  bool became_due(std::int64_t after_ms, std::int64_t now) const {
    for (const PartitionCursor& cursor : cursors) {
      for (const auto& [offset, entry] : cursor.pending) {
        if (!entry.out && !entry.dead_lettering && !exhausted(entry) && entry.deadline_ms > after_ms && entry.deadline_ms <= now) {
          return true;
        }
      }
    }
    return false;
  }

  std::size_t pending_count() const {
    std::size_t count = 0;
    for (const PartitionCursor& cursor : cursors) count += cursor.pending.size();
    return count;
  }

  // Follows the stream: new partitions, and messages retention removed (or never kept).
  // Everything here can be derived again at recovery, so nothing is logged.
  void reconcile(const StreamState& state) {
    if (cursors.size() < state.partitions.size()) cursors.resize(state.partitions.size());  // new partitions start at 0
    for (std::uint32_t partition = 0; partition < state.partitions.size(); ++partition) {
      PartitionCursor& cursor = cursors[partition];
      const Offset log_start = state.partitions[partition]->log_start_offset();
      if (cursor.ack_floor >= log_start) continue;
      if (cursor.delivered_offset < log_start) {
        skipped += log_start - cursor.delivered_offset;
        cursor.delivered_offset = log_start;
      }
      for (auto it = cursor.pending.begin(); it != cursor.pending.end() && it->first < log_start;) {
        if (it->second.dead_lettering) {  // its job finds the message gone and finishes it
          ++it;
          continue;
        }
        ++skipped;
        it = cursor.pending.erase(it);
      }
      cursor.done.erase(cursor.done.begin(), cursor.done.lower_bound(log_start));
      // Offsets below the log start that are neither pending nor done are gone either way.
      const Offset lowest_pending = cursor.pending.empty() ? log_start : std::min(log_start, cursor.pending.begin()->first);
      cursor.ack_floor = std::max(cursor.ack_floor, lowest_pending);
      cursor.advance_floor();
    }
  }

  void deliver(std::uint32_t partition, const MessageView& message, Pending& entry, std::int64_t now, std::string& records,
               std::vector<ConsumedMessage>& out) {
    ++entry.attempts;
    entry.out = true;
    entry.deadline_ms = now + config.ack_wait_ms;
    encode_record({RecordType::delivery, partition, message.offset, entry.attempts}, records);
    ConsumedMessage consumed;
    consumed.delivery = DeliveryToken{stream, partition, message.offset, entry.attempts};
    consumed.partition = partition;
    consumed.deliveries = entry.attempts;
    consumed.message = message.to_message();
    out.push_back(std::move(consumed));
  }

  // One fetch attempt: due redeliveries first, then new messages, round robin over partitions.
  Status fetch(const StreamState& state, const FetchOptions& options, std::int64_t now, std::string& records,
               std::vector<ConsumedMessage>& out) {
    reconcile(state);
    expire(now);
    const std::size_t max_messages = std::clamp<std::size_t>(options.max_messages, 1, limits::consumer_fetch_messages_max);
    const std::size_t max_bytes = std::max<std::size_t>(options.max_bytes, 1);
    std::size_t bytes = 0;
    auto full = [&] { return out.size() >= max_messages || (!out.empty() && bytes >= max_bytes); };
    Status first_error;

    // Redeliveries that are due.
    for (std::uint32_t partition = 0; partition < cursors.size() && !full(); ++partition) {
      PartitionCursor& cursor = cursors[partition];
      const auto& log = state.partitions[partition];
      for (auto it = cursor.pending.begin(); it != cursor.pending.end() && !full();) {
        Pending& entry = it->second;
        const Offset offset = it->first;
        // Past max deliveries: the timer thread dead-letters it.
        if (entry.out || entry.dead_lettering || entry.deadline_ms > now || exhausted(entry)) {
          ++it;
          continue;
        }
        bool erase = false;
        auto scanned = log->scan(offset, 1, SIZE_MAX, [&](const MessageView& message) {
          if (message.offset != offset) {
            erase = true;  // not stored (a gap): nothing to deliver
            return false;
          }
          if (!base::subject_matches(config.subject_filter, message.subject)) {
            erase = true;  // recovered offset that the filter passes over
            return false;
          }
          if (bytes > 0 && bytes + message_bytes(message) > max_bytes) {
            bytes = max_bytes;  // full
            return false;
          }
          bytes += message_bytes(message);
          deliver(partition, message, entry, now, records, out);
          return true;
        });
        if (!scanned) {
          // Removed by retention meanwhile, or damaged: it can never be delivered.
          ++skipped;
          erase = true;
        }
        if (erase) {
          cursor.done.insert(offset);
          it = cursor.pending.erase(it);
          encode_record({RecordType::ack, partition, offset, 0}, records);
        } else {
          ++it;
        }
      }
    }

    // New messages, within max_ack_pending and the tracking window.
    std::size_t pending = pending_count();
    const std::uint32_t partitions = static_cast<std::uint32_t>(cursors.size());
    for (std::uint32_t step = 0; step < partitions && !full() && pending < config.max_ack_pending; ++step) {
      const std::uint32_t partition = (next_partition + step) % partitions;
      PartitionCursor& cursor = cursors[partition];
      const auto& log = state.partitions[partition];
      if (cursor.delivered_offset >= log->high_watermark()) continue;
      if (cursor.delivered_offset - cursor.ack_floor >= limits::consumer_window_messages_max) continue;
      const Offset before = cursor.delivered_offset;
      auto scanned = log->scan(cursor.delivered_offset, scan_messages_per_partition, SIZE_MAX, [&](const MessageView& message) {
        if (cursor.delivered_offset - cursor.ack_floor >= limits::consumer_window_messages_max) return false;
        if (!base::subject_matches(config.subject_filter, message.subject)) {
          cursor.done.insert(message.offset);
          cursor.delivered_offset = message.offset + 1;
          return true;
        }
        if (bytes > 0 && bytes + message_bytes(message) > max_bytes) {
          bytes = max_bytes;  // full: stop here, this message stays undelivered
          return false;
        }
        bytes += message_bytes(message);
        deliver(partition, message, cursor.pending[message.offset], now, records, out);
        cursor.delivered_offset = message.offset + 1;
        ++pending;
        return !full() && pending < config.max_ack_pending;
      });
      // Retention may have moved the log start since reconcile(): the next attempt catches up.
      if (!scanned && scanned.status().code() != ErrorCode::offset_out_of_range && first_error.is_ok()) {
        first_error = scanned.status();
      }
      if (cursor.advance_floor() || cursor.delivered_offset != before) {
        encode_record({RecordType::position, partition, cursor.ack_floor, cursor.delivered_offset}, records);
      }
    }
    if (partitions > 0) next_partition = (next_partition + 1) % partitions;
    for (std::uint32_t partition = 0; partition < cursors.size(); ++partition) {
      if (cursors[partition].advance_floor()) {
        encode_record({RecordType::position, partition, cursors[partition].ack_floor, cursors[partition].delivered_offset}, records);
      }
    }
    // A read error is reported only when nothing else could be delivered.
    return out.empty() ? first_error : Status::ok();
  }
};

// ---------------------------------------------------------------------------------------------
ConsumerRegistry::ConsumerRegistry(StoreImpl& store) : store_(store), file_system_(store.file_system()) {}

ConsumerRegistry::~ConsumerRegistry() { close(); }

void ConsumerRegistry::start() {
  if (store_.is_closed()) {
    closing_ = true;
    return;
  }
  data_listener_ = store_.add_data_listener([this] { wake_fetchers(); });
  timer_thread_ = std::thread([this] { timer_loop(); });
}

void ConsumerRegistry::close() {
  if (closing_.exchange(true) && !timer_thread_.joinable()) return;
  poke_timer();
  if (timer_thread_.joinable()) timer_thread_.join();
  data_listener_.reset();
  wake_fetchers();
  for (const auto& consumer : loaded_consumers()) {
    std::lock_guard lock(consumer->mutex);
    if (consumer->log && consumer->failure.is_ok()) (void)consumer->log->sync_all();
  }
}

void ConsumerRegistry::announce() {
  // Through the store, so that other waiters on store data (the server's long polls) wake
  // too; the registry's own listener then wakes its blocking fetchers.
  store_.notify_data();
}

void ConsumerRegistry::wake_fetchers() {
  wake_generation_.fetch_add(1);
  std::lock_guard lock(wake_mutex_);
  wake_.notify_all();
}

void ConsumerRegistry::poke_timer() {
  std::lock_guard lock(timer_mutex_);
  timer_poked_ = true;
  timer_wake_.notify_all();
}

std::vector<std::shared_ptr<Consumer>> ConsumerRegistry::loaded_consumers() {
  std::vector<std::shared_ptr<Consumer>> result;
  std::lock_guard lock(mutex_);
  for (const auto& [stream, loaded] : streams_) {
    for (const auto& [name, consumer] : loaded.consumers) result.push_back(consumer);
  }
  return result;
}

// ---- Loading ----------------------------------------------------------------------------------
Result<ConsumerRegistry::Found> ConsumerRegistry::find(std::string_view stream, std::string_view name) {
  if (closing_ || store_.is_closed()) return Status(ErrorCode::closed, "store is closed");
  const auto table = store_.streams();
  auto found = table->find(stream);
  std::lock_guard lock(mutex_);
  if (found == table->end()) {
    // The stream was deleted: its consumers went with it.
    auto loaded = streams_.find(stream);
    if (loaded != streams_.end()) {
      for (const auto& [consumer_name, consumer] : loaded->second.consumers) {
        std::lock_guard consumer_lock(consumer->mutex);
        consumer->removed = true;
      }
      streams_.erase(loaded);
    }
    return Status(ErrorCode::stream_not_found, "stream '" + std::string(stream) + "' does not exist");
  }
  MSGSTORE_RETURN_IF_ERROR(ensure_loaded_locked(*found->second));
  if (name.empty()) return Found{nullptr, found->second};
  LoadedStream& loaded = streams_.find(stream)->second;
  auto consumer = loaded.consumers.find(name);
  if (consumer == loaded.consumers.end()) {
    auto broken = loaded.broken.find(name);
    if (broken != loaded.broken.end()) return broken->second;
    return consumer_not_found(stream, name);
  }
  return Found{consumer->second, found->second};
}

Status ConsumerRegistry::ensure_loaded_locked(const StreamState& stream) {
  MS_ASSERT(!stream.partitions.empty());
  const std::shared_ptr<log::PartitionLog>& identity = stream.partitions.front();
  auto existing = streams_.find(stream.config.name);
  if (existing != streams_.end()) {
    if (existing->second.identity.lock() == identity) return Status::ok();
    // Deleted and created again under the same name: the old consumers are gone.
    for (const auto& [name, consumer] : existing->second.consumers) {
      std::lock_guard consumer_lock(consumer->mutex);
      consumer->removed = true;
    }
    streams_.erase(existing);
  }
  LoadedStream loaded;
  loaded.identity = identity;
  const auto directory = stream.directory / consumers_directory_name;
  if (file_system_.is_directory(directory)) {
    auto names = file_system_.list_directory(directory);
    if (!names) return names.status();
    for (const std::string& name : *names) {
      const auto consumer_directory = directory / name;
      if (!file_system_.is_directory(consumer_directory)) continue;
      if (!file_system_.exists(consumer_directory / config_file_name)) {
        // A creation that crashed before its configuration was durable: it never existed.
        MSGSTORE_RETURN_IF_ERROR(file_system_.remove_all(consumer_directory));
        continue;
      }
      auto consumer = load_consumer(stream, consumer_directory);
      if (!consumer) {
        if (is_environment_error(consumer.status())) return consumer.status();
        loaded.broken.emplace(name, Status(consumer.status().code(), "consumer '" + name + "' of stream '" + stream.config.name +
                                                                         "' could not be loaded: " + consumer.status().message()));
        continue;
      }
      loaded.consumers.emplace(name, std::move(*consumer));
    }
  }
  streams_.emplace(stream.config.name, std::move(loaded));
  return Status::ok();
}

Result<std::shared_ptr<Consumer>> ConsumerRegistry::load_consumer(const StreamState& stream, const std::filesystem::path& directory) {
  auto config_fields = io::read_metadata_file(file_system_, directory / config_file_name, config_kind, config_version);
  if (!config_fields) return config_fields.status();
  auto config = decode_consumer_config(*config_fields, stream.config.name);
  if (!config) return config.status();
  if (config->name != directory.filename().string()) {
    return Status(ErrorCode::corruption, "directory holds the configuration of consumer '" + config->name + "'");
  }
  auto snapshot_fields = io::read_metadata_file(file_system_, directory / snapshot_file_name, snapshot_kind, snapshot_version);
  if (!snapshot_fields) return snapshot_fields.status();
  std::uint64_t generation = 0;
  auto cursors = decode_snapshot(*snapshot_fields, generation);
  if (!cursors) return Status(cursors.status().code(), (directory / snapshot_file_name).string() + ": " + cursors.status().message());

  auto consumer = std::make_shared<Consumer>(stream.config.name, std::move(*config), directory);
  consumer->cursors = std::move(*cursors);
  consumer->generation = generation;
  if (consumer->cursors.size() < stream.partitions.size()) consumer->cursors.resize(stream.partitions.size());

  // Replay the state log written after the snapshot. A torn or damaged tail ends it: what is
  // lost there was never acknowledged as durable, or (damage) costs redeliveries, never data.
  const auto log_path = directory / state_log_name(generation);
  if (file_system_.exists(log_path)) {
    auto bytes = io::read_whole_file(file_system_, log_path);
    if (!bytes) return bytes.status();
    std::vector<PartitionCursor>& replay = consumer->cursors;
    auto scanned = decode_state_log(*bytes, [&replay](const StateRecord& record) {
      if (record.partition < replay.size()) replay[record.partition].apply(record);
    });
    if (!scanned) return Status(scanned.status().code(), log_path.string() + ": " + scanned.status().message());
  }

  // Bring the cursors back to the invariant: clamp to the recovered logs, and decide every
  // offset in [floor, delivered) that the state does not name (filtered, or its delivery record
  // was lost) by reading its subject.
  const std::int64_t now = now_ms();
  for (std::uint32_t partition = 0; partition < stream.partitions.size(); ++partition) {
    PartitionCursor& cursor = consumer->cursors[partition];
    const auto& log = stream.partitions[partition];
    const Offset high_watermark = log->high_watermark();
    if (cursor.delivered_offset > high_watermark) {  // the stream lost an unsynced suffix
      cursor.delivered_offset = high_watermark;
      cursor.ack_floor = std::min(cursor.ack_floor, high_watermark);
      cursor.pending.erase(cursor.pending.lower_bound(high_watermark), cursor.pending.end());
      cursor.done.erase(cursor.done.lower_bound(high_watermark), cursor.done.end());
    }
    for (auto& [offset, entry] : cursor.pending) {
      // Deliveries made before the restart may still be acked with their tokens: give them
      // their ack wait again. Offsets never known to be delivered are due now.
      entry.out = entry.attempts > 0;
      entry.deadline_ms = entry.attempts > 0 ? now + consumer->config.ack_wait_ms : now;
    }
    const Offset tracked = cursor.pending.size() + cursor.done.size();
    const Offset from = std::max(cursor.ack_floor, log->log_start_offset());
    if (cursor.delivered_offset - cursor.ack_floor > tracked && from < cursor.delivered_offset) {
      Offset next = from;
      while (next < cursor.delivered_offset) {
        auto scanned = log->scan(next, scan_messages_per_partition, SIZE_MAX, [&](const MessageView& message) {
          if (message.offset >= cursor.delivered_offset) return false;
          if (!cursor.pending.count(message.offset) && !cursor.done.count(message.offset)) {
            if (base::subject_matches(consumer->config.subject_filter, message.subject)) {
              cursor.pending[message.offset] = Pending{0, false, now, false};
            } else {
              cursor.done.insert(message.offset);
            }
          }
          return true;
        });
        if (!scanned || *scanned <= next) {
          // Unreadable (a damaged range): what is still untracked can never be delivered, so
          // it must not hold the floor back.
          for (Offset offset = next; offset < cursor.delivered_offset; ++offset) {
            if (!cursor.pending.count(offset) && cursor.done.insert(offset).second) ++consumer->skipped;
          }
          break;
        }
        next = *scanned;
      }
    }
    cursor.advance_floor();
  }
  consumer->reconcile(stream);

  // Start a fresh generation from what was recovered, and drop every other state log.
  {
    std::lock_guard lock(consumer->mutex);
    MSGSTORE_RETURN_IF_ERROR(compact_locked(*consumer));
  }
  auto names = file_system_.list_directory(directory);
  if (!names) return names.status();
  for (const std::string& name : *names) {
    if (name.starts_with("state-") && name != state_log_name(consumer->generation)) {
      MSGSTORE_RETURN_IF_ERROR(file_system_.remove(directory / name));
    }
  }
  return consumer;
}

Status ConsumerRegistry::compact_locked(Consumer& consumer) {
  const std::uint64_t generation = consumer.generation + 1;
  const auto path = consumer.directory / state_log_name(generation);
  auto log = StateLog::create(file_system_, path);
  if (!log) return log.status();
  Status status = file_system_.sync_directory(consumer.directory);
  if (!status.is_ok()) {
    (void)file_system_.remove(path);
    return status;
  }
  // The snapshot is the switch: once it is in place, only the new log is read.
  status = io::write_metadata_file(file_system_, consumer.directory / snapshot_file_name, snapshot_kind, snapshot_version,
                                   encode_snapshot(generation, consumer.cursors));
  if (!status.is_ok()) {
    // The rename may or may not have happened, so neither log can take more records.
    consumer.failure = Status(ErrorCode::log_failed, "consumer '" + consumer.config.name + "': state snapshot failed: " +
                                                         status.message() + " (restart to recover)");
    return status;
  }
  std::shared_ptr<StateLog> old = std::move(consumer.log);
  consumer.log = std::move(*log);
  consumer.generation = generation;
  consumer.last_sync_ms = now_ms();
  if (old) (void)file_system_.remove(old->path());  // the snapshot made it redundant; open removes leftovers
  return Status::ok();
}

// ---- Admin ------------------------------------------------------------------------------------
Status ConsumerRegistry::create(std::string_view stream, const ConsumerConfig& config) {
  MSGSTORE_RETURN_IF_ERROR(validate_consumer_config(config));
  auto found = find(stream, {});
  if (!found) return found.status();
  const StreamState& state = *found->stream;
  if (!config.dead_letter_stream.empty()) {
    if (config.dead_letter_stream == stream) {
      return Status(ErrorCode::invalid_argument, "dead_letter_stream must be another stream than '" + std::string(stream) + "'");
    }
    if (!store_.streams()->count(config.dead_letter_stream)) {
      return Status(ErrorCode::stream_not_found, "dead-letter stream '" + config.dead_letter_stream + "' does not exist");
    }
  }
  // Where each partition starts, resolved once.
  std::vector<PartitionCursor> cursors(state.partitions.size());
  for (std::uint32_t partition = 0; partition < state.partitions.size(); ++partition) {
    const auto& log = state.partitions[partition];
    Offset start = 0;
    switch (config.start.kind) {
      case StartPosition::Kind::beginning: start = log->log_start_offset(); break;
      case StartPosition::Kind::end: start = log->high_watermark(); break;
      case StartPosition::Kind::offset:
        // The same offset in every partition, clamped to what that partition holds.
        start = std::clamp(config.start.offset, log->log_start_offset(), log->high_watermark());
        break;
      case StartPosition::Kind::time: {
        auto offset = log->offset_for_time(config.start.time_ms);
        if (!offset) return offset.status();
        start = *offset;
        break;
      }
    }
    cursors[partition].ack_floor = start;
    cursors[partition].delivered_offset = start;
  }

  std::lock_guard lock(mutex_);
  MSGSTORE_RETURN_IF_ERROR(ensure_loaded_locked(state));
  LoadedStream& loaded = streams_.find(stream)->second;
  if (loaded.consumers.count(config.name) || loaded.broken.count(config.name)) {
    return Status(ErrorCode::consumer_exists, "stream '" + std::string(stream) + "' already has a consumer '" + config.name + "'");
  }
  if (loaded.consumers.size() >= limits::consumers_per_stream_max) {
    return Status(ErrorCode::limit_exceeded, "a stream has at most " + std::to_string(limits::consumers_per_stream_max) + " consumers");
  }
  const auto consumers_directory = state.directory / consumers_directory_name;
  const auto directory = consumers_directory / config.name;
  if (!file_system_.is_directory(consumers_directory)) {
    MSGSTORE_RETURN_IF_ERROR(file_system_.create_directories(consumers_directory));
    MSGSTORE_RETURN_IF_ERROR(file_system_.sync_directory(state.directory));
  }
  MSGSTORE_RETURN_IF_ERROR(file_system_.remove_all(directory));  // leftovers of a crashed creation
  MSGSTORE_RETURN_IF_ERROR(file_system_.create_directories(directory));
  MSGSTORE_RETURN_IF_ERROR(file_system_.sync_directory(consumers_directory));
  auto consumer = std::make_shared<Consumer>(std::string(stream), config, directory);
  consumer->cursors = std::move(cursors);
  {
    std::lock_guard consumer_lock(consumer->mutex);
    MSGSTORE_RETURN_IF_ERROR(compact_locked(*consumer));  // generation 1: the log and the snapshot
  }
  // The configuration is the commit point: the consumer exists once it is durable.
  MSGSTORE_RETURN_IF_ERROR(io::write_metadata_file(file_system_, directory / config_file_name, config_kind, config_version,
                                                   encode_consumer_config(stream, config)));
  loaded.consumers.emplace(config.name, std::move(consumer));
  return Status::ok();
}

Status ConsumerRegistry::remove(std::string_view stream, std::string_view name) {
  auto found = find(stream, name);
  if (!found) return found.status();
  std::lock_guard lock(mutex_);
  auto loaded = streams_.find(stream);
  if (loaded == streams_.end() || !loaded->second.consumers.count(name)) return consumer_not_found(stream, name);
  Consumer& consumer = *found->consumer;
  std::lock_guard consumer_lock(consumer.mutex);
  // Rename into the store's trash (atomic, made durable), then remove; open empties the trash.
  const auto trash = store_.trash_directory() / ("consumer." + std::string(stream) + "." + std::string(name) + "." +
                                                 std::to_string(log::system_clock_ms()));
  MSGSTORE_RETURN_IF_ERROR(file_system_.rename(consumer.directory, trash));
  consumer.removed = true;
  loaded->second.consumers.erase(loaded->second.consumers.find(name));
  announce();
  MSGSTORE_RETURN_IF_ERROR(file_system_.sync_directory(consumer.directory.parent_path()));
  MSGSTORE_RETURN_IF_ERROR(file_system_.sync_directory(store_.trash_directory()));
  return file_system_.remove_all(trash);
}

ConsumerInfo ConsumerRegistry::describe_locked(Consumer& consumer, const StreamState& stream) {
  consumer.reconcile(stream);
  ConsumerInfo info;
  info.stream = consumer.stream;
  info.config = consumer.config;
  for (std::uint32_t partition = 0; partition < consumer.cursors.size() && partition < stream.partitions.size(); ++partition) {
    const PartitionCursor& cursor = consumer.cursors[partition];
    ConsumerPartitionInfo part;
    part.partition = partition;
    part.ack_floor = cursor.ack_floor;
    part.delivered_offset = cursor.delivered_offset;
    part.pending = cursor.pending.size();
    for (const auto& [offset, entry] : cursor.pending) {
      if (entry.out) ++part.out;
      if (entry.attempts > 1) ++part.redelivered;
    }
    const Offset high_watermark = stream.partitions[partition]->high_watermark();
    part.lag = high_watermark > cursor.delivered_offset ? high_watermark - cursor.delivered_offset : 0;
    info.pending += part.pending;
    info.lag += part.lag;
    info.redelivered += part.redelivered;
    info.partitions.push_back(part);
  }
  info.skipped = consumer.skipped;
  info.dead_lettered = consumer.dead_lettered;
  info.dropped = consumer.dropped;
  return info;
}

Result<ConsumerInfo> ConsumerRegistry::describe(std::string_view stream, std::string_view name) {
  auto found = find(stream, name);
  if (!found) return found.status();
  std::lock_guard lock(found->consumer->mutex);
  if (found->consumer->removed) return consumer_not_found(stream, name);
  return describe_locked(*found->consumer, *found->stream);
}

Result<std::vector<ConsumerInfo>> ConsumerRegistry::list(std::string_view stream) {
  auto found = find(stream, {});
  if (!found) return found.status();
  std::vector<std::shared_ptr<Consumer>> consumers;
  {
    std::lock_guard lock(mutex_);
    auto loaded = streams_.find(stream);
    if (loaded != streams_.end()) {
      for (const auto& [name, consumer] : loaded->second.consumers) consumers.push_back(consumer);
    }
  }
  std::vector<ConsumerInfo> result;
  for (const auto& consumer : consumers) {
    std::lock_guard lock(consumer->mutex);
    if (!consumer->removed) result.push_back(describe_locked(*consumer, *found->stream));
  }
  return result;
}

// ---- Fetch and settle -------------------------------------------------------------------------
Status ConsumerRegistry::make_durable(Consumer& consumer, const StreamState& stream, std::uint64_t end) {
  std::shared_ptr<StateLog> log;
  {
    std::lock_guard lock(consumer.mutex);
    log = consumer.log;
  }
  // As the log does: `always` waits for fdatasync (shared by concurrent acks); `interval` is
  // synced by the timer; `never` leaves it to the operating system.
  if (stream.config.fsync != FsyncPolicy::always || !log) return Status::ok();
  Status synced = log->sync_to(end);
  if (synced.is_ok()) return synced;
  // The log may have been compacted meanwhile: then the snapshot (synced) holds these records.
  std::lock_guard lock(consumer.mutex);
  if (consumer.log != log && consumer.failure.is_ok()) return Status::ok();
  if (consumer.failure.is_ok()) consumer.failure = synced;
  return synced;
}

Result<std::vector<ConsumedMessage>> ConsumerRegistry::fetch(std::string_view stream, std::string_view name,
                                                             const FetchOptions& options) {
  const auto wait = std::max(options.wait, std::chrono::milliseconds(0));
  const std::int64_t deadline = now_ms() + wait.count();
  while (true) {
    const std::uint64_t generation = wake_generation_.load();
    auto found = find(stream, name);
    if (!found) return found.status();
    Consumer& consumer = *found->consumer;
    std::vector<ConsumedMessage> messages;
    std::int64_t next_due = never_ms;
    {
      std::lock_guard lock(consumer.mutex);
      if (consumer.removed) return consumer_not_found(stream, name);
      if (!consumer.failure.is_ok()) return consumer.failure;
      std::string records;
      Status fetched = consumer.fetch(*found->stream, options, now_ms(), records, messages);
      // Deliveries are recorded but not synced on their own (a power loss may cost a redelivery).
      if (!records.empty()) {
        auto appended = consumer.log->append(records);
        if (!appended) {
          consumer.failure = appended.status();
          return appended.status();
        }
      }
      if (!fetched.is_ok()) return fetched;
      next_due = consumer.next_due_ms(/*for_timer=*/false);
    }
    if (!messages.empty()) {
      poke_timer();  // new ack deadlines
      return messages;
    }
    const std::int64_t now = now_ms();
    if (now >= deadline) return messages;
    const std::int64_t until = std::min(deadline, next_due);
    std::unique_lock lock(wake_mutex_);
    wake_.wait_for(lock, std::chrono::milliseconds(std::max<std::int64_t>(0, until - now)),
                   [&] { return wake_generation_.load() != generation || closing_.load(); });
  }
}

Result<std::vector<Status>> ConsumerRegistry::settle(std::string_view stream, std::string_view name, AckKind kind,
                                                     std::span<const std::string> tokens,
                                                     std::optional<std::chrono::milliseconds> delay) {
  auto found = find(stream, name);
  if (!found) return found.status();
  Consumer& consumer = *found->consumer;
  std::vector<Status> results(tokens.size());
  std::vector<DeadLetterJob> jobs;
  std::uint64_t end = 0;
  bool logged = false;
  bool woke = false;
  {
    std::lock_guard lock(consumer.mutex);
    if (consumer.removed) return consumer_not_found(stream, name);
    if (!consumer.failure.is_ok()) return consumer.failure;
    consumer.reconcile(*found->stream);
    const std::int64_t now = now_ms();
    std::string records;
    std::vector<bool> touched(consumer.cursors.size(), false);
    for (std::size_t index = 0; index < tokens.size(); ++index) {
      auto token = DeliveryToken::parse(tokens[index]);
      if (!token) {
        results[index] = token.status();
        continue;
      }
      if (token->stream != stream) {
        results[index] = Status(ErrorCode::invalid_argument, "delivery " + tokens[index] + " belongs to stream '" + token->stream + "'");
        continue;
      }
      if (token->partition >= consumer.cursors.size()) {
        results[index] = Status(ErrorCode::invalid_argument, "delivery " + tokens[index] + " names partition " +
                                                                 std::to_string(token->partition) + ", which does not exist");
        continue;
      }
      PartitionCursor& cursor = consumer.cursors[token->partition];
      auto stale = [&](const std::string& why) { return Status(ErrorCode::stale_delivery, "delivery " + tokens[index] + " " + why); };
      if (token->offset >= cursor.delivered_offset) {
        results[index] = stale("was never made");
        continue;
      }
      auto entry = cursor.pending.find(token->offset);
      if (entry == cursor.pending.end()) {
        results[index] = stale("is already settled (acked, terminated or removed)");
        continue;
      }
      Pending& pending = entry->second;
      if (pending.dead_lettering) {
        results[index] = stale("is already settled (being dead-lettered)");
        continue;
      }
      if (pending.attempts != token->attempt) {
        results[index] = pending.attempts > token->attempt
                             ? stale("was redelivered since (attempt " + std::to_string(pending.attempts) + " is current)")
                             : stale("was never made (attempt " + std::to_string(pending.attempts) + " is current)");
        continue;
      }
      switch (kind) {
        case AckKind::ack:
          cursor.pending.erase(entry);
          cursor.done.insert(token->offset);
          encode_record({RecordType::ack, token->partition, token->offset, 0}, records);
          touched[token->partition] = true;
          break;
        case AckKind::nak: {
          const std::int64_t wait_ms = delay ? std::max<std::int64_t>(0, delay->count()) : consumer.backoff_ms(pending.attempts);
          consumer.fail_delivery(pending, now, now + wait_ms);
          if (consumer.exhausted(pending)) {  // no attempts left: dead-letter it now
            pending.dead_lettering = true;
            jobs.push_back({token->partition, token->offset, pending.attempts, "max_deliveries", index});
          }
          woke = true;
          break;
        }
        case AckKind::term:
          pending.out = false;
          pending.dead_lettering = true;
          jobs.push_back({token->partition, token->offset, pending.attempts, "term", index});
          break;
        case AckKind::in_progress:
          pending.out = true;
          pending.deadline_ms = now + consumer.config.ack_wait_ms;
          break;
      }
    }
    for (std::uint32_t partition = 0; partition < touched.size(); ++partition) {
      if (touched[partition] && consumer.cursors[partition].advance_floor()) {
        encode_record({RecordType::position, partition, consumer.cursors[partition].ack_floor,
                       consumer.cursors[partition].delivered_offset}, records);
      }
    }
    if (!records.empty()) {
      auto appended = consumer.log->append(records);
      if (!appended) {
        consumer.failure = appended.status();
        return appended.status();
      }
      end = *appended;
      logged = true;
    }
  }
  if (woke) {
    announce();
    poke_timer();
  }
  if (logged) MSGSTORE_RETURN_IF_ERROR(make_durable(consumer, *found->stream, end));
  // Term (and a nak past max deliveries) finish here, so the call returns with the message
  // in the dead-letter stream and marked done.
  for (const DeadLetterJob& job : jobs) {
    Status status = run_dead_letter(found->consumer, job);
    if (!status.is_ok()) results[job.token_index] = status;
  }
  return results;
}

Status ConsumerRegistry::run_dead_letter(const std::shared_ptr<Consumer>& consumer, const DeadLetterJob& job) {
  const auto table = store_.streams();
  auto found = table->find(consumer->stream);
  if (found == table->end()) return Status(ErrorCode::stream_not_found, "stream '" + consumer->stream + "' does not exist");
  const StreamState& stream = *found->second;
  if (job.partition >= stream.partitions.size()) return Status::ok();
  std::optional<Message> original;
  auto scanned = stream.partitions[job.partition]->scan(job.offset, 1, SIZE_MAX, [&](const MessageView& message) {
    if (message.offset == job.offset) original = message.to_message();
    return false;
  });
  Status published;
  const bool gone = !original;  // removed by retention (or unreadable) before it could be moved
  if (original && !consumer->config.dead_letter_stream.empty()) {
    const std::string partition_text = std::to_string(job.partition);
    const std::string offset_text = std::to_string(job.offset);
    const std::string attempts_text = std::to_string(job.attempts);
    std::vector<HeaderView> headers;
    headers.reserve(original->headers.size() + 7);
    for (const Header& header : original->headers) headers.push_back({header.name, header.value});
    headers.push_back({dead_letter_reason_header, job.reason});
    headers.push_back({dead_letter_stream_header, consumer->stream});
    headers.push_back({dead_letter_partition_header, partition_text});
    headers.push_back({dead_letter_offset_header, offset_text});
    headers.push_back({dead_letter_subject_header, original->subject});
    headers.push_back({dead_letter_consumer_header, consumer->config.name});
    headers.push_back({dead_letter_deliveries_header, attempts_text});
    OutgoingMessage message;
    message.subject = original->subject;
    if (original->key) message.key = std::string_view(*original->key);
    message.headers = headers;
    message.payload = original->payload;
    auto positions = store_.publish(std::span<const OutgoingMessage>(&message, 1), consumer->config.dead_letter_stream);
    if (!positions) {
      published = Status(positions.status().code(), "dead-letter append to stream '" + consumer->config.dead_letter_stream +
                                                        "' failed: " + positions.status().message());
    }
  }
  std::uint64_t end = 0;
  {
    std::lock_guard lock(consumer->mutex);
    if (consumer->removed || !consumer->failure.is_ok() || job.partition >= consumer->cursors.size()) return published;
    PartitionCursor& cursor = consumer->cursors[job.partition];
    auto entry = cursor.pending.find(job.offset);
    if (entry == cursor.pending.end() || !entry->second.dead_lettering) return published;
    if (!published.is_ok()) {
      entry->second.dead_lettering = false;  // tried again later (fetch or the timer)
      entry->second.deadline_ms = now_ms() + dead_letter_retry_ms;
      return published;
    }
    if (gone) ++consumer->skipped;
    else if (consumer->config.dead_letter_stream.empty()) ++consumer->dropped;
    else ++consumer->dead_lettered;
    cursor.pending.erase(entry);
    cursor.done.insert(job.offset);
    std::string records;
    encode_record({RecordType::ack, job.partition, job.offset, 0}, records);
    if (cursor.advance_floor()) {
      encode_record({RecordType::position, job.partition, cursor.ack_floor, cursor.delivered_offset}, records);
    }
    auto appended = consumer->log->append(records);
    if (!appended) {
      consumer->failure = appended.status();
      return appended.status();
    }
    end = *appended;
  }
  return make_durable(*consumer, stream, end);
}

// ---- Timer ------------------------------------------------------------------------------------
void ConsumerRegistry::timer_loop() {
  std::int64_t last_pass_ms = now_ms();
  while (!closing_) {
    const std::int64_t now = now_ms();
    std::int64_t next_wake = now + timer_period_ms_max;
    bool expired = false;
    const auto table = store_.streams();
    for (const auto& consumer : loaded_consumers()) {
      auto found = table->find(consumer->stream);
      if (found == table->end()) continue;  // deleted: find() forgets it on the next call
      const StreamConfig& stream_config = found->second->config;
      std::vector<DeadLetterJob> jobs;
      std::shared_ptr<StateLog> to_sync;
      {
        std::lock_guard lock(consumer->mutex);
        if (consumer->removed || !consumer->failure.is_ok()) continue;
        if (consumer->expire(now)) expired = true;
        if (consumer->became_due(last_pass_ms, now)) expired = true;
        consumer->collect_dead_letters(now, jobs);
        next_wake = std::min(next_wake, consumer->next_due_ms(/*for_timer=*/true));
        if (consumer->log && consumer->log->size() > limits::consumer_state_log_compact_bytes) {
          Status compacted = compact_locked(*consumer);
          if (!compacted.is_ok()) std::fprintf(stderr, "msgstore: consumer %s/%s: %s\n", consumer->stream.c_str(),
                                               consumer->config.name.c_str(), compacted.to_string().c_str());
        }
        if (stream_config.fsync == FsyncPolicy::interval && consumer->log) {
          const std::int64_t interval = std::max<std::int64_t>(1, stream_config.fsync_interval_ms);
          if (now - consumer->last_sync_ms >= interval) {
            if (consumer->log->has_unsynced()) to_sync = consumer->log;
            consumer->last_sync_ms = now;
          }
          next_wake = std::min(next_wake, consumer->last_sync_ms + interval);
        }
      }
      if (to_sync) {
        Status synced = to_sync->sync_all();
        if (!synced.is_ok()) {
          std::lock_guard lock(consumer->mutex);
          if (consumer->failure.is_ok() && consumer->log == to_sync) consumer->failure = synced;
        }
      }
      for (const DeadLetterJob& job : jobs) (void)run_dead_letter(consumer, job);
    }
    // Expired deliveries, and naks and backoffs that ran out, may be delivered now. Blocking
    // fetchers also wake at their consumer's next due time, but waiters elsewhere (the server's
    // long polls) only learn of it here.
    if (expired) announce();
    last_pass_ms = now;
    std::unique_lock lock(timer_mutex_);
    const std::int64_t wait_ms = std::max<std::int64_t>(1, next_wake - now_ms());
    timer_wake_.wait_for(lock, std::chrono::milliseconds(wait_ms), [&] { return timer_poked_ || closing_.load(); });
    timer_poked_ = false;
  }
}

}  // namespace consumer
}  // namespace msgstore
