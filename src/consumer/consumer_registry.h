// The consumer registry: every durable consumer of one store, owned by the store (StoreImpl
// holds it as a StoreComponent) and reached through Store::consumers().
//
// Layout: a consumer lives in its stream's directory, so deleting the stream deletes it:
//   streams/<stream>/consumers/<name>/consumer.meta      configuration (metadata file; the commit point)
//   streams/<stream>/consumers/<name>/state.meta         snapshot: generation, per-partition cursors
//   streams/<stream>/consumers/<name>/state-<generation>.log   the state log after that snapshot
// (docs/formats/consumer-state.md).
//
// Concurrency: `mutex_` guards the table of loaded consumers (loading, create, remove); each
// Consumer has its own mutex for its cursors and is never locked while `mutex_` is wanted. File
// syncs for acks run outside both (group commit in StateLog). One timer thread per registry
// expires ack waits, dead-letters, compacts state logs and runs interval syncs. Fetchers block on
// a wake generation moved by the store's data signal, which the registry also raises (naks,
// removals, timer expiries) so that the server's long polls, which wait on store data, wake too.
#pragma once

#include <atomic>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "msgstore/consumer.h"
#include "store/store_impl.h"

namespace msgstore::consumer {

class Consumer;
struct DeadLetterJob;

class ConsumerRegistry final : public Consumers, public StoreComponent {
 public:
  explicit ConsumerRegistry(StoreImpl& store);
  ~ConsumerRegistry() override;
  ConsumerRegistry(const ConsumerRegistry&) = delete;
  ConsumerRegistry& operator=(const ConsumerRegistry&) = delete;

  // Starts the timer thread and listens for new data (not when the store is already closed).
  void start();

  Status create(std::string_view stream, const ConsumerConfig& config) override;
  Result<ConsumerInfo> describe(std::string_view stream, std::string_view name) override;
  Result<std::vector<ConsumerInfo>> list(std::string_view stream) override;
  Status remove(std::string_view stream, std::string_view name) override;
  Result<std::vector<ConsumedMessage>> fetch(std::string_view stream, std::string_view name,
                                             const FetchOptions& options) override;
  Result<std::vector<Status>> settle(std::string_view stream, std::string_view name, AckKind kind,
                                     std::span<const std::string> tokens,
                                     std::optional<std::chrono::milliseconds> delay) override;

  // StoreComponent: stops the timer, wakes fetchers (they return `closed`), syncs every state log.
  void close() override;

 private:
  struct LoadedStream {
    std::weak_ptr<log::PartitionLog> identity;  // partition 0 of the stream these were loaded for
    std::map<std::string, std::shared_ptr<Consumer>, std::less<>> consumers;
    std::map<std::string, Status, std::less<>> broken;  // consumers whose files could not be read
  };
  struct Found {
    std::shared_ptr<Consumer> consumer;
    std::shared_ptr<const StreamState> stream;
  };

  Result<Found> find(std::string_view stream, std::string_view name);
  Status ensure_loaded_locked(const StreamState& stream);  // requires mutex_
  Result<std::shared_ptr<Consumer>> load_consumer(const StreamState& stream, const std::filesystem::path& directory);
  Status compact_locked(Consumer& consumer);  // requires consumer.mutex
  Status make_durable(Consumer& consumer, const StreamState& stream, std::uint64_t end);
  // Appends the message to the dead-letter stream (or drops it) and marks it done.
  Status run_dead_letter(const std::shared_ptr<Consumer>& consumer, const DeadLetterJob& job);
  ConsumerInfo describe_locked(Consumer& consumer, const StreamState& stream);  // requires consumer.mutex
  std::vector<std::shared_ptr<Consumer>> loaded_consumers();

  void timer_loop();
  void poke_timer();
  void wake_fetchers();  // the registry's own blocking fetchers
  void announce();       // every waiter on store data, the registry's fetchers included

  StoreImpl& store_;
  FileSystem& file_system_;

  std::mutex mutex_;
  std::map<std::string, LoadedStream, std::less<>> streams_;  // guarded by mutex_

  std::atomic<bool> closing_{false};

  std::mutex wake_mutex_;
  std::condition_variable wake_;
  std::atomic<std::uint64_t> wake_generation_{0};

  std::mutex timer_mutex_;
  std::condition_variable timer_wake_;
  bool timer_poked_ = false;  // guarded by timer_mutex_
  std::thread timer_thread_;
  std::unique_ptr<DataListenerHandle> data_listener_;
};

}  // namespace msgstore::consumer
