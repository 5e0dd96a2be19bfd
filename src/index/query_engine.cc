#include "index/query_engine.h"

#include <algorithm>
#include <cstring>
#include <deque>
#include <functional>

#include "base/coding.h"
#include "base/crc32c.h"
#include "base/subject.h"
#include "log/format.h"
#include "log/message_policy.h"
#include "msgstore/limits.h"

namespace msgstore::index {
namespace {

constexpr std::uint8_t cursor_version = 1;
constexpr char base64url_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

std::string base64url_encode(std::string_view bytes) {
  std::string out;
  out.reserve((bytes.size() * 4 + 2) / 3);
  std::uint32_t buffer = 0;
  int bits = 0;
  for (char character : bytes) {
    buffer = (buffer << 8) | static_cast<unsigned char>(character);
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      out.push_back(base64url_alphabet[(buffer >> bits) & 0x3F]);
    }
  }
  if (bits > 0) out.push_back(base64url_alphabet[(buffer << (6 - bits)) & 0x3F]);
  return out;
}

// Strict: only the url alphabet, no padding, no leftover bits set.
std::optional<std::string> base64url_decode(std::string_view text) {
  if (text.size() % 4 == 1) return std::nullopt;
  std::string out;
  std::uint32_t buffer = 0;
  int bits = 0;
  for (char character : text) {
    const char* found = std::strchr(base64url_alphabet, character);
    if (character == '\0' || found == nullptr) return std::nullopt;
    buffer = (buffer << 6) | static_cast<std::uint32_t>(found - base64url_alphabet);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((buffer >> bits) & 0xFF));
    }
  }
  if (bits > 0 && (buffer & ((1u << bits) - 1)) != 0) return std::nullopt;
  return out;
}

Status malformed_cursor(const std::string& why) { return Status(ErrorCode::invalid_argument, "malformed cursor: " + why); }

bool is_literal_subject(std::string_view pattern) {
  return pattern.find('*') == std::string_view::npos && pattern.find('>') == std::string_view::npos;
}

// How one stream's part of the query runs.
struct Plan {
  enum class Kind : std::uint8_t { key, header, subject, scan } kind = Kind::scan;
  std::uint64_t driving_term = 0;
  std::vector<std::uint64_t> filter_terms;
  std::string description;
};

Result<Plan> plan_for(const Query& query, const QueryStream& stream) {
  Plan plan;
  const IndexConfiguration& configuration = stream.configuration;
  for (const Header& wanted : query.header_equals) {
    if (!configuration.indexes_header(wanted.name) && !query.allow_scan) {
      std::string indexed;
      for (const std::string& name : configuration.header_names) indexed += (indexed.empty() ? "" : ", ") + name;
      return Status(ErrorCode::invalid_argument,
                    "header '" + wanted.name + "' is not indexed in stream '" + stream.name + "' (indexed headers: " +
                        (indexed.empty() ? "none" : indexed) +
                        "); add it to the stream's indexed headers, or allow a scan (--scan; scan=true over HTTP)");
    }
  }
  if (!configuration.enabled) {
    if (query.key && !query.allow_scan) {
      return Status(ErrorCode::invalid_argument, "stream '" + stream.name +
                                                     "' has indexes disabled; a key lookup would scan the log (allow it with --scan; scan=true over HTTP)");
    }
    plan.description = "scan";
    return plan;
  }
  if (query.key) plan.filter_terms.push_back(key_term(*query.key));
  std::string first_header;
  for (const Header& wanted : query.header_equals) {
    if (!configuration.indexes_header(wanted.name)) continue;
    plan.filter_terms.push_back(header_term(wanted.name, wanted.value));
    if (first_header.empty()) first_header = wanted.name;
  }
  const bool literal_subject = !query.subject_pattern.empty() && is_literal_subject(query.subject_pattern);
  if (literal_subject) plan.filter_terms.push_back(subject_term(query.subject_pattern));
  if (query.key) {
    plan.kind = Plan::Kind::key;
    plan.driving_term = key_term(*query.key);
    plan.description = "key index";
  } else if (!first_header.empty()) {
    plan.kind = Plan::Kind::header;
    plan.driving_term = plan.filter_terms.front();
    plan.description = "header index (" + first_header + ")";
  } else if (literal_subject) {
    plan.kind = Plan::Kind::subject;
    plan.driving_term = subject_term(query.subject_pattern);
    plan.description = "subject index";
  } else {
    plan.filter_terms.clear();
    plan.description = "scan";
  }
  return plan;
}

bool has_header(const MessageView& message, const Header& wanted) {
  for (const HeaderView& field : message.headers) {
    if (field.name == wanted.name && field.value == wanted.value) return true;
  }
  return false;
}

// Every predicate except the offset range (the walk applies it).
bool matches(const Query& query, const MessageView& message) {
  if (query.from_time_ms && message.timestamp_ms < *query.from_time_ms) return false;
  if (query.to_time_ms && message.timestamp_ms >= *query.to_time_ms) return false;
  if (query.key && (!message.key || *message.key != *query.key)) return false;
  if (!query.subject_pattern.empty() && !base::subject_matches(query.subject_pattern, message.subject)) return false;
  for (const Header& wanted : query.header_equals) {
    if (!has_header(message, wanted)) return false;
  }
  if (query.payload_contains) {
    const std::string& needle = *query.payload_contains;
    if (message.payload.size() < needle.size() ||
        memmem(message.payload.data(), message.payload.size(), needle.data(), needle.size()) == nullptr) {
      return false;
    }
  }
  return true;
}

// A message copied out of a read buffer, for delivery in reverse order.
struct HeldMessage {
  Message message;
  std::vector<HeaderView> header_views;
  MessageView view() { return view_of(message, header_views); }
};

HeldMessage hold(const MessageView& view) { return HeldMessage{view.to_message(), {}}; }

// Walks one query over the streams, delivering matches until the limit or the callback stops.
class QueryRun {
 public:
  QueryRun(const Query& query, const QueryCallback& callback, std::uint64_t fingerprint)
      : query_(query), callback_(callback), fingerprint_(fingerprint) {}

  // `include_unacknowledged`: read up to the end of the log, not the high watermark.
  Status partition(const QueryStream& stream, std::uint32_t number, const Plan& plan, std::optional<Offset> cursor_offset,
                   bool include_unacknowledged = false);
  bool stopped() const { return stopped_; }
  QueryResult& result() { return result_; }

 private:
  // Offers one candidate; false once the query must stop.
  bool offer(const MessageView& message);
  Status scan_segment(log::Segment& segment, Offset low, Offset high);
  Status scan_range(log::Segment& segment, std::uint64_t position, std::uint64_t end_position, Offset low, Offset high,
                    const std::function<bool(const MessageView&)>& visit);
  Status fetch_postings(log::Segment& segment, const std::vector<Posting>& postings, Offset low, Offset high);
  Status read_batch(const log::Segment& segment, std::uint64_t position);
  // Index plans: segments looked up ahead of the one being read (see indexed_partition).
  struct PlannedSegment {
    enum class Outcome : std::uint8_t { skipped_by_range, skipped_by_filter, read } outcome = Outcome::read;
    std::shared_ptr<log::Segment> segment;
    Offset low = 0;
    Offset high = 0;
    std::size_t expected = 0;  // the probe's posting count (0: not known)
    bool postings_read = false;
    std::vector<Posting> postings;
    std::size_t advise_from = 0;  // in read order
    std::uint32_t last_advised_position = UINT32_MAX;
    std::size_t advised_candidates = 0;  // candidates within [low, high) whose batches were advised
    std::size_t advised_batches = 0;
  };
  bool outside_range(const log::Segment& segment, Offset segment_low, Offset segment_high) const;
  Status probe_segment(PartitionIndex& index, const Plan& plan, std::shared_ptr<log::Segment> segment, Offset low, Offset high);
  Status plan_segment(PartitionIndex& index, const Plan& plan, PlannedSegment& planned);
  // Candidates the query may still deliver.
  std::size_t wanted() const { return query_.limit > delivered_ ? query_.limit - delivered_ : 0; }
  void advise_batches(PlannedSegment& planned);
  void advise_planned();
  Status indexed_partition(PartitionIndex& index, const Plan& plan, const std::vector<std::shared_ptr<log::Segment>>& segments,
                           Offset low, Offset high);

  const Query& query_;
  const QueryCallback& callback_;
  const std::uint64_t fingerprint_;
  const TimestampMs now_ms_ = log::system_clock_ms();
  QueryResult result_;
  bool stopped_ = false;
  std::size_t delivered_ = 0;
  std::string_view stream_name_;
  std::uint32_t partition_ = 0;
  std::shared_ptr<const std::vector<Offset>> erased_ = std::make_shared<const std::vector<Offset>>();  // of this partition
  log::RecordDecoder decoder_;
  std::string batch_buffer_;  // the batch read_batch read, at its start (and maybe more after it)
  std::size_t read_window_bytes_ = 0;
  log::BatchHeader batch_header_;
  std::deque<PlannedSegment> planned_;
  std::size_t expected_ahead_ = 0;      // over planned_
  std::size_t advised_candidates_ = 0;  // over planned_
  std::size_t advised_batches_ = 0;
  bool cold_ = false;  // a batch read of this query missed the page cache
};

bool QueryRun::offer(const MessageView& message) {
  ++result_.statistics.messages_examined;
  // Expired messages (time to live) and erased ones (whose bytes a rewrite may not have removed
  // yet) are gaps on every read path, queries included.
  if (!matches(query_, message) || log::is_expired(message, now_ms_)) return true;
  if (!erased_->empty() && std::binary_search(erased_->begin(), erased_->end(), message.offset)) return true;
  ++result_.statistics.messages_matched;
  ++delivered_;
  const ScanControl control = callback_(QueryMatch{stream_name_, partition_, message});
  if (control == ScanControl::stop || delivered_ >= query_.limit) {
    QueryCursor cursor;
    cursor.query_fingerprint = fingerprint_;
    cursor.stream = std::string(stream_name_);
    cursor.partition = partition_;
    cursor.offset = query_.order == QueryOrder::oldest_first ? message.offset + 1 : message.offset;
    result_.next_cursor = encode_cursor(cursor);
    stopped_ = true;
    return false;
  }
  return true;
}

Status QueryRun::read_batch(const log::Segment& segment, std::uint64_t position) {
  const std::uint64_t end = segment.readable_bytes();
  if (position >= end) return Status(ErrorCode::corruption, "index points past the end of segment " + std::to_string(segment.base_offset()));
  auto damaged = [&] {
    return Status(ErrorCode::corruption, "segment " + std::to_string(segment.base_offset()) + ": the batch at byte " +
                                             std::to_string(position) + " is damaged and not served");
  };
  // One read of as many bytes as the previous batch had (batches of one log tend to be alike),
  // and a second for the rest if this batch is longer: usually one pread per batch, and never
  // more than one batch's worth of bytes beyond the batch.
  const std::size_t available = static_cast<std::size_t>(std::min<std::uint64_t>(end - position, UINT32_MAX));
  const std::size_t window = std::min(available, std::max(read_window_bytes_, log::format::batch_header_bytes));
  if (batch_buffer_.size() < window) batch_buffer_.resize(window);
  // Without waiting first: a read that would wait for the disk tells the query the page cache
  // is cold, and it advises the batches it will read next before waiting for this one.
  Result<std::size_t> got = std::size_t{0};
  auto cached = segment.log_file().read_at_if_cached(position, batch_buffer_.data(), window);
  if (!cached) return cached.status();
  if (cached->has_value()) {
    got = **cached;
  } else {
    if (!cold_) {
      // The first miss: advise every planned batch (the current segment's too, it is still
      // planned_.front()), so the rest are read from disk together.
      cold_ = true;
      advise_planned();
    }
    got = segment.log_file().read_at(position, batch_buffer_.data(), window);
    if (!got) return got.status();
  }
  result_.statistics.bytes_read += *got;
  if (*got < log::format::batch_header_bytes ||
      log::check_batch_header(batch_buffer_.data(), available, batch_header_) != log::HeaderCheck::valid) {
    return damaged();
  }
  read_window_bytes_ = batch_header_.batch_bytes;
  if (batch_header_.batch_bytes > *got) {
    const std::size_t have = *got;
    batch_buffer_.resize(batch_header_.batch_bytes);
    const std::size_t rest = batch_header_.batch_bytes - have;
    got = segment.log_file().read_at(position + have, batch_buffer_.data() + have, rest);
    if (!got) return got.status();
    result_.statistics.bytes_read += *got;
    if (*got != rest) return damaged();
  }
  if (!log::check_batch_body(batch_buffer_.data(), batch_header_)) return damaged();
  return Status::ok();
}

Status QueryRun::fetch_postings(log::Segment& segment, const std::vector<Posting>& postings, Offset low, Offset high) {
  const bool ascending = query_.order == QueryOrder::oldest_first;
  const Offset base = segment.base_offset();
  std::vector<Offset> wanted;
  std::vector<HeldMessage> held;
  std::size_t index = 0;
  while (index < postings.size() && !stopped_) {
    // Postings of one batch are consecutive: decode each batch once.
    const std::size_t at = ascending ? index : postings.size() - 1 - index;
    const std::uint32_t position = postings[at].position;
    wanted.clear();
    while (index < postings.size()) {
      const Posting& posting = postings[ascending ? index : postings.size() - 1 - index];
      if (posting.position != position) break;
      const Offset offset = base + posting.relative_offset;
      if (offset >= low && offset < high) wanted.push_back(offset);
      ++index;
    }
    if (wanted.empty()) continue;
    MSGSTORE_RETURN_IF_ERROR(read_batch(segment, position));
    std::sort(wanted.begin(), wanted.end());
    held.clear();
    // Only the wanted records are decoded; the others are stepped over by their length.
    Status decoded = decoder_.decode_offsets(batch_buffer_.data(), batch_header_, wanted, [&](const MessageView& message) {
      if (ascending) return offer(message);
      held.push_back(hold(message));
      return true;
    });
    MSGSTORE_RETURN_IF_ERROR(decoded);
    for (auto it = held.rbegin(); it != held.rend() && !stopped_; ++it) offer(it->view());
  }
  return Status::ok();
}

Status QueryRun::scan_range(log::Segment& segment, std::uint64_t position, std::uint64_t end_position, Offset low, Offset high,
                            const std::function<bool(const MessageView&)>& visit) {
  std::optional<log::BatchScanner> scanner;
  scanner.emplace(segment.log_file(), position, end_position);
  while (true) {
    const log::BatchScanner::Step step = scanner->next(/*verify_body=*/false);
    if (step == log::BatchScanner::Step::end_of_log) return Status::ok();
    if (step == log::BatchScanner::Step::io_error) return scanner->error();
    const log::BatchHeader& header = scanner->header();
    if (step == log::BatchScanner::Step::batch) {
      if (header.next_offset() <= low) continue;
      if (header.base_offset >= high) return Status::ok();
      result_.statistics.bytes_read += header.batch_bytes;
      if (query_.from_time_ms && header.max_timestamp_ms < *query_.from_time_ms) continue;  // no record is late enough
    }
    if (step == log::BatchScanner::Step::damaged || !log::check_batch_body(scanner->batch(), header)) {
      // Damage recovery recorded is never served (and never indexed): step over it, as the
      // index does. Other damage is an error, as for reads.
      if (auto damage_end = recorded_damage_end(segment, scanner->position())) {
        scanner.emplace(segment.log_file(), *damage_end, end_position);
        continue;
      }
      return Status(ErrorCode::corruption, "segment " + std::to_string(segment.base_offset()) + ": the batch at byte " +
                                               std::to_string(scanner->position()) + " is damaged and not served");
    }
    // Payloads are stored as they are, so a payload holding the text means the batch holds it:
    // a batch without it has no match, and is not decoded.
    if (query_.payload_contains) {
      const char* body = scanner->batch() + log::format::batch_header_bytes;
      const std::string& needle = *query_.payload_contains;
      if (memmem(body, header.batch_bytes - log::format::batch_header_bytes, needle.data(), needle.size()) == nullptr) continue;
    }
    bool keep_going = true;
    MSGSTORE_RETURN_IF_ERROR(decoder_.decode(scanner->batch(), header, [&](const MessageView& message) {
      if (message.offset < low) return true;
      if (message.offset >= high) {
        keep_going = false;
        return false;
      }
      keep_going = visit(message);
      return keep_going;
    }));
    if (!keep_going) return Status::ok();
  }
}

Status QueryRun::scan_segment(log::Segment& segment, Offset low, Offset high) {
  MSGSTORE_RETURN_IF_ERROR(segment.ensure_indexes());
  const std::uint64_t end = segment.readable_bytes();
  if (query_.order == QueryOrder::oldest_first) {
    return scan_range(segment, segment.position_for_offset(low), end, low, high, [&](const MessageView& message) { return offer(message); });
  }
  // Newest first: walk the sparse offset index backwards in chunks of about 4 KiB of log,
  // scanning each chunk forward and delivering its matches in reverse. Memory: one chunk.
  std::vector<log::OffsetIndexEntry> entries = segment.offset_index_snapshot();
  if (entries.empty() || entries.front().position != log::Segment::header_bytes()) {
    entries.insert(entries.begin(), log::OffsetIndexEntry{0, static_cast<std::uint32_t>(log::Segment::header_bytes())});
  }
  const Offset base = segment.base_offset();
  std::vector<HeldMessage> held;
  for (std::size_t chunk = entries.size(); chunk-- > 0 && !stopped_;) {
    const Offset chunk_low = base + entries[chunk].relative_offset;
    const std::uint64_t chunk_end = chunk + 1 < entries.size() ? entries[chunk + 1].position : end;
    const Offset chunk_high = chunk + 1 < entries.size() ? base + entries[chunk + 1].relative_offset : high;
    if (chunk_low >= high) continue;
    held.clear();
    MSGSTORE_RETURN_IF_ERROR(scan_range(segment, entries[chunk].position, chunk_end, std::max(low, chunk_low),
                                        std::min(high, chunk_high), [&](const MessageView& message) {
                                          ++result_.statistics.messages_examined;
                                          if (matches(query_, message)) held.push_back(hold(message));
                                          return true;
                                        }));
    for (auto it = held.rbegin(); it != held.rend() && !stopped_; ++it) {
      --result_.statistics.messages_examined;  // offer counts it again
      offer(it->view());
    }
    if (chunk_low <= low) break;
  }
  return Status::ok();
}

Status QueryRun::partition(const QueryStream& stream, std::uint32_t number, const Plan& plan, std::optional<Offset> cursor_offset,
                           bool include_unacknowledged) {
  stream_name_ = stream.name;
  partition_ = number;
  ++result_.statistics.partitions_considered;
  const log::PartitionLog& log = *stream.partitions[number];
  erased_ = log.erased_offsets();
  // The high watermark first, then the log start: every offset in between is readable now.
  Offset high = include_unacknowledged ? UINT64_MAX : log.high_watermark();
  Offset low = log.log_start_offset();
  if (query_.from_offset) low = std::max(low, *query_.from_offset);
  if (query_.to_offset) high = std::min(high, *query_.to_offset);
  if (cursor_offset) {
    if (query_.order == QueryOrder::oldest_first) low = std::max(low, *cursor_offset);
    else high = std::min(high, *cursor_offset);
  }
  if (low >= high) return Status::ok();
  std::vector<std::shared_ptr<log::Segment>> segments = log.segments_snapshot();
  if (query_.order == QueryOrder::newest_first) std::reverse(segments.begin(), segments.end());
  if (plan.kind == Plan::Kind::scan) {
    for (const std::shared_ptr<log::Segment>& segment : segments) {
      if (stopped_) break;
      ++result_.statistics.segments_considered;
      const Offset segment_low = std::max(low, segment->base_offset());
      const Offset segment_high = std::min(high, segment->next_offset());
      if (outside_range(*segment, segment_low, segment_high)) {
        ++result_.statistics.segments_skipped_by_range;
        continue;
      }
      ++result_.statistics.segments_read;
      MSGSTORE_RETURN_IF_ERROR(scan_segment(*segment, segment_low, segment_high));
    }
    return Status::ok();
  }
  return indexed_partition(*stream.indexes[number], plan, segments, low, high);
}

bool QueryRun::outside_range(const log::Segment& segment, Offset segment_low, Offset segment_high) const {
  const TimestampMs max_timestamp = segment.max_timestamp_ms();
  return segment_low >= segment_high || segment.empty() ||
         (query_.from_time_ms && max_timestamp != log::no_timestamp && max_timestamp < *query_.from_time_ms);
}

Status QueryRun::probe_segment(PartitionIndex& index, const Plan& plan, std::shared_ptr<log::Segment> segment, Offset low, Offset high) {
  PlannedSegment& planned = planned_.emplace_back();
  planned.segment = std::move(segment);
  planned.low = std::max(low, planned.segment->base_offset());
  planned.high = std::min(high, planned.segment->next_offset());
  if (outside_range(*planned.segment, planned.low, planned.high)) {
    planned.outcome = PlannedSegment::Outcome::skipped_by_range;
    return Status::ok();
  }
  bool skipped = false;
  MSGSTORE_RETURN_IF_ERROR(index.probe(*planned.segment, plan.driving_term, plan.filter_terms, skipped, planned.expected, result_.statistics));
  if (skipped) planned.outcome = PlannedSegment::Outcome::skipped_by_filter;
  expected_ahead_ += planned.expected;
  return Status::ok();
}

Status QueryRun::plan_segment(PartitionIndex& index, const Plan& plan, PlannedSegment& planned) {
  planned.postings_read = true;
  if (planned.outcome != PlannedSegment::Outcome::read) return Status::ok();
  bool skipped = false;
  MSGSTORE_RETURN_IF_ERROR(index.lookup(*planned.segment, plan.driving_term, plan.filter_terms, planned.postings, skipped, result_.statistics));
  if (skipped || planned.postings.empty()) {
    planned.outcome = PlannedSegment::Outcome::skipped_by_filter;
    planned.postings.clear();
  }
  return Status::ok();
}

void QueryRun::advise_batches(PlannedSegment& planned) {
  // The candidate batches, in the order they will be read, until `wanted` candidates are
  // advised ahead (or the batch bound is reached). Only once a read missed the page cache
  // (advise_planned).
  const bool ascending = query_.order == QueryOrder::oldest_first;
  const Offset base = planned.segment->base_offset();
  const std::size_t count = planned.postings.size();
  std::uint32_t last_position = planned.last_advised_position;
  const std::size_t wanted = this->wanted();
  for (; planned.advise_from < count; ++planned.advise_from) {
    if (advised_candidates_ >= wanted || advised_batches_ >= limits::query_prefetch_batches_max) break;
    const Posting& posting = planned.postings[ascending ? planned.advise_from : count - 1 - planned.advise_from];
    const Offset offset = base + posting.relative_offset;
    if (offset < planned.low || offset >= planned.high) continue;
    ++planned.advised_candidates;
    ++advised_candidates_;
    if (posting.position == last_position) continue;
    last_position = posting.position;
    // The batch's end: bounded by the offset index, or guessed from the last batch this query
    // read (a longer batch's rest is read when it is reached).
    const std::optional<std::uint64_t> bound = planned.segment->batch_end_bound(posting.position);
    const std::uint64_t guess = read_window_bytes_ != 0 ? read_window_bytes_ : limits::query_prefetch_unknown_batch_bytes;
    const std::uint64_t end = std::min(bound ? *bound : posting.position + guess, posting.position + limits::query_prefetch_batch_bytes_max);
    if (end > posting.position) planned.segment->log_file().will_need(posting.position, end - posting.position);
    ++planned.advised_batches;
    ++advised_batches_;
  }
  planned.last_advised_position = last_position;
}

Status QueryRun::indexed_partition(PartitionIndex& index, const Plan& plan, const std::vector<std::shared_ptr<log::Segment>>& segments,
                                   Offset low, Offset high) {
  // Reads from disk overlap instead of waiting for each other (a latest-20 lookup on a cold
  // page cache makes ~20 batch reads and a posting-run read per segment): segments are probed
  // ahead of the one being read (term table and filters, in memory) until their postings could
  // fill the query, their posting runs advised as wanted together; then their postings are
  // read and the candidate batches advised, also together; then the batches are read in order.
  // Statistics count a segment when the query reaches it, as without lookahead.
  planned_.clear();
  expected_ahead_ = 0;
  advised_candidates_ = 0;
  advised_batches_ = 0;
  std::size_t next = 0;
  while (!stopped_) {
    while (next < segments.size() &&
           (planned_.empty() || (expected_ahead_ < wanted() && planned_.size() < limits::query_prefetch_segments_max))) {
      MSGSTORE_RETURN_IF_ERROR(probe_segment(index, plan, segments[next++], low, high));
    }
    if (planned_.empty()) break;
    // The probes advised their posting runs together: read them all now (each probed segment
    // is read unless the query stops first), then advise their batches if the cache is cold.
    for (PlannedSegment& planned : planned_) {
      if (!planned.postings_read) MSGSTORE_RETURN_IF_ERROR(plan_segment(index, plan, planned));
    }
    advise_planned();
    PlannedSegment& planned = planned_.front();
    ++result_.statistics.segments_considered;
    if (planned.outcome == PlannedSegment::Outcome::skipped_by_range) ++result_.statistics.segments_skipped_by_range;
    if (planned.outcome == PlannedSegment::Outcome::skipped_by_filter) ++result_.statistics.segments_skipped_by_filter;
    if (planned.outcome == PlannedSegment::Outcome::read) {
      ++result_.statistics.segments_read;
      MSGSTORE_RETURN_IF_ERROR(fetch_postings(*planned.segment, planned.postings, planned.low, planned.high));
    }
    expected_ahead_ -= planned.expected;
    advised_candidates_ -= planned.advised_candidates;
    advised_batches_ -= planned.advised_batches;
    planned_.pop_front();
  }
  planned_.clear();
  return Status::ok();
}

void QueryRun::advise_planned() {
  if (!cold_) return;  // advice costs a system call per batch, which a warm lookup would pay for nothing
  for (PlannedSegment& planned : planned_) {
    if (advised_candidates_ >= wanted() || advised_batches_ >= limits::query_prefetch_batches_max) break;
    if (planned.postings_read && planned.outcome == PlannedSegment::Outcome::read) advise_batches(planned);
  }
}

void put_field(std::string& out, std::string_view field) {
  char length[4];
  base::store_u32(length, static_cast<std::uint32_t>(field.size()));
  out.append(length, 4);
  out.append(field);
}

}  // namespace

std::uint64_t query_fingerprint(const Query& query) {
  std::string text;
  auto optional_number = [&](bool present, std::uint64_t value) {
    put_field(text, present ? std::to_string(value) : std::string("-"));
  };
  put_field(text, query.stream);
  optional_number(query.partition.has_value(), query.partition.value_or(0));
  optional_number(query.from_time_ms.has_value(), static_cast<std::uint64_t>(query.from_time_ms.value_or(0)));
  optional_number(query.to_time_ms.has_value(), static_cast<std::uint64_t>(query.to_time_ms.value_or(0)));
  optional_number(query.from_offset.has_value(), query.from_offset.value_or(0));
  optional_number(query.to_offset.has_value(), query.to_offset.value_or(0));
  put_field(text, query.subject_pattern);
  put_field(text, query.key ? "k" + *query.key : std::string("-"));
  for (const Header& wanted : query.header_equals) {
    put_field(text, wanted.name);
    put_field(text, wanted.value);
  }
  put_field(text, query.payload_contains ? "c" + *query.payload_contains : std::string("-"));
  put_field(text, query.order == QueryOrder::oldest_first ? "oldest" : "newest");
  return hash_bytes(text, 0x7175657279ull);
}

Result<std::optional<Offset>> last_offset_for_key(const log::PartitionLog& log, PartitionIndex& index, std::string_view key) {
  Query query;
  query.key = std::string(key);
  query.order = QueryOrder::newest_first;
  query.limit = 1;
  QueryStream stream;
  stream.name = "-";
  stream.configuration = index.configuration();
  if (!stream.configuration.enabled) return Status(ErrorCode::invalid_argument, "the stream's indexes are disabled");
  // A non-owning handle: the caller holds the log for the duration of the call.
  stream.partitions.push_back(std::shared_ptr<log::PartitionLog>(std::shared_ptr<log::PartitionLog>(), const_cast<log::PartitionLog*>(&log)));
  stream.indexes.push_back(std::shared_ptr<PartitionIndex>(std::shared_ptr<PartitionIndex>(), &index));
  auto plan = plan_for(query, stream);
  if (!plan) return plan.status();
  std::optional<Offset> found;
  QueryCallback callback = [&](const QueryMatch& match) {
    found = match.message.offset;
    return ScanControl::stop;
  };
  QueryRun run(query, callback, 0);
  MSGSTORE_RETURN_IF_ERROR(run.partition(stream, 0, *plan, std::nullopt, /*include_unacknowledged=*/true));
  return found;
}

std::string encode_cursor(const QueryCursor& cursor) {
  std::string bytes(1 + 8 + 4 + 8 + 2, '\0');
  bytes[0] = static_cast<char>(cursor_version);
  base::store_u64(bytes.data() + 1, cursor.query_fingerprint);
  base::store_u32(bytes.data() + 9, cursor.partition);
  base::store_u64(bytes.data() + 13, cursor.offset);
  base::store_u16(bytes.data() + 21, static_cast<std::uint16_t>(cursor.stream.size()));
  bytes += cursor.stream;
  char crc[4];
  base::store_u32(crc, base::crc32c(bytes.data(), bytes.size()));
  bytes.append(crc, 4);
  return base64url_encode(bytes);
}

Result<QueryCursor> decode_cursor(std::string_view text) {
  if (text.size() > limits::query_cursor_bytes_max) return malformed_cursor("too long");
  auto bytes = base64url_decode(text);
  if (!bytes) return malformed_cursor("not base64url");
  constexpr std::size_t fixed_bytes = 1 + 8 + 4 + 8 + 2 + 4;
  if (bytes->size() < fixed_bytes) return malformed_cursor("too short");
  const char* data = bytes->data();
  const std::size_t checked = bytes->size() - 4;
  if (base::crc32c(data, checked) != base::load_u32(data + checked)) return malformed_cursor("checksum mismatch");
  if (static_cast<std::uint8_t>(data[0]) != cursor_version) {
    return malformed_cursor("unknown version " + std::to_string(static_cast<std::uint8_t>(data[0])));
  }
  QueryCursor cursor;
  cursor.query_fingerprint = base::load_u64(data + 1);
  cursor.partition = base::load_u32(data + 9);
  cursor.offset = base::load_u64(data + 13);
  const std::size_t stream_bytes = base::load_u16(data + 21);
  if (stream_bytes + fixed_bytes != bytes->size()) return malformed_cursor("length mismatch");
  cursor.stream.assign(data + 23, stream_bytes);
  // (The store checks names; here only what any stream name is: 1 to 255 bytes.)
  if (cursor.stream.empty() || cursor.stream.size() > limits::stream_name_bytes_max) return malformed_cursor("bad stream name");
  if (cursor.partition >= limits::partitions_per_stream_max) return malformed_cursor("bad partition");
  return cursor;
}

Status validate_query(const Query& query) {
  auto invalid = [](std::string message) { return Status(ErrorCode::invalid_argument, std::move(message)); };
  if (query.limit == 0 || query.limit > limits::query_results_max) {
    return invalid("limit must be 1 to " + std::to_string(limits::query_results_max));
  }
  if (query.from_time_ms && query.to_time_ms && *query.from_time_ms >= *query.to_time_ms) {
    return invalid("time range is empty or reversed: from " + std::to_string(*query.from_time_ms) + " must be below to " +
                   std::to_string(*query.to_time_ms) + " (ranges are [from, to))");
  }
  if (query.from_offset && query.to_offset && *query.from_offset >= *query.to_offset) {
    return invalid("offset range is empty or reversed: from " + std::to_string(*query.from_offset) + " must be below to " +
                   std::to_string(*query.to_offset) + " (ranges are [from, to))");
  }
  if (!query.subject_pattern.empty()) {
    Status pattern = base::validate_subject_pattern(query.subject_pattern);
    if (!pattern.is_ok()) return invalid("invalid subject pattern: " + pattern.message());
  }
  if (query.key && query.key->size() > limits::key_bytes_max) return invalid("key is longer than any stored key can be");
  if (query.header_equals.size() > limits::query_header_equals_max) {
    return invalid("at most " + std::to_string(limits::query_header_equals_max) + " header equalities");
  }
  for (const Header& wanted : query.header_equals) {
    if (wanted.name.empty() || wanted.name.size() > limits::header_name_bytes_max) {
      return invalid("header names must be 1 to " + std::to_string(limits::header_name_bytes_max) + " bytes");
    }
  }
  if (query.payload_contains && query.payload_contains->empty()) return invalid("payload contains text must not be empty");
  if (!query.cursor.empty()) {
    auto cursor = decode_cursor(query.cursor);
    if (!cursor) return cursor.status();
    if (cursor->query_fingerprint != query_fingerprint(query)) {
      return invalid("cursor belongs to a different query (the predicates or the order changed)");
    }
  }
  return Status::ok();
}

Result<QueryResult> run_query(const Query& query, const std::vector<QueryStream>& streams, const QueryCallback& callback) {
  MSGSTORE_RETURN_IF_ERROR(validate_query(query));
  std::optional<QueryCursor> cursor;
  if (!query.cursor.empty()) cursor = *decode_cursor(query.cursor);
  // Plan every stream first, so a bad predicate fails before anything is delivered.
  std::vector<Plan> plans;
  for (const QueryStream& stream : streams) {
    auto plan = plan_for(query, stream);
    if (!plan) return plan.status();
    plans.push_back(std::move(*plan));
  }
  const std::uint64_t fingerprint = query_fingerprint(query);
  QueryRun run(query, callback, fingerprint);
  std::vector<std::string> descriptions;
  for (std::size_t index = 0; index < streams.size() && !run.stopped(); ++index) {
    const QueryStream& stream = streams[index];
    if (cursor && stream.name < cursor->stream) continue;
    if (std::find(descriptions.begin(), descriptions.end(), plans[index].description) == descriptions.end()) {
      descriptions.push_back(plans[index].description);
    }
    for (std::uint32_t partition = 0; partition < stream.partitions.size() && !run.stopped(); ++partition) {
      if (query.partition && partition != *query.partition) continue;
      std::optional<Offset> cursor_offset;
      if (cursor && stream.name == cursor->stream) {
        if (partition < cursor->partition) continue;
        if (partition == cursor->partition) cursor_offset = cursor->offset;
      }
      MSGSTORE_RETURN_IF_ERROR(run.partition(stream, partition, plans[index], cursor_offset));
    }
  }
  QueryResult result = std::move(run.result());
  for (const std::string& description : descriptions) {
    result.statistics.plan += (result.statistics.plan.empty() ? "" : ", ") + description;
  }
  if (result.statistics.plan.empty()) result.statistics.plan = "none (no stream in scope)";
  return result;
}

}  // namespace msgstore::index
