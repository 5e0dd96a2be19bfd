#include "msgstore/store.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <deque>
#include <random>
#include <unordered_map>

#include "base/assert.h"
#include "base/hash.h"
#include "base/subject.h"
#include "io/metadata_file.h"
#include "index/query_engine.h"
#include "log/message_policy.h"
#include "log/record_batch.h"
#include "store/store_impl.h"
#include "store/stream_config.h"

namespace msgstore {
namespace {

constexpr const char* lock_file_name = "msgstore.lock";
constexpr const char* store_meta_name = "store.meta";
constexpr const char* store_meta_kind = "store";
constexpr std::uint32_t store_meta_version = 1;
constexpr const char* streams_directory_name = "streams";
constexpr const char* trash_directory_name = "trash";
constexpr const char* stream_meta_name = "stream.meta";

std::filesystem::path partition_directory(const std::filesystem::path& stream_directory, std::uint32_t partition) {
  return stream_directory / ("partition-" + std::to_string(partition));
}

// Errors of the machine (I/O, full disk) rather than of the data: never a reason to drop a stream.
bool is_environment_error(const Status& status) {
  return status.code() == ErrorCode::io_error || status.code() == ErrorCode::no_space;
}

Status with_context(const Status& status, const std::string& context) {
  return Status(status.code(), context + ": " + status.message());
}

index::IndexConfiguration index_configuration_for(const StreamConfig& config) {
  return index::make_index_configuration(config.indexes_enabled, config.indexed_headers);
}

}  // namespace


// ---------------------------------------------------------------------------------------------
StoreImpl::StoreImpl(std::filesystem::path directory, StoreOptions options)
    : directory_(std::move(directory)),
      options_(std::move(options)),
      file_system_(options_.file_system ? options_.file_system : posix_file_system()),
      sync_threads_(std::make_shared<log::WorkerThreads>(options_.sync_threads)),
      index_threads_(options_.index_threads > 0 ? std::make_shared<log::WorkerThreads>(options_.index_threads) : nullptr),
      streams_(std::make_shared<StreamTable>()) {}

StoreImpl::~StoreImpl() { (void)close(); }

Status StoreImpl::open() {
  if (!file_system_->is_directory(directory_)) {
    if (!options_.create_if_missing) return Status(ErrorCode::invalid_argument, "data directory " + directory_.string() + " does not exist");
    MSGSTORE_RETURN_IF_ERROR(file_system_->create_directories(directory_));
    MSGSTORE_RETURN_IF_ERROR(file_system_->sync_directory(directory_.parent_path().empty() ? "." : directory_.parent_path()));
  }
  auto lock = file_system_->lock(directory_ / lock_file_name);
  if (!lock) return lock.status();
  lock_ = std::move(*lock);

  const auto meta_path = directory_ / store_meta_name;
  if (file_system_->exists(meta_path)) {
    auto fields = io::read_metadata_file(*file_system_, meta_path, store_meta_kind, store_meta_version);
    if (!fields) return fields.status();
  } else {
    io::MetadataFields fields;
    fields["format"] = "1";
    fields["created_ms"] = std::to_string(log::system_clock_ms());
    MSGSTORE_RETURN_IF_ERROR(io::write_metadata_file(*file_system_, meta_path, store_meta_kind, store_meta_version, fields));
  }
  const auto streams_directory = directory_ / streams_directory_name;
  const auto trash_directory = directory_ / trash_directory_name;
  // Deleted streams are renamed into trash/ first; finish removing them.
  if (file_system_->exists(trash_directory)) MSGSTORE_RETURN_IF_ERROR(file_system_->remove_all(trash_directory));
  MSGSTORE_RETURN_IF_ERROR(file_system_->create_directories(streams_directory));
  MSGSTORE_RETURN_IF_ERROR(file_system_->create_directories(trash_directory));
  MSGSTORE_RETURN_IF_ERROR(file_system_->sync_directory(directory_));

  auto names = file_system_->list_directory(streams_directory);
  if (!names) return names.status();
  auto table = std::make_shared<StreamTable>();
  for (const std::string& name : *names) {
    const auto stream_directory = streams_directory / name;
    if (!file_system_->is_directory(stream_directory)) continue;
    const auto meta = stream_directory / stream_meta_name;
    if (!file_system_->exists(meta)) {
      // A creation that crashed before its metadata became durable: nothing was ever acked in it.
      MSGSTORE_RETURN_IF_ERROR(file_system_->remove_all(stream_directory));
      continue;
    }
    auto fields = io::read_metadata_file(*file_system_, meta, store::stream_meta_kind, store::stream_meta_version);
    Result<StreamConfig> config = fields ? store::decode_stream_config(*fields) : Result<StreamConfig>(fields.status());
    if (!config) {
      // Damaged or unknown-format metadata: report and serve the other streams. An I/O error
      // says nothing about the stream, so opening fails rather than hiding it.
      if (is_environment_error(config.status())) return config.status();
      open_problems_.push_back("stream directory '" + name + "' not opened: " + config.status().message());
      continue;
    }
    if (config->name != name) {
      open_problems_.push_back("stream directory '" + name + "' holds metadata for '" + config->name + "'; not opened");
      continue;
    }
    auto state = open_stream(stream_directory, *config);
    if (!state) {
      // One damaged stream must not take the others down: report it (verify, describe) and
      // serve the rest. Its files are left untouched for the operator.
      if (is_environment_error(state.status())) return state.status();
      open_problems_.push_back("stream '" + name + "' not opened: " + state.status().to_string());
      continue;
    }
    table->emplace(name, std::move(*state));
  }
  install_table(table);
  open_ = true;
  if (options_.background_maintenance) maintenance_thread_ = std::thread([this] { maintenance_loop(); });
  return Status::ok();
}

Result<std::shared_ptr<StreamState>> StoreImpl::open_stream(const std::filesystem::path& stream_directory,
                                                           const StreamConfig& config) {
  auto state = std::make_shared<StreamState>();
  state->config = config;
  // Start round robin at a random partition, so short-lived publishers (one CLI call per
  // message) do not all land in partition 0.
  state->round_robin->store(static_cast<std::uint32_t>(std::random_device{}()));
  state->directory = stream_directory;
  MSGSTORE_RETURN_IF_ERROR(open_partitions(*state, 0));
  if (config.dedup_window_ms > 0) MSGSTORE_RETURN_IF_ERROR(rebuild_dedup(*state));
  return state;
}

Status StoreImpl::rebuild_dedup(const StreamState& state) {
  struct Recovered {
    TimestampMs stored_ms;
    std::string id;
    store::DedupOriginal original;
  };
  std::vector<Recovered> recovered;
  // Oldest first, so the table expires them in order; the first copy of an id is the original.
  auto by_time = [](const Recovered& left, const Recovered& right) { return left.stored_ms < right.stored_ms; };
  // The table keeps at most dedup_entries_max ids, the newest: the rest need not be held.
  auto keep_newest = [&] {
    std::stable_sort(recovered.begin(), recovered.end(), by_time);
    recovered.erase(recovered.begin(), recovered.end() - static_cast<std::ptrdiff_t>(limits::dedup_entries_max));
  };
  const TimestampMs now = log::system_clock_ms();
  const TimestampMs since = now - state.config.dedup_window_ms;
  for (std::uint32_t partition = 0; partition < state.partitions.size(); ++partition) {
    const auto& log = state.partitions[partition];
    auto start = log->offset_for_time(since);
    if (!start) {
      if (is_environment_error(start.status())) return start.status();
      continue;  // damage is reported by verify and describe; the ids before it cannot be read
    }
    Offset next = *start;
    while (next < log->high_watermark()) {
      auto scanned = log->scan(
          next, limits::read_messages_max, limits::read_bytes_max,
          [&](const MessageView& message) {
            if (message.timestamp_ms <= since || message.headers.empty()) return true;
            const std::optional<std::string_view> id = log::find_header(message.headers, message_id_header);
            if (id) recovered.push_back({message.timestamp_ms, std::string(*id), {partition, message.offset}});
            if (recovered.size() >= 2 * limits::dedup_entries_max) keep_newest();  // bounded memory
            return true;
          },
          log::ScanExpired::include);
      if (!scanned) {
        if (is_environment_error(scanned.status())) return scanned.status();
        break;  // damaged data (reported elsewhere): the ids after it are not protected
      }
      if (*scanned <= next) break;
      next = *scanned;
    }
  }
  std::stable_sort(recovered.begin(), recovered.end(), by_time);
  for (const Recovered& entry : recovered) state.dedup->insert_recovered(entry.id, entry.original, entry.stored_ms);
  return Status::ok();
}

log::LogOptions StoreImpl::log_options(const StreamConfig& config) const {
  log::LogOptions options = store::log_options_for(config);
  options.preallocate_bytes = options_.preallocation_bytes;
  return options;
}

Status StoreImpl::open_partitions(StreamState& state, std::uint32_t first_partition) {
  for (std::uint32_t partition = first_partition; partition < state.config.partitions; ++partition) {
    auto log = log::PartitionLog::open(*file_system_, partition_directory(state.directory, partition),
                                       state.config.name + "/" + std::to_string(partition),
                                       log_options(state.config), nullptr, nullptr);
    if (!log) return log.status();
    std::shared_ptr<log::PartitionLog> shared = std::move(*log);
    shared->set_sync_threads(sync_threads_);
    auto index = index::PartitionIndex::attach(*file_system_, *shared, index_configuration_for(state.config),
                                              limits::message_index_cache_bytes_max, index_threads_);
    if (!index) return index.status();
    state.indexes.push_back(std::move(*index));
    std::weak_ptr<StoreImpl> self = weak_from_this();
    shared->set_data_listener([self] {
      if (auto store = self.lock()) store->notify_data();
    });
    state.partitions.push_back(std::move(shared));
  }
  return Status::ok();
}

void StoreImpl::install_table(std::shared_ptr<const StreamTable> table) {
  {
    std::lock_guard lock(streams_mutex_);
    streams_ = std::move(table);
  }
  notify_data();
}

std::shared_ptr<const StreamTable> StoreImpl::streams() const {
  std::lock_guard lock(streams_mutex_);
  return streams_;
}

Status StoreImpl::close() {
  if (closed_.exchange(true)) return Status::ok();
  {
    std::lock_guard lock(maintenance_mutex_);
    maintenance_wake_.notify_all();
  }
  if (maintenance_thread_.joinable()) maintenance_thread_.join();
  notify_data();
  std::shared_ptr<StoreComponent> registry;
  {
    std::lock_guard lock(component_mutex_);
    registry = consumer_registry_;
  }
  if (registry) registry->close();  // syncs consumer state while the logs are still open
  Status result;
  auto table = streams();
  for (const auto& [name, stream] : *table) {
    for (const auto& partition : stream->partitions) {
      Status closed = partition->close();  // also answers every publish_async still waiting
      if (!closed.is_ok() && result.is_ok()) result = closed;
    }
  }
  // Index files of segments sealed moments ago are written here, not by the index thread
  // after the directory lock is released.
  for (const auto& [name, stream] : *table) {
    for (const auto& index : stream->indexes) index->close(/*write_pending=*/true);
  }
  sync_threads_->stop();
  if (index_threads_) index_threads_->stop();
  lock_.reset();
  return result;
}

std::filesystem::path StoreImpl::trash_directory() const { return directory_ / trash_directory_name; }

std::shared_ptr<StoreComponent> StoreImpl::consumer_registry(const std::function<std::shared_ptr<StoreComponent>()>& make) {
  std::lock_guard lock(component_mutex_);
  if (!consumer_registry_) consumer_registry_ = make();
  return consumer_registry_;
}

void StoreImpl::maintenance_loop() {
  std::unique_lock lock(maintenance_mutex_);
  while (!closed_) {
    auto period = options_.maintenance_period;
    const auto table = streams();  // held: a range-for over *streams() would free the table mid-loop
    for (const auto& [name, stream] : *table) {
      if (stream->config.fsync == FsyncPolicy::interval) {
        period = std::min(period, std::chrono::milliseconds(std::max<std::uint32_t>(1, stream->config.fsync_interval_ms)));
      }
    }
    maintenance_wake_.wait_for(lock, period);
    if (closed_) break;
    lock.unlock();
    Status status = run_maintenance();
    if (!status.is_ok()) std::fprintf(stderr, "msgstore: maintenance: %s\n", status.to_string().c_str());
    lock.lock();
  }
}

Status StoreImpl::run_maintenance() {
  if (closed_) return Status(ErrorCode::closed, "store is closed");
  Status first_error;
  const auto table = streams();  // held for the loop (see maintenance_loop)
  for (const auto& [name, stream] : *table) {
    for (const auto& partition : stream->partitions) {
      Status status = partition->maintain();
      if (!status.is_ok() && first_error.is_ok()) first_error = status;
    }
    Status rewrites = maintain_rewrites(*stream);  // compaction and erase removal (store_rewrite.cc)
    if (!rewrites.is_ok() && first_error.is_ok()) first_error = rewrites;
  }
  return first_error;
}

void StoreImpl::notify_data() {
  // seq_cst on both sides (here and in wait_for_data): with weaker orders a waiter could
  // miss the new generation while this thread misses the waiter (store-buffer reordering).
  data_generation_.fetch_add(1);
  if (data_waiters_.load() > 0) {
    std::lock_guard lock(data_mutex_);
    data_arrived_.notify_all();
  }
  if (listener_count_.load() == 0) return;
  std::shared_lock calling(listener_call_mutex_);
  std::vector<std::shared_ptr<std::function<void()>>> callbacks;
  {
    std::lock_guard lock(listeners_mutex_);
    callbacks.reserve(listeners_.size());
    for (const auto& listener : listeners_) callbacks.push_back(listener.callback);
  }
  for (const auto& callback : callbacks) (*callback)();
}

// Unregisters on destruction; keeps only a weak reference so it may outlive the store.
class DataListenerRegistration final : public DataListenerHandle {
 public:
  DataListenerRegistration(std::weak_ptr<StoreImpl> store, std::uint64_t id) : store_(std::move(store)), id_(id) {}
  ~DataListenerRegistration() override {
    if (auto store = store_.lock()) store->remove_data_listener(id_);
  }

 private:
  std::weak_ptr<StoreImpl> store_;
  std::uint64_t id_;
};

std::unique_ptr<DataListenerHandle> StoreImpl::add_data_listener(std::function<void()> listener) {
  std::lock_guard lock(listeners_mutex_);
  const std::uint64_t id = next_listener_id_++;
  listeners_.push_back({id, std::make_shared<std::function<void()>>(std::move(listener))});
  listener_count_.store(listeners_.size());
  return std::make_unique<DataListenerRegistration>(weak_from_this(), id);
}

void StoreImpl::remove_data_listener(std::uint64_t id) {
  {
    std::lock_guard lock(listeners_mutex_);
    std::erase_if(listeners_, [id](const DataListener& listener) { return listener.id == id; });
    listener_count_.store(listeners_.size());
  }
  // Wait for calls that copied the callback before it was erased.
  std::unique_lock wait_for_calls(listener_call_mutex_);
}

void StoreImpl::wait_for_data(std::uint64_t seen_generation, std::chrono::milliseconds timeout) const {
  auto* self = const_cast<StoreImpl*>(this);
  self->data_waiters_.fetch_add(1);
  {
    std::unique_lock lock(data_mutex_);
    data_arrived_.wait_for(lock, timeout, [&] { return data_generation_.load() != seen_generation || closed_.load(); });
  }
  self->data_waiters_.fetch_sub(1);
}

// ---- Streams ----------------------------------------------------------------------------------
Status StoreImpl::create_stream(const StreamConfig& config) {
  if (closed_) return Status(ErrorCode::closed, "store is closed");
  MSGSTORE_RETURN_IF_ERROR(validate_stream_config(config));
  std::lock_guard admin(admin_mutex_);
  auto table = streams();
  if (table->count(config.name)) return Status(ErrorCode::stream_exists, "stream '" + config.name + "' already exists");
  if (table->size() >= limits::streams_max) {
    return Status(ErrorCode::limit_exceeded, "a store holds at most " + std::to_string(limits::streams_max) + " streams");
  }
  const auto streams_directory = directory_ / streams_directory_name;
  const auto stream_directory = streams_directory / config.name;
  // A directory with metadata is a stream that open() could not open (verify reports why):
  // never delete its data to make room for a new one.
  if (file_system_->exists(stream_directory / stream_meta_name)) {
    return Status(ErrorCode::stream_exists, "stream directory '" + config.name +
                                                "' exists but could not be opened (see verify); remove it by hand first");
  }
  // Leftovers of a crashed creation are removed on open; a stale one here is removed too.
  MSGSTORE_RETURN_IF_ERROR(file_system_->remove_all(stream_directory));
  MSGSTORE_RETURN_IF_ERROR(file_system_->create_directories(stream_directory));
  auto state = open_stream(stream_directory, config);
  if (!state) return state.status();
  MSGSTORE_RETURN_IF_ERROR(file_system_->sync_directory(stream_directory));
  MSGSTORE_RETURN_IF_ERROR(file_system_->sync_directory(streams_directory));
  // The metadata file is the commit point: a stream exists once it is durable.
  MSGSTORE_RETURN_IF_ERROR(io::write_metadata_file(*file_system_, stream_directory / stream_meta_name, store::stream_meta_kind,
                                                   store::stream_meta_version, store::encode_stream_config(config)));
  auto updated = std::make_shared<StreamTable>(*table);
  updated->emplace(config.name, std::move(*state));
  install_table(updated);
  return Status::ok();
}

Status StoreImpl::update_stream(const StreamConfig& config) {
  if (closed_) return Status(ErrorCode::closed, "store is closed");
  MSGSTORE_RETURN_IF_ERROR(validate_stream_config(config));
  std::lock_guard admin(admin_mutex_);
  auto table = streams();
  auto found = table->find(config.name);
  if (found == table->end()) return Status(ErrorCode::stream_not_found, "stream '" + config.name + "' does not exist");
  const StreamState& old = *found->second;
  if (config.partitions < old.config.partitions) {
    return Status(ErrorCode::invalid_argument, "partitions can only grow (stream '" + config.name + "' has " +
                                                   std::to_string(old.config.partitions) + ")");
  }
  auto state = std::make_shared<StreamState>(old);
  state->config = config;
  MSGSTORE_RETURN_IF_ERROR(open_partitions(*state, old.config.partitions));
  // Turning duplicate suppression on: learn the ids already stored within the window (publishes
  // racing with this update still see the old configuration and are not checked).
  if (old.config.dedup_window_ms == 0 && config.dedup_window_ms > 0) MSGSTORE_RETURN_IF_ERROR(rebuild_dedup(*state));
  if (config.partitions > old.config.partitions) MSGSTORE_RETURN_IF_ERROR(file_system_->sync_directory(old.directory));
  MSGSTORE_RETURN_IF_ERROR(io::write_metadata_file(*file_system_, old.directory / stream_meta_name, store::stream_meta_kind,
                                                   store::stream_meta_version, store::encode_stream_config(config)));
  for (const auto& partition : state->partitions) partition->set_options(log_options(config));
  for (const auto& index : state->indexes) index->set_configuration(index_configuration_for(config));
  auto updated = std::make_shared<StreamTable>(*table);
  (*updated)[config.name] = state;
  install_table(updated);
  return Status::ok();
}

std::vector<StreamConfig> StoreImpl::list_streams() const {
  std::vector<StreamConfig> result;
  const auto table = streams();  // held for the loop (see maintenance_loop)
  for (const auto& [name, stream] : *table) result.push_back(stream->config);
  return result;
}

Result<StreamInfo> StoreImpl::describe_stream(std::string_view name) const {
  if (closed_) return Status(ErrorCode::closed, "store is closed");
  auto table = streams();
  auto found = table->find(name);
  if (found == table->end()) return Status(ErrorCode::stream_not_found, "stream '" + std::string(name) + "' does not exist");
  StreamInfo info;
  info.config = found->second->config;
  for (std::uint32_t partition = 0; partition < found->second->partitions.size(); ++partition) {
    info.partitions.push_back(found->second->partitions[partition]->info(partition));
    info.bytes += info.partitions.back().bytes;
    info.messages += info.partitions.back().messages;
  }
  return info;
}

Status StoreImpl::delete_stream(std::string_view name) {
  if (closed_) return Status(ErrorCode::closed, "store is closed");
  std::lock_guard admin(admin_mutex_);
  auto table = streams();
  auto found = table->find(name);
  if (found == table->end()) return Status(ErrorCode::stream_not_found, "stream '" + std::string(name) + "' does not exist");
  std::shared_ptr<const StreamState> state = found->second;
  auto updated = std::make_shared<StreamTable>(*table);
  updated->erase(std::string(name));
  install_table(updated);
  for (const auto& partition : state->partitions) (void)partition->close();
  for (const auto& index : state->indexes) index->close(/*write_pending=*/false);
  // Rename into trash (atomic, made durable), then remove; open() finishes an interrupted removal.
  const auto trash = directory_ / trash_directory_name / (std::string(name) + "." + std::to_string(log::system_clock_ms()));
  MSGSTORE_RETURN_IF_ERROR(file_system_->rename(state->directory, trash));
  MSGSTORE_RETURN_IF_ERROR(file_system_->sync_directory(directory_ / streams_directory_name));
  MSGSTORE_RETURN_IF_ERROR(file_system_->sync_directory(directory_ / trash_directory_name));
  return file_system_->remove_all(trash);
}

// ---- Publishing -------------------------------------------------------------------------------
namespace {

// The reserved headers (message.h) and the fields written as them.
Status validate_reserved_headers(const OutgoingMessage& message) {
  bool has_id_header = false;
  bool has_ttl_header = false;
  // The error texts are made only on error: this runs for every message with a key or headers.
  auto id_limits = [] { return "1 to " + std::to_string(limits::message_id_bytes_max) + " bytes"; };
  auto ttl_limits = [] { return "1 to " + std::to_string(limits::ttl_ms_max) + " milliseconds, in decimal digits"; };
  for (const HeaderView& header : message.headers) {
    if (log::header_name_equals(header.name, message_id_header)) {
      if (has_id_header) return Status(ErrorCode::invalid_argument, "a message may carry one " + std::string(message_id_header) + " header");
      has_id_header = true;
      if (header.value.empty() || header.value.size() > limits::message_id_bytes_max) {
        return Status(ErrorCode::invalid_argument, "a message id must be " + id_limits());
      }
    } else if (log::header_name_equals(header.name, ttl_header)) {
      if (has_ttl_header) return Status(ErrorCode::invalid_argument, "a message may carry one " + std::string(ttl_header) + " header");
      has_ttl_header = true;
      if (!log::parse_ttl_ms(header.value)) {
        return Status(ErrorCode::invalid_argument, std::string(ttl_header) + " '" + std::string(header.value) + "' must be " + ttl_limits());
      }
    }
  }
  if (message.message_id) {
    if (has_id_header) {
      return Status(ErrorCode::invalid_argument, "give the message id as the message_id field or as the " +
                                                     std::string(message_id_header) + " header, not both");
    }
    if (message.message_id->empty() || message.message_id->size() > limits::message_id_bytes_max) {
      return Status(ErrorCode::invalid_argument, "a message id must be " + id_limits());
    }
  }
  if (message.ttl_ms) {
    if (has_ttl_header) {
      return Status(ErrorCode::invalid_argument, "give the time to live as the ttl_ms field or as the " + std::string(ttl_header) +
                                                     " header, not both");
    }
    if (*message.ttl_ms < 1 || *message.ttl_ms > limits::ttl_ms_max) {
      return Status(ErrorCode::invalid_argument, "ttl_ms must be " + ttl_limits());
    }
  }
  return Status::ok();
}

// Checks key and headers; the subject is checked once per run of equal subjects.
Status validate_key_and_headers(const OutgoingMessage& message) {
  if (message.key && message.key->size() > limits::key_bytes_max) {
    return Status(ErrorCode::message_too_large, "key is " + std::to_string(message.key->size()) + " bytes; the limit is " +
                                                    std::to_string(limits::key_bytes_max));
  }
  const std::size_t field_headers = (message.message_id ? 1 : 0) + (message.ttl_ms ? 1 : 0);
  if (message.headers.size() + field_headers > limits::headers_per_message_max) {
    return Status(ErrorCode::limit_exceeded, "a message may carry at most " + std::to_string(limits::headers_per_message_max) + " headers");
  }
  for (const HeaderView& header : message.headers) {
    if (header.name.empty() || header.name.size() > limits::header_name_bytes_max) {
      return Status(ErrorCode::invalid_argument, "header names must be 1 to " + std::to_string(limits::header_name_bytes_max) + " bytes");
    }
    if (header.value.size() > limits::header_value_bytes_max) {
      return Status(ErrorCode::message_too_large, "header '" + std::string(header.name) + "' value exceeds " +
                                                      std::to_string(limits::header_value_bytes_max) + " bytes");
    }
  }
  return validate_reserved_headers(message);
}

Status validate_message_shape(const OutgoingMessage& message) {
  MSGSTORE_RETURN_IF_ERROR(base::validate_subject(message.subject));
  return validate_key_and_headers(message);
}

bool needs_header_checks(const OutgoingMessage& message) {
  return !message.headers.empty() || message.key || message.message_id || message.ttl_ms;
}

// The messages of one publish with their message_id and ttl_ms fields written as reserved
// headers, so the stored record carries them (and survives a restart). When no message sets
// either field, the caller's messages are used as they are, without copying.
class PreparedMessages {
 public:
  std::span<const OutgoingMessage> prepare(std::span<const OutgoingMessage> messages) {
    std::size_t headers = 0;
    for (const OutgoingMessage& message : messages) {
      if (message.message_id || message.ttl_ms) headers += message.headers.size() + 2;
    }
    if (headers == 0) return messages;
    messages_.assign(messages.begin(), messages.end());
    headers_.reserve(headers);  // never reallocated below: the spans point into it
    for (OutgoingMessage& message : messages_) {
      if (!message.message_id && !message.ttl_ms) continue;
      const std::size_t first = headers_.size();
      headers_.insert(headers_.end(), message.headers.begin(), message.headers.end());
      if (message.message_id) headers_.push_back({message_id_header, *message.message_id});
      if (message.ttl_ms) {
        texts_.push_back(std::to_string(*message.ttl_ms));
        headers_.push_back({ttl_header, texts_.back()});
      }
      message.headers = std::span<const HeaderView>(headers_.data() + first, headers_.size() - first);
      message.message_id.reset();
      message.ttl_ms.reset();
    }
    return messages_;
  }

 private:
  std::vector<OutgoingMessage> messages_;
  std::vector<HeaderView> headers_;
  std::deque<std::string> texts_;  // a deque never moves its strings, so views stay valid
};

// The conditional-append check, run under the partition's append lock: record i of the
// batch (message message_indexes[i]) will get offset next_offset + i, so the last offset
// before it is next_offset + i - 1. The error carries the partition's actual last offset.
Status check_expected_offsets(std::span<const OutgoingMessage> messages, const std::vector<std::uint32_t>& message_indexes,
                              Offset next_offset, const std::string& stream, std::uint32_t partition) {
  for (std::size_t i = 0; i < message_indexes.size(); ++i) {
    const OutgoingMessage& message = messages[message_indexes[i]];
    if (!message.expected_offset) continue;
    const Offset before = next_offset + i;
    const Offset actual_last = before == 0 ? expected_offset_empty : before - 1;
    if (*message.expected_offset == actual_last) continue;
    auto describe = [](Offset offset) {
      return offset == expected_offset_empty ? std::string("none (empty)") : std::to_string(offset);
    };
    const Offset partition_last = next_offset == 0 ? expected_offset_empty : next_offset - 1;
    return Status(ErrorCode::expected_offset_mismatch,
                  "message " + std::to_string(message_indexes[i]) + ": expected last offset " +
                      describe(*message.expected_offset) + " in " + stream + "/" + std::to_string(partition) +
                      ", but it is " + describe(partition_last) + (i > 0 ? " before this batch" : "") + "; nothing was stored",
                  partition_last);
  }
  return Status::ok();
}

// The per-key conditional append (expected_key_offset), under the partition's append lock: the
// key's last offset is the newest earlier record of the batch with that key, else what the key
// index finds in the log (appended but unacknowledged messages included).
Status check_expected_key_offsets(std::span<const OutgoingMessage> messages, const std::vector<std::uint32_t>& message_indexes,
                                  Offset next_offset, const log::PartitionLog& log, index::PartitionIndex& partition_index,
                                  const std::string& stream, std::uint32_t partition) {
  for (std::size_t i = 0; i < message_indexes.size(); ++i) {
    const OutgoingMessage& message = messages[message_indexes[i]];
    if (!message.expected_key_offset) continue;
    std::optional<Offset> actual;
    for (std::size_t earlier = i; earlier-- > 0;) {
      if (messages[message_indexes[earlier]].key == message.key) {
        actual = next_offset + earlier;
        break;
      }
    }
    if (!actual) {
      auto found = index::last_offset_for_key(log, partition_index, *message.key);
      if (!found) return with_context(found.status(), "checking expected_key_offset");
      actual = *found;
    }
    const Offset actual_last = actual.value_or(expected_offset_empty);
    if (*message.expected_key_offset == actual_last) continue;
    auto describe = [](Offset offset) {
      return offset == expected_offset_empty ? std::string("none (no message has the key)") : std::to_string(offset);
    };
    return Status(ErrorCode::expected_offset_mismatch,
                  "message " + std::to_string(message_indexes[i]) + ": expected last offset " +
                      describe(*message.expected_key_offset) + " for its key in " + stream + "/" + std::to_string(partition) +
                      ", but it is " + describe(actual_last) + "; nothing was stored",
                  actual_last);
  }
  return Status::ok();
}

// One (message, capturing stream) pair of a publish, in message order.
struct Placement {
  enum class Dedup : std::uint8_t {
    none,                // no message id, or the stream's dedup window is 0
    claimed,             // this publish owns the id: it appends, then completes the claim
    completed,           // appended and recorded in the stream's dedup table
    duplicate,           // stored earlier: `original` says where; nothing is stored
    duplicate_in_batch,  // an earlier message of this batch has the id: see `first_placement`
  };
  const StreamState* stream = nullptr;
  std::uint32_t partition = 0;
  std::uint32_t message_index = 0;
  std::string_view message_id;  // empty unless the stream suppresses duplicates
  Dedup dedup = Dedup::none;
  store::DedupOriginal original;
  std::size_t first_placement = 0;
  bool appended = false;
  Offset offset = 0;
};

// Abandons the claims a publish still holds when it returns (an error before or during the
// appends), so publishers waiting for those ids go on and store their own copy.
class OpenClaims {
 public:
  explicit OpenClaims(std::vector<Placement>& placements) : placements_(placements) {}
  ~OpenClaims() {
    for (Placement& placement : placements_) {
      if (placement.dedup == Placement::Dedup::claimed) placement.stream->dedup->abandon(placement.message_id);
    }
  }
  OpenClaims(const OpenClaims&) = delete;
  OpenClaims& operator=(const OpenClaims&) = delete;

 private:
  std::vector<Placement>& placements_;
};

// One destination partition's share of a publish.
struct Destination {
  const StreamState* stream = nullptr;
  std::uint32_t partition = 0;
  std::vector<std::uint32_t> message_indexes;    // per record of the builder
  std::vector<std::size_t> placement_indexes;    // per record of the builder
  log::BatchBuilder builder;
};

}  // namespace

Result<std::vector<Position>> StoreImpl::publish(std::span<const OutgoingMessage> original_messages, std::string_view only_stream,
                                                 std::vector<DurabilityTicket>* deferred) {
  if (closed_) return Status(ErrorCode::closed, "store is closed");
  if (original_messages.empty()) return std::vector<Position>{};
  if (original_messages.size() > limits::messages_per_publish_max) {
    return Status(ErrorCode::limit_exceeded, "a publish may carry at most " + std::to_string(limits::messages_per_publish_max) + " messages");
  }
  auto table = streams();
  const TimestampMs now = log::system_clock_ms();

  // 1. Validate and route everything before writing anything.
  thread_local std::vector<Placement> placements;  // reused: no allocation per publish
  if (placements.capacity() > 65536) placements = std::vector<Placement>();  // after a huge publish
  placements.clear();
  std::string_view previous_subject;
  std::vector<const StreamState*> routes;
  bool conditional = false;  // some message carries an expected_offset
  bool any_message_id = false;
  for (std::uint32_t index = 0; index < original_messages.size(); ++index) {
    const OutgoingMessage& message = original_messages[index];
    if (index == 0 || message.subject != previous_subject) {
      Status shape = validate_message_shape(message);
      if (!shape.is_ok()) return with_context(shape, "message " + std::to_string(index));
      routes.clear();
      if (!only_stream.empty()) {
        // A direct append: the named stream only, whatever its subject patterns say.
        auto found = table->find(only_stream);
        if (found == table->end()) return Status(ErrorCode::stream_not_found, "no stream '" + std::string(only_stream) + "'");
        routes.push_back(found->second.get());
      } else {
        for (const auto& [name, stream] : *table) {
          for (const std::string& pattern : stream->config.subjects) {
            if (base::subject_matches(pattern, message.subject)) {
              routes.push_back(stream.get());
              break;
            }
          }
        }
      }
      if (routes.empty()) {
        return Status(ErrorCode::no_matching_stream, "no stream captures subject '" + std::string(message.subject) + "'");
      }
      previous_subject = message.subject;
    } else if (needs_header_checks(message)) {
      Status shape = validate_key_and_headers(message);
      if (!shape.is_ok()) return with_context(shape, "message " + std::to_string(index));
    }
    std::optional<std::string_view> message_id = message.message_id;
    if (!message_id && !message.headers.empty()) message_id = log::find_header(message.headers, message_id_header);
    for (const StreamState* stream : routes) {
      // The payload alone decides most oversize messages before anything is copied.
      if (message.payload.size() > stream->config.max_message_bytes) {
        return Status(ErrorCode::message_too_large, "message " + std::to_string(index) + " is " +
                                                        std::to_string(message.payload.size()) + " bytes; stream '" +
                                                        stream->config.name + "' accepts at most " +
                                                        std::to_string(stream->config.max_message_bytes));
      }
      const std::uint32_t partitions = stream->config.partitions;
      if (message.expected_key_offset) {
        if (!message.key) {
          return Status(ErrorCode::invalid_argument, "message " + std::to_string(index) + ": an expected_key_offset needs a key");
        }
        if (!stream->config.indexes_enabled) {
          return Status(ErrorCode::invalid_argument, "message " + std::to_string(index) + ": an expected_key_offset needs the key "
                                                         "index, and stream '" + stream->config.name + "' has indexes disabled");
        }
        conditional = true;
      }
      if (message.expected_offset) {
        if (partitions > 1 && !message.key) {
          return Status(ErrorCode::invalid_argument, "message " + std::to_string(index) +
                                                         ": an expected_offset needs a known partition: give a key, or "
                                                         "publish to a stream with one partition (stream '" +
                                                         stream->config.name + "' has " + std::to_string(partitions) + ")");
        }
        conditional = true;
      }
      std::uint32_t partition = 0;
      if (partitions > 1) {
        partition = message.key ? base::partition_for_key(*message.key, partitions)
                                : stream->round_robin->fetch_add(1, std::memory_order_relaxed) % partitions;
      }
      Placement& placement = placements.emplace_back();
      placement.stream = stream;
      placement.partition = partition;
      placement.message_index = index;
      if (message_id && stream->config.dedup_window_ms > 0) {
        placement.message_id = *message_id;
        any_message_id = true;
      }
    }
  }

  // 2. Duplicate suppression: claim every id in one global order (stream, id), so concurrent
  // publishers never wait for each other in a cycle (store/dedup_table.h).
  OpenClaims open_claims(placements);
  if (any_message_id) {
    std::vector<std::size_t> order;
    for (std::size_t i = 0; i < placements.size(); ++i) {
      if (!placements[i].message_id.empty()) order.push_back(i);
    }
    std::stable_sort(order.begin(), order.end(), [&](std::size_t left, std::size_t right) {
      const Placement& a = placements[left];
      const Placement& b = placements[right];
      if (a.stream->config.name != b.stream->config.name) return a.stream->config.name < b.stream->config.name;
      return a.message_id < b.message_id;
    });
    for (std::size_t n = 0; n < order.size(); ++n) {
      Placement& placement = placements[order[n]];
      if (n > 0) {
        const Placement& previous = placements[order[n - 1]];
        if (previous.stream == placement.stream && previous.message_id == placement.message_id) {
          placement.dedup = Placement::Dedup::duplicate_in_batch;
          placement.first_placement =
              previous.dedup == Placement::Dedup::duplicate_in_batch ? previous.first_placement : order[n - 1];
          continue;
        }
      }
      const auto claim = placement.stream->dedup->claim(placement.message_id, now, placement.stream->config.dedup_window_ms);
      switch (claim.outcome) {
        case store::DedupTable::Outcome::claimed: placement.dedup = Placement::Dedup::claimed; break;
        case store::DedupTable::Outcome::duplicate:
          placement.dedup = Placement::Dedup::duplicate;
          placement.original = claim.original;
          break;
        case store::DedupTable::Outcome::table_full:
          return Status(ErrorCode::limit_exceeded, "stream '" + placement.stream->config.name + "' holds " +
                                                       std::to_string(limits::dedup_entries_max) +
                                                       " message ids inside its dedup window; retry later or shorten dedup_window_ms");
      }
    }
  }

  // 3. Encode each destination partition's share (duplicates are left out).
  PreparedMessages prepared;
  const std::span<const OutgoingMessage> messages = prepared.prepare(original_messages);
  thread_local std::vector<Destination> destinations;
  std::size_t destination_count = 0;
  auto destination_for = [&](const StreamState* stream, std::uint32_t partition) -> Destination& {
    for (std::size_t i = 0; i < destination_count; ++i) {
      if (destinations[i].stream == stream && destinations[i].partition == partition) return destinations[i];
    }
    if (destinations.size() <= destination_count) destinations.emplace_back();
    Destination& created = destinations[destination_count++];
    created.stream = stream;
    created.partition = partition;
    created.message_indexes.clear();
    created.placement_indexes.clear();
    created.builder.reset();
    return created;
  };
  for (std::size_t p = 0; p < placements.size(); ++p) {
    const Placement& placement = placements[p];
    if (placement.dedup == Placement::Dedup::duplicate || placement.dedup == Placement::Dedup::duplicate_in_batch) continue;
    const OutgoingMessage& message = messages[placement.message_index];
    Destination& destination = destination_for(placement.stream, placement.partition);
    destination.message_indexes.push_back(placement.message_index);
    destination.placement_indexes.push_back(p);
    // add() measures the record as it encodes it; an oversize one fails the whole publish
    // before anything is written (the thread-local builder is reset by the next publish).
    const std::size_t record_bytes =
        destination.builder.add(message, message.timestamp_ms == timestamp_now ? now : message.timestamp_ms);
    if (record_bytes > placement.stream->config.max_message_bytes) {
      return Status(ErrorCode::message_too_large, "message " + std::to_string(placement.message_index) + " is " +
                                                      std::to_string(record_bytes) + " bytes; stream '" +
                                                      placement.stream->config.name + "' accepts at most " +
                                                      std::to_string(placement.stream->config.max_message_bytes));
    }
  }

  // A conditional batch is all or nothing, so it must be one append: one partition of one
  // stream, within one on-disk batch.
  if (conditional && destination_count > 1) {
    return Status(ErrorCode::invalid_argument, "a publish with an expected_offset must land in a single partition of a "
                                               "single stream (this one reaches " + std::to_string(destination_count) +
                                               " partitions); publish the messages separately");
  }
  if (conditional && destination_count == 1 && destinations[0].builder.bytes() > limits::batch_bytes_max) {
    return Status(ErrorCode::limit_exceeded, "a publish with an expected_offset must fit in one batch of " +
                                                 std::to_string(limits::batch_bytes_max) + " bytes");
  }

  // 4. Append.
  std::vector<Position> positions;
  positions.reserve(placements.size());
  for (std::size_t d = 0; d < destination_count; ++d) {
    Destination& destination = destinations[d];
    const auto& log = destination.stream->partitions[destination.partition];
    log::AppendPrecondition precondition;
    if (conditional) {
      precondition = [&destination, &log, messages](Offset next_offset) {
        MSGSTORE_RETURN_IF_ERROR(check_expected_offsets(messages, destination.message_indexes, next_offset,
                                                        destination.stream->config.name, destination.partition));
        return check_expected_key_offsets(messages, destination.message_indexes, next_offset, *log,
                                          *destination.stream->indexes[destination.partition], destination.stream->config.name,
                                          destination.partition);
      };
    }
    auto append_one = [&](log::BatchBuilder& builder, std::size_t first_index) -> Status {
      Offset durable_end = 0;
      auto base = log->append(builder, precondition, deferred != nullptr ? &durable_end : nullptr);
      if (!base) return base.status();
      if (durable_end > 0) deferred->push_back({log, durable_end});
      for (std::uint32_t i = 0; i < builder.record_count(); ++i) {
        Placement& placement = placements[destination.placement_indexes[first_index + i]];
        placement.appended = true;
        placement.offset = *base + i;
        positions.push_back({destination.stream->config.name, destination.partition, placement.offset, placement.message_index});
        if (placement.dedup == Placement::Dedup::claimed) {
          placement.stream->dedup->complete(placement.message_id, {placement.partition, placement.offset}, now);
          placement.dedup = Placement::Dedup::completed;
        }
      }
      return Status::ok();
    };
    if (destination.builder.bytes() <= limits::batch_bytes_max) {
      MSGSTORE_RETURN_IF_ERROR(append_one(destination.builder, 0));
      continue;
    }
    // Larger than one on-disk batch: split (each piece is atomic on its own).
    log::BatchBuilder piece;
    std::size_t first = 0;
    for (std::size_t i = 0; i < destination.message_indexes.size(); ++i) {
      const OutgoingMessage& message = messages[destination.message_indexes[i]];
      if (piece.record_count() > 0 && piece.bytes() + log::encoded_record_bytes(message) > limits::batch_bytes_max) {
        MSGSTORE_RETURN_IF_ERROR(append_one(piece, first));
        piece.reset();
        first = i;
      }
      piece.add(message, message.timestamp_ms == timestamp_now ? now : message.timestamp_ms);
    }
    MSGSTORE_RETURN_IF_ERROR(append_one(piece, first));
  }
  // Keep thread-local buffers from growing without bound after a huge publish.
  for (std::size_t d = 0; d < destination_count; ++d) {
    if (destinations[d].builder.bytes() > 8 * 1024 * 1024) destinations[d].builder = log::BatchBuilder();
  }

  // 5. Duplicates answer with where the original landed (once it is durable: its publisher
  // may still be waiting for the fdatasync).
  for (const Placement& placement : placements) {
    if (deferred != nullptr && placement.dedup == Placement::Dedup::duplicate &&
        placement.stream->config.fsync == FsyncPolicy::always) {
      deferred->push_back({placement.stream->partitions[placement.original.partition], placement.original.offset + 1});
    }
    if (placement.dedup == Placement::Dedup::duplicate) {
      positions.push_back({placement.stream->config.name, placement.original.partition, placement.original.offset,
                           placement.message_index, true});
    } else if (placement.dedup == Placement::Dedup::duplicate_in_batch) {
      const Placement& first = placements[placement.first_placement];
      MS_ASSERT(first.appended || first.dedup == Placement::Dedup::duplicate);
      const std::uint32_t partition = first.appended ? first.partition : first.original.partition;
      const Offset offset = first.appended ? first.offset : first.original.offset;
      positions.push_back({placement.stream->config.name, partition, offset, placement.message_index, true});
    }
  }
  return positions;
}

void StoreImpl::publish_async(std::span<const OutgoingMessage> messages, std::string_view only_stream,
                              Store::PublishCallback done) {
  thread_local std::vector<DurabilityTicket> tickets;  // reused: no allocation per publish
  tickets.clear();
  auto positions = publish(messages, only_stream, &tickets);
  if (!positions || tickets.empty()) {
    done(std::move(positions));
    return;
  }
  // One wait per partition, for the furthest end published there.
  std::sort(tickets.begin(), tickets.end(), [](const DurabilityTicket& left, const DurabilityTicket& right) {
    return left.log != right.log ? left.log < right.log : left.end > right.end;
  });
  tickets.erase(std::unique(tickets.begin(), tickets.end(),
                            [](const DurabilityTicket& left, const DurabilityTicket& right) { return left.log == right.log; }),
                tickets.end());
  // The last completion (on whichever sync thread) answers; the first failure wins.
  struct Pending {
    std::atomic<std::size_t> remaining{0};
    std::mutex mutex;
    Status failure;  // guarded by mutex
    std::optional<Result<std::vector<Position>>> positions;
    Store::PublishCallback done;
  };
  auto pending = std::make_shared<Pending>();
  pending->remaining = tickets.size();
  pending->positions.emplace(std::move(positions));
  pending->done = std::move(done);
  const std::vector<DurabilityTicket> waits = std::move(tickets);
  tickets.clear();
  for (const DurabilityTicket& ticket : waits) {
    ticket.log->when_durable(ticket.end, [pending](Status status) {
      if (!status.is_ok()) {
        std::lock_guard lock(pending->mutex);
        if (pending->failure.is_ok()) pending->failure = std::move(status);
      }
      if (pending->remaining.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
      Status failure;
      {
        std::lock_guard lock(pending->mutex);
        failure = pending->failure;
      }
      if (failure.is_ok()) {
        pending->done(std::move(*pending->positions));
      } else {
        pending->done(std::move(failure));
      }
    });
  }
}

// ---- Reading ----------------------------------------------------------------------------------
Result<std::shared_ptr<log::PartitionLog>> StoreImpl::partition(std::string_view stream, std::uint32_t partition) const {
  if (closed_) return Status(ErrorCode::closed, "store is closed");
  auto table = streams();
  auto found = table->find(stream);
  if (found == table->end()) return Status(ErrorCode::stream_not_found, "stream '" + std::string(stream) + "' does not exist");
  if (partition >= found->second->partitions.size()) {
    return Status(ErrorCode::partition_not_found, "stream '" + std::string(stream) + "' has no partition " +
                                                      std::to_string(partition) + " (it has " +
                                                      std::to_string(found->second->partitions.size()) + ")");
  }
  return found->second->partitions[partition];
}

Result<ReadResult> StoreImpl::read(std::string_view stream, std::uint32_t partition_number, Offset from,
                                   ReadOptions options) const {
  auto log = partition(stream, partition_number);
  if (!log) return log.status();
  ReadResult result;
  result.log_start_offset = (*log)->log_start_offset();
  const std::size_t max_messages = std::clamp<std::size_t>(options.max_messages, 1, limits::read_messages_max);
  const std::size_t max_bytes = std::clamp<std::size_t>(options.max_bytes, 1, limits::read_bytes_max);
  auto next = (*log)->scan(from, max_messages, max_bytes, [&](const MessageView& message) {
    result.messages.push_back(message.to_message());
    return true;
  });
  if (!next) return next.status();
  result.next_offset = *next;
  // Loaded after the scan: appends during it must not leave next_offset past the watermark.
  result.high_watermark = (*log)->high_watermark();
  return result;
}

Result<Offset> StoreImpl::scan(std::string_view stream, std::uint32_t partition_number, Offset from, std::size_t max_messages,
                               const std::function<ScanControl(const MessageView&)>& callback) const {
  auto log = partition(stream, partition_number);
  if (!log) return log.status();
  return (*log)->scan(from, max_messages, SIZE_MAX,
                      [&](const MessageView& message) { return callback(message) == ScanControl::proceed; });
}

Result<Offset> StoreImpl::resolve_start(std::string_view stream, std::uint32_t partition_number,
                                        const StartPosition& start) const {
  auto log = partition(stream, partition_number);
  if (!log) return log.status();
  switch (start.kind) {
    case StartPosition::Kind::beginning: return (*log)->log_start_offset();
    case StartPosition::Kind::end: return (*log)->high_watermark();
    case StartPosition::Kind::offset:
      if (start.offset < (*log)->log_start_offset() || start.offset > (*log)->high_watermark()) {
        return Status(ErrorCode::offset_out_of_range, std::string(stream) + "/" + std::to_string(partition_number) +
                                                          ": offset " + std::to_string(start.offset) + " is outside the log (" +
                                                          std::to_string((*log)->log_start_offset()) + " to " +
                                                          std::to_string((*log)->high_watermark()) + ")");
      }
      return start.offset;
    case StartPosition::Kind::time: return (*log)->offset_for_time(start.time_ms);
  }
  return Status(ErrorCode::invalid_argument, "unknown start position");
}

Result<QueryResult> StoreImpl::query(const Query& query, const QueryCallback& callback) const {
  if (closed_) return Status(ErrorCode::closed, "store is closed");
  if (!query.stream.empty()) MSGSTORE_RETURN_IF_ERROR(validate_stream_name(query.stream));
  MSGSTORE_RETURN_IF_ERROR(index::validate_query(query));
  const auto table = streams();  // held: the query reads this snapshot of the streams
  std::vector<index::QueryStream> scope;
  for (const auto& [name, state] : *table) {
    if (!query.stream.empty() && name != query.stream) continue;
    if (!query.stream.empty() && query.partition && *query.partition >= state->partitions.size()) {
      return Status(ErrorCode::partition_not_found, "stream '" + name + "' has no partition " + std::to_string(*query.partition));
    }
    scope.push_back({name, index_configuration_for(state->config), state->partitions, state->indexes});
  }
  if (!query.stream.empty() && scope.empty()) {
    return Status(ErrorCode::stream_not_found, "stream '" + query.stream + "' does not exist");
  }
  return index::run_query(query, scope, callback);
}

Result<VerifyReport> StoreImpl::verify(std::string_view stream) const {
  if (closed_) return Status(ErrorCode::closed, "store is closed");
  VerifyReport report;
  auto table = streams();
  if (!stream.empty() && !table->count(stream)) {
    return Status(ErrorCode::stream_not_found, "stream '" + std::string(stream) + "' does not exist");
  }
  if (stream.empty()) report.problems = open_problems_;
  for (const auto& [name, state] : *table) {
    if (!stream.empty() && name != stream) continue;
    for (const auto& partition : state->partitions) partition->verify(report);
  }
  return report;
}

// ---- Store (the public face) ------------------------------------------------------------------
Store::Store(std::shared_ptr<StoreImpl> impl) : impl_(std::move(impl)) {}
Store::~Store() { (void)impl_->close(); }

Result<std::unique_ptr<Store>> Store::open(const std::filesystem::path& directory, StoreOptions options) {
  auto impl = std::make_shared<StoreImpl>(directory, std::move(options));
  Status opened = impl->open();
  if (!opened.is_ok()) {
    (void)impl->close();
    return opened;
  }
  return std::unique_ptr<Store>(new Store(std::move(impl)));
}

Status Store::create_stream(const StreamConfig& config) { return impl_->create_stream(config); }
Status Store::update_stream(const StreamConfig& config) { return impl_->update_stream(config); }
std::vector<StreamConfig> Store::list_streams() const { return impl_->list_streams(); }
Result<StreamInfo> Store::describe_stream(std::string_view name) const { return impl_->describe_stream(name); }
Status Store::delete_stream(std::string_view name) { return impl_->delete_stream(name); }
Result<std::vector<Position>> Store::publish(const OutgoingMessage& message) {
  return impl_->publish(std::span<const OutgoingMessage>(&message, 1));
}
Result<std::vector<Position>> Store::publish_batch(std::span<const OutgoingMessage> messages) {
  return impl_->publish(messages);
}
Result<ReadResult> Store::read(std::string_view stream, std::uint32_t partition, Offset from, ReadOptions options) const {
  return impl_->read(stream, partition, from, options);
}
Result<Offset> Store::scan(std::string_view stream, std::uint32_t partition, Offset from, std::size_t max_messages,
                           const std::function<ScanControl(const MessageView&)>& callback) const {
  return impl_->scan(stream, partition, from, max_messages, callback);
}
Result<Offset> Store::resolve_start(std::string_view stream, std::uint32_t partition, const StartPosition& start) const {
  return impl_->resolve_start(stream, partition, start);
}
Result<std::unique_ptr<Subscription>> Store::subscribe(SubscribeOptions options, SubscriptionHandler handler) {
  return impl_->subscribe(std::move(options), std::move(handler));
}
Result<VerifyReport> Store::verify(std::string_view stream) const { return impl_->verify(stream); }
Result<std::vector<Position>> Store::publish_to(std::string_view stream, std::span<const OutgoingMessage> messages) {
  if (stream.empty()) return Status(ErrorCode::invalid_argument, "publish_to needs a stream name");
  return impl_->publish(messages, stream);
}
void Store::publish_async(std::span<const OutgoingMessage> messages, std::string_view stream, PublishCallback done) {
  impl_->publish_async(messages, stream, std::move(done));
}
Result<QueryResult> Store::query(const Query& query, const QueryCallback& callback) const {
  return impl_->query(query, callback);
}
Status Store::run_maintenance() { return impl_->run_maintenance(); }
std::unique_ptr<DataListenerHandle> Store::add_data_listener(std::function<void()> listener) {
  return impl_->add_data_listener(std::move(listener));
}
std::uint64_t Store::data_generation() const { return impl_->data_generation(); }
void Store::wait_for_data(std::uint64_t seen_generation, std::chrono::milliseconds timeout) const {
  impl_->wait_for_data(seen_generation, timeout);
}
Status Store::close() { return impl_->close(); }
const std::filesystem::path& Store::directory() const { return impl_->directory(); }

}  // namespace msgstore
