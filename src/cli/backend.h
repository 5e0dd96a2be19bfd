// What the data commands (stream, publish, read, tail, query) do, whoever does it: the
// embedded store in a data directory (local_backend.cc) or a `msgstore serve` reached over
// HTTP (remote_backend.cc, `--server URL`). The commands parse flags, call a Backend and print
// its results with the encoders in output.h, so both modes print the same lines and report
// errors from the same catalogue (include/msgstore/status.h) with the same exit statuses.
//
// Thread safety: one Backend per command invocation, used from one thread (a local follow
// calls its callback on the subscription's delivery thread; see follow()).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "cli/output.h"
#include "msgstore/query.h"
#include "msgstore/status.h"
#include "msgstore/store.h"
#include "msgstore/stream.h"

namespace msgstore::cli {

// A message and where it lives, valid only during the callback that receives it.
using DeliveryCallback = std::function<ScanControl(std::string_view stream, std::uint32_t partition, const MessageView& message)>;
using MessageCallback = std::function<ScanControl(const MessageView& message)>;
// Waits up to `timeout` for a request to stop (SIGINT/SIGTERM); true if one came.
using StopWait = std::function<bool(std::chrono::milliseconds timeout)>;

struct FollowRequest {
  std::string stream;
  std::uint32_t partition_count = 1;         // from describe_stream
  std::optional<std::uint32_t> partition;    // only this one
  StartPosition start;
};

class Backend {
 public:
  virtual ~Backend() = default;

  // `fields`: the configuration fields the user gave (stream_config_field_names()); a server
  // is sent only those, so its own defaults apply to the rest exactly as the store's do.
  virtual Status create_stream(const StreamConfig& config, const std::vector<std::string>& fields) = 0;
  virtual Status update_stream(const StreamConfig& config, const std::vector<std::string>& fields) = 0;
  // `fields`, when not null, receives the configuration fields the answer really carries
  // (nullopt: all of them).
  virtual Result<std::vector<StreamConfig>> list_streams(StreamConfigFields* fields) = 0;
  virtual Result<StreamInfo> describe_stream(std::string_view name, StreamConfigFields* fields) = 0;
  virtual Status delete_stream(std::string_view name) = 0;

  // Store::publish_batch: routed by subject to every capturing stream; positions carry the
  // message's index in `messages`.
  virtual Result<std::vector<Position>> publish_batch(std::span<const OutgoingMessage> messages) = 0;

  // Everything readable in one partition from `start`, in offset order, until the callback
  // says stop or the end of what is stored now.
  virtual Status read_partition(std::string_view stream, std::uint32_t partition, const StartPosition& start,
                                const MessageCallback& callback) = 0;

  // Replay from request.start, then live, until `deliver` says stop, `stop_wait` reports a
  // stop request (it is called at least every 50 ms) or an error. Returns ok when stopped.
  virtual Status follow(const FollowRequest& request, const DeliveryCallback& deliver, const StopWait& stop_wait) = 0;

  virtual Result<QueryResult> query(const Query& query, const QueryCallback& callback) = 0;

  // Releases the data directory or the connection; reports a failed final sync.
  virtual Status close() = 0;
};

// The embedded store behind the Backend interface (local_backend.cc).
std::unique_ptr<Backend> make_local_backend(std::unique_ptr<Store> store);

}  // namespace msgstore::cli
