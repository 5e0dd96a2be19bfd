// StoreImpl's compaction and erase (docs/ARCHITECTURE.md, "Compaction and erase"), on top of
// store/compaction.h and the log's segment rewrite.
#include <algorithm>
#include <cstdio>

#include "log/record_batch.h"
#include "store/compaction.h"
#include "store/store_impl.h"

namespace msgstore {
namespace {

constexpr const char* audit_subject = "_audit.erase";

// A JSON string literal (the audit payload is one JSON object).
std::string json_quoted(std::string_view text) {
  std::string out = "\"";
  for (char character : text) {
    const auto byte = static_cast<unsigned char>(character);
    if (character == '"' || character == '\\') {
      out += '\\';
      out += character;
    } else if (byte < 0x20) {
      char escaped[8];
      std::snprintf(escaped, sizeof escaped, "\\u%04x", byte);
      out += escaped;
    } else {
      out += character;
    }
  }
  return out + "\"";
}

}  // namespace

Result<std::shared_ptr<const StreamState>> StoreImpl::find_stream(std::string_view name) const {
  if (closed_) return Status(ErrorCode::closed, "store is closed");
  auto table = streams();
  auto found = table->find(name);
  if (found == table->end()) return Status(ErrorCode::stream_not_found, "stream '" + std::string(name) + "' does not exist");
  return found->second;
}

Status StoreImpl::maintain_rewrites(const StreamState& stream) {
  Status first_error;
  auto keep_first = [&first_error](const Status& status) {
    if (!status.is_ok() && first_error.is_ok()) first_error = status;
  };
  for (const auto& partition : stream.partitions) {
    EraseProgress progress;
    keep_first(store::remove_erased(*partition, limits::rewrite_segments_per_pass_max, progress));
  }
  if (stream.config.cleanup != CleanupPolicy::compact) return first_error;
  std::lock_guard lock(compaction_mutex_);
  const TimestampMs now = log::system_clock_ms();
  for (const auto& partition : stream.partitions) {
    CompactionReport report;
    store::CompactionState& state = compaction_states_[partition->directory().string()];
    keep_first(store::compact_partition(*partition, stream.config, now, limits::rewrite_segments_per_pass_max,
                                        /*force=*/false, state, report));
  }
  return first_error;
}

Result<CompactionReport> StoreImpl::compact(std::string_view name) {
  auto stream = find_stream(name);
  if (!stream) return stream.status();
  if ((*stream)->config.cleanup != CleanupPolicy::compact) {
    return Status(ErrorCode::invalid_argument, "stream '" + std::string(name) + "' has cleanup=delete; set cleanup=compact first");
  }
  std::lock_guard lock(compaction_mutex_);
  CompactionReport report;
  const TimestampMs now = log::system_clock_ms();
  for (const auto& partition : (*stream)->partitions) {
    ++report.partitions;
    // On demand the active segment is compacted too: roll it first.
    MSGSTORE_RETURN_IF_ERROR(partition->seal_through(partition->high_watermark()));
    store::CompactionState& state = compaction_states_[partition->directory().string()];
    MSGSTORE_RETURN_IF_ERROR(store::compact_partition(*partition, (*stream)->config, now, SIZE_MAX, /*force=*/true, state, report));
  }
  return report;
}

Result<Offset> StoreImpl::append_erase_audit(const EraseRequest& request, std::uint64_t matched, TimestampMs now) {
  if (!streams()->count(audit_stream_name)) {
    StreamConfig audit;
    audit.name = std::string(audit_stream_name);
    audit.subjects = {std::string(audit_stream_name) + ".>"};
    Status created = create_stream(audit);
    if (!created.is_ok() && created.code() != ErrorCode::stream_exists) return created;
  }
  const std::string criteria = store::describe_erase_criteria(request.criteria);
  const std::string payload = "{\"action\":\"erase\",\"actor\":" + json_quoted(request.actor) + ",\"stream\":" + json_quoted(request.stream) +
                              ",\"criteria\":" + json_quoted(criteria) + ",\"time_ms\":" + std::to_string(now) +
                              ",\"matched_messages\":" + std::to_string(matched) + "}";
  const std::string matched_text = std::to_string(matched);
  const HeaderView headers[] = {{"actor", request.actor}, {"stream", request.stream}, {"matched_messages", matched_text}};
  OutgoingMessage message;
  message.subject = audit_subject;
  message.headers = headers;
  message.payload = payload;
  message.timestamp_ms = now;
  auto positions = publish(std::span<const OutgoingMessage>(&message, 1), audit_stream_name);
  if (!positions) return positions.status();
  return positions->front().offset;
}

Result<EraseReport> StoreImpl::erase(const EraseRequest& request) {
  MSGSTORE_RETURN_IF_ERROR(store::validate_erase_criteria(request.criteria));
  if (request.actor.empty() || request.actor.size() > limits::erase_actor_bytes_max) {
    return Status(ErrorCode::invalid_argument, "an erase needs an actor of 1 to " + std::to_string(limits::erase_actor_bytes_max) +
                                                   " bytes (who asked for it, for the audit stream)");
  }
  auto stream = find_stream(request.stream);
  if (!stream) return stream.status();
  std::lock_guard lock(erase_mutex_);
  const TimestampMs now = log::system_clock_ms();
  // Find everything first (nothing is erased if a partition cannot be read or the erase is too big).
  std::vector<std::vector<Offset>> matches;
  EraseReport report;
  for (const auto& partition : (*stream)->partitions) {
    auto found = store::find_erase_matches(*partition, request.criteria);
    if (!found) return found.status();
    report.matched_messages += found->size();
    if (report.matched_messages > limits::erase_matches_max) {
      return Status(ErrorCode::limit_exceeded, "an erase may match at most " + std::to_string(limits::erase_matches_max) + " messages");
    }
    matches.push_back(std::move(*found));
  }
  // In force: each partition's list is durable before it applies to reads. A failure part way
  // leaves the earlier partitions erased; erase is idempotent, so the caller repeats it.
  for (std::size_t index = 0; index < matches.size(); ++index) {
    MSGSTORE_RETURN_IF_ERROR((*stream)->partitions[index]->add_erased_offsets(matches[index]));
  }
  for (const auto& partition : (*stream)->partitions) store::count_pending_erasures(*partition, report.progress);
  report.segments_to_rewrite = report.progress.segments_pending;
  auto audit = append_erase_audit(request, report.matched_messages, now);
  if (!audit) {
    return Status(audit.status().code(), "the erase is in force but its audit record failed (repeat the erase to record it): " +
                                             audit.status().message());
  }
  report.audit_offset = *audit;
  if (request.remove_now) {
    auto progress = finish_erasures(request.stream, {});
    if (!progress) return progress.status();
    report.progress = *progress;
  }
  return report;
}

Result<EraseProgress> StoreImpl::finish_erasures(std::string_view name, const std::function<void(const EraseProgress&)>& on_progress) {
  auto stream = find_stream(name);
  if (!stream) return stream.status();
  EraseProgress done;
  auto report = [&] {
    if (!on_progress) return;
    EraseProgress now = done;
    now.offsets_pending = 0;
    now.segments_pending = 0;
    for (const auto& partition : (*stream)->partitions) store::count_pending_erasures(*partition, now);
    on_progress(now);
  };
  for (const auto& partition : (*stream)->partitions) {
    MSGSTORE_RETURN_IF_ERROR(store::remove_erased(*partition, SIZE_MAX, done, report));
  }
  for (const auto& partition : (*stream)->partitions) store::count_pending_erasures(*partition, done);
  return done;
}

Result<EraseProgress> StoreImpl::erase_progress(std::string_view name) const {
  auto stream = find_stream(name);
  if (!stream) return stream.status();
  EraseProgress progress;
  for (const auto& partition : (*stream)->partitions) store::count_pending_erasures(*partition, progress);
  return progress;
}

// ---- Store (the public face) ----
Result<CompactionReport> Store::compact(std::string_view stream) { return impl_->compact(stream); }
Result<EraseReport> Store::erase(const EraseRequest& request) { return impl_->erase(request); }
Result<EraseProgress> Store::finish_erasures(std::string_view stream, const std::function<void(const EraseProgress&)>& on_progress) {
  return impl_->finish_erasures(stream, on_progress);
}
Result<EraseProgress> Store::erase_progress(std::string_view stream) const { return impl_->erase_progress(stream); }

}  // namespace msgstore
