#include "index/segment_index.h"

#include <algorithm>
#include <bit>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <random>
#include <utility>

#include "base/assert.h"
#include "base/coding.h"
#include "base/crc32c.h"
#include "index/format.h"
#include "log/format.h"
#include "log/segment.h"

namespace msgstore::index {
namespace {

std::uint64_t mix(std::uint64_t value) {
  value ^= value >> 33;
  value *= 0xff51afd7ed558ccdull;
  value ^= value >> 33;
  value *= 0xc4ceb9fe1a85ec53ull;
  value ^= value >> 33;
  return value;
}

std::uint32_t bloom_words_for(std::uint32_t term_count) {
  const std::uint64_t bits = std::uint64_t{term_count} * format::bloom_bits_per_term;
  return static_cast<std::uint32_t>(std::max<std::uint64_t>(1, (bits + 63) / 64));
}

// Calls probe(bit) for each of the term's bloom bits in a filter of `bits` bits.
// Bit i is (first + i * step) mod bits; computed incrementally (two divisions, not seven):
// first and step are below 2^32, so first + i * step never wraps and the sums agree.
template <typename Probe>
void for_each_bloom_bit(std::uint64_t term, std::uint64_t bits, Probe&& probe) {
  const std::uint64_t step = ((term >> 32) | 1) % bits;
  std::uint64_t bit = (term & 0xFFFFFFFFu) % bits;
  for (std::uint32_t probe_index = 0; probe_index < format::bloom_probes; ++probe_index) {
    if (!probe(bit)) return;
    bit += step;
    if (bit >= bits) bit -= bits;
  }
}

// Sorts `items` by `less`, which orders first by key(item), a well-mixed 64-bit hash: one pass
// puts each item in a bucket by the key's top bits (about one item per bucket), then each
// bucket is sorted alone. Linear for hashes, where std::sort was the largest cost of sealing a
// segment's index; buckets that chosen keys crowd fall back to std::sort's n log n.
template <typename Item, typename Key, typename Less>
void sort_by_hash(std::vector<Item>& items, Key key, Less less) {
  constexpr std::size_t small_count = 64;
  constexpr int bucket_bits_max = 24;
  const std::size_t count = items.size();
  if (count <= small_count) {
    std::sort(items.begin(), items.end(), less);
    return;
  }
  const int bucket_bits = std::min(bucket_bits_max, static_cast<int>(std::bit_width(count)));
  const int shift = 64 - bucket_bits;
  // ends[b]: first the count of bucket b, then (prefix sums) where it starts, then after
  // the scatter where it ends.
  std::vector<std::uint32_t> ends(std::size_t{1} << bucket_bits, 0);
  for (const Item& item : items) ++ends[key(item) >> shift];
  std::uint32_t start = 0;
  for (std::uint32_t& end : ends) start += std::exchange(end, start);
  std::vector<Item> sorted(count);
  for (const Item& item : items) sorted[ends[key(item) >> shift]++] = item;
  std::uint32_t begin = 0;
  for (std::uint32_t end : ends) {
    if (end - begin > 1) std::sort(sorted.begin() + begin, sorted.begin() + end, less);
    begin = end;
  }
  items.swap(sorted);
}

// Equality of a few bytes (header names) without a library call per comparison.
bool same_short_bytes(const char* left, const char* right, std::size_t size) {
  for (std::size_t i = 0; i < size; ++i) {
    if (left[i] != right[i]) return false;
  }
  return true;
}

class MemoryFile final : public File {
 public:
  explicit MemoryFile(std::string bytes) : bytes_(std::move(bytes)) {}
  Status write_at(std::uint64_t, const void*, std::size_t) override {
    return Status(ErrorCode::invalid_argument, "memory file is read-only");
  }
  Result<std::size_t> read_at(std::uint64_t offset, void* buffer, std::size_t size) const override {
    if (offset >= bytes_.size()) return std::size_t{0};
    const std::size_t count = std::min<std::size_t>(size, bytes_.size() - offset);
    std::memcpy(buffer, bytes_.data() + offset, count);
    return count;
  }
  Status sync_data() override { return Status::ok(); }
  Status sync() override { return Status::ok(); }
  Status truncate(std::uint64_t) override { return Status(ErrorCode::invalid_argument, "memory file is read-only"); }
  Result<std::uint64_t> size() const override { return std::uint64_t{bytes_.size()}; }

 private:
  std::string bytes_;
};

Status read_exactly(const File& file, std::uint64_t position, void* buffer, std::size_t size, std::uint64_t& bytes_read) {
  auto got = file.read_at(position, buffer, size);
  if (!got) return got.status();
  bytes_read += *got;
  if (*got != size) return Status(ErrorCode::corruption, "index file is shorter than its header says");
  return Status::ok();
}

}  // namespace

std::uint64_t hash_bytes(std::string_view bytes, std::uint64_t seed) {
  std::uint64_t hash = mix(seed ^ (bytes.size() * 0x9E3779B97F4A7C15ull));
  const char* data = bytes.data();
  std::size_t remaining = bytes.size();
  while (remaining >= 8) {
    hash = mix(hash ^ base::load_u64(data)) + 0x9E3779B97F4A7C15ull;
    data += 8;
    remaining -= 8;
  }
  if (remaining > 0) {
    // The 1-7 bytes left, little-endian, zero-extended, read without a variable-length
    // memcpy (a library call per hash): two overlapping loads, or three bytes.
    std::uint64_t tail;
    if (remaining >= 4) {
      tail = std::uint64_t{base::load_u32(data)} | (std::uint64_t{base::load_u32(data + remaining - 4)} << ((remaining - 4) * 8));
    } else {
      tail = std::uint64_t{static_cast<unsigned char>(data[0])} |
             (std::uint64_t{static_cast<unsigned char>(data[remaining / 2])} << (remaining / 2 * 8)) |
             (std::uint64_t{static_cast<unsigned char>(data[remaining - 1])} << ((remaining - 1) * 8));
    }
    hash = mix(hash ^ tail ^ (std::uint64_t{remaining} << 56));
  }
  return mix(hash);
}

std::uint64_t key_term(std::string_view key) { return hash_bytes(key, format::term_seed_key); }
std::uint64_t subject_term(std::string_view subject) { return hash_bytes(subject, format::term_seed_subject); }
std::uint64_t header_term(std::string_view name, std::string_view value) {
  return hash_bytes(value, hash_bytes(name, format::term_seed_header));
}

bool IndexConfiguration::indexes_header(std::string_view name) const {
  return enabled && std::binary_search(header_names.begin(), header_names.end(), name);
}

std::optional<std::uint64_t> IndexConfiguration::header_seed(std::string_view name) const {
  if (!enabled) return std::nullopt;
  for (std::size_t i = 0; i < header_names.size(); ++i) {
    if (header_names[i].size() != name.size() || !same_short_bytes(header_names[i].data(), name.data(), name.size())) continue;
    return i < header_seeds.size() ? header_seeds[i] : hash_bytes(name, format::term_seed_header);
  }
  return std::nullopt;
}

IndexConfiguration make_index_configuration(bool enabled, std::vector<std::string> header_names) {
  IndexConfiguration configuration;
  configuration.enabled = enabled;
  std::sort(header_names.begin(), header_names.end());
  header_names.erase(std::unique(header_names.begin(), header_names.end()), header_names.end());
  configuration.header_names = std::move(header_names);
  std::uint64_t fingerprint = format::term_seed_configuration;
  for (const std::string& name : configuration.header_names) {
    fingerprint = hash_bytes(name, fingerprint);
    configuration.header_seeds.push_back(hash_bytes(name, format::term_seed_header));
  }
  configuration.fingerprint = fingerprint;
  return configuration;
}

std::filesystem::path index_file_path(const std::filesystem::path& directory, Offset base_offset) {
  char name[64];
  std::snprintf(name, sizeof name, "%020" PRIu64 ".v%u.message_index", base_offset, unsigned{format::version});
  return directory / name;
}

std::optional<Offset> parse_index_file_name(const std::string& name) {
  char expected_suffix[32];
  std::snprintf(expected_suffix, sizeof expected_suffix, ".v%u.message_index", unsigned{format::version});
  return log::parse_segment_file_name(name, expected_suffix);
}

// ---- Builder ----------------------------------------------------------------------------------
namespace {
// Mixed into slot positions so that keys chosen to collide in the table's low bits (the term
// hash is a public function) do not line up in one probe sequence. Per process; the file
// format never sees it (encode sorts by term).
const std::uint64_t slot_salt = [] {
  std::random_device device;
  return (std::uint64_t{device()} << 32) ^ device();
}();
}  // namespace

std::size_t SegmentIndexBuilder::slot_index(std::uint64_t term) const {
  return static_cast<std::size_t>(mix(term ^ slot_salt)) & (slots_.size() - 1);
}

const SegmentIndexBuilder::Slot* SegmentIndexBuilder::find(std::uint64_t term) const {
  if (term_count_ == 0) return nullptr;
  const std::size_t mask = slots_.size() - 1;
  for (std::size_t index = slot_index(term);; index = (index + 1) & mask) {
    const Slot& slot = slots_[index];
    if (slot.count == 0) return nullptr;
    if (slot.term == term) return &slot;
  }
}

void SegmentIndexBuilder::grow() {
  std::vector<Slot> old(std::max(initial_slots, slots_.size() * 2), Slot{});
  old.swap(slots_);
  const std::size_t mask = slots_.size() - 1;
  for (const Slot& slot : old) {
    if (slot.count == 0) continue;
    std::size_t index = slot_index(slot.term);
    while (slots_[index].count != 0) index = (index + 1) & mask;
    slots_[index] = slot;
  }
}

void SegmentIndexBuilder::add(std::uint64_t term, Posting posting) {
  while ((term_count_ + 1) * 4 > slots_.size() * 3) grow();
  insert(term, slot_index(term), posting);
}

void SegmentIndexBuilder::append_entry(const Entry& entry) {
  MS_ASSERT(entry_count_ < no_entry);
  const std::uint32_t chunk = entry_count_ >> entry_chunk_bits;
  if (chunk == entry_chunks_.size()) {
    entry_chunks_.emplace_back();
    if (chunk > 0) entry_chunks_.back().reserve(entry_chunk_size);
  }
  entry_chunks_[chunk].push_back(entry);
  ++entry_count_;
}

void SegmentIndexBuilder::insert(std::uint64_t term, std::size_t index, Posting posting) {
  const std::size_t mask = slots_.size() - 1;
  while (slots_[index].count != 0 && slots_[index].term != term) index = (index + 1) & mask;
  Slot& slot = slots_[index];
  const std::uint32_t added = entry_count_;
  if (slot.count == 0) {
    slot = Slot{term, static_cast<std::uint32_t>(term_count_++), added, 1, posting.relative_offset};
    append_entry({posting, no_entry, slot.id});
    return;
  }
  // A message naming one term twice (a repeated header) is one posting.
  if (slot.last_relative_offset == posting.relative_offset) return;
  append_entry({posting, slot.head, slot.id});
  slot.head = added;
  slot.last_relative_offset = posting.relative_offset;
  ++slot.count;
}

void SegmentIndexBuilder::add_pending() {
  // Room for every pending term first, so no slot moves while its line is being fetched.
  while ((term_count_ + pending_.size()) * 4 > slots_.size() * 3) grow();
  constexpr std::size_t prefetch_distance = 16;
  const std::size_t count = pending_.size();
  for (PendingTerm& pending : pending_) pending.slot = slot_index(pending.term);
  for (std::size_t i = 0; i < std::min(count, prefetch_distance); ++i) __builtin_prefetch(&slots_[pending_[i].slot], 1);
  for (std::size_t i = 0; i < count; ++i) {
    if (i + prefetch_distance < count) __builtin_prefetch(&slots_[pending_[i + prefetch_distance].slot], 1);
    insert(pending_[i].term, pending_[i].slot, pending_[i].posting);
  }
  pending_.clear();
}

Status SegmentIndexBuilder::add_batch(const IndexConfiguration& configuration, Offset base_offset, std::uint64_t position,
                                      const char* batch, const log::BatchHeader& header, log::RecordDecoder& decoder) {
  if (!configuration.enabled) return Status::ok();
  const bool any_headers = !configuration.header_names.empty();
  // Messages of a batch mostly share their subject: hash it once per run of equal subjects.
  std::string_view previous_subject;
  std::uint64_t previous_subject_term = 0;
  bool have_subject = false;
  pending_.clear();
  Status decoded = decoder.decode(batch, header, [&](const MessageView& message) {
    const Posting posting{static_cast<std::uint32_t>(message.offset - base_offset), static_cast<std::uint32_t>(position)};
    if (message.key) pending_.push_back({key_term(*message.key), posting, 0});
    if (!have_subject || message.subject != previous_subject) {
      previous_subject = message.subject;
      previous_subject_term = subject_term(message.subject);
      have_subject = true;
    }
    pending_.push_back({previous_subject_term, posting, 0});
    if (any_headers) {
      for (const HeaderView& field : message.headers) {
        if (auto seed = configuration.header_seed(field.name)) pending_.push_back({hash_bytes(field.value, *seed), posting, 0});
      }
    }
    return true;
  });
  if (!decoded.is_ok()) {
    pending_.clear();  // nothing of a malformed batch is indexed
    return decoded;
  }
  add_pending();
  return Status::ok();
}

void SegmentIndexBuilder::postings(std::uint64_t term, std::vector<Posting>& out) const {
  const Slot* slot = find(term);
  if (slot == nullptr) return;
  const std::size_t start = out.size();
  out.resize(start + slot->count);
  std::size_t at = out.size();
  for (std::uint32_t index = slot->head; index != no_entry; index = entry(index).previous) {
    out[--at] = entry(index).posting;
  }
  MS_ASSERT(at == start);
}

void SegmentIndexBuilder::clear() {
  for (std::vector<Entry>& chunk : entry_chunks_) chunk.clear();
  entry_count_ = 0;
  if (term_count_ != 0) std::fill(slots_.begin(), slots_.end(), Slot{});
  term_count_ = 0;
}

std::string SegmentIndexBuilder::encode(const std::vector<const SegmentIndexBuilder*>& parts, Offset base_offset,
                                        std::uint64_t log_bytes, Offset next_offset, std::uint64_t fingerprint) {
  // Every (term, part) with its count, sorted by term and then part (older part first).
  struct PartTerm {
    std::uint64_t term;
    std::uint32_t part;
    std::uint32_t id;
    std::uint32_t count;
  };
  std::vector<PartTerm> part_terms;
  std::size_t posting_total = 0;
  std::size_t slot_total = 0;
  for (const SegmentIndexBuilder* part : parts) slot_total += part->term_count_;
  part_terms.reserve(slot_total);
  for (std::uint32_t part = 0; part < parts.size(); ++part) {
    posting_total += parts[part]->entry_count_;
    for (const Slot& slot : parts[part]->slots_) {
      if (slot.count != 0) part_terms.push_back({slot.term, part, slot.id, slot.count});
    }
  }
  sort_by_hash(part_terms, [](const PartTerm& item) { return item.term; }, [](const PartTerm& left, const PartTerm& right) {
    return left.term != right.term ? left.term < right.term : left.part < right.part;
  });
  std::uint32_t term_count = 0;
  for (std::size_t i = 0; i < part_terms.size(); ++i) {
    if (i == 0 || part_terms[i].term != part_terms[i - 1].term) ++term_count;
  }
  const std::uint32_t bloom_words = bloom_words_for(term_count);
  const std::size_t tables_bytes = bloom_words * 8 + std::size_t{term_count} * format::term_entry_bytes;
  std::string image(format::header_bytes + tables_bytes + posting_total * format::posting_bytes, '\0');
  char* bloom = image.data() + format::header_bytes;
  char* term_table = bloom + bloom_words * 8;
  char* postings_area = term_table + std::size_t{term_count} * format::term_entry_bytes;
  const std::uint64_t bloom_bits = std::uint64_t{bloom_words} * 64;
  std::vector<std::uint64_t> bloom_bits_words(bloom_words, 0);

  // The term table, and where each (part, term) run starts in the postings.
  std::vector<std::vector<std::uint32_t>> run_cursor(parts.size());
  for (std::size_t part = 0; part < parts.size(); ++part) run_cursor[part].resize(parts[part]->term_count_);
  std::uint32_t written = 0;
  std::uint32_t term_index = 0;
  for (std::size_t i = 0; i < part_terms.size();) {
    const std::uint64_t term = part_terms[i].term;
    const std::uint32_t first = written;
    for (; i < part_terms.size() && part_terms[i].term == term; ++i) {
      run_cursor[part_terms[i].part][part_terms[i].id] = written;
      written += part_terms[i].count;
    }
    for_each_bloom_bit(term, bloom_bits, [&](std::uint64_t bit) {
      bloom_bits_words[bit / 64] |= std::uint64_t{1} << (bit % 64);
      return true;
    });
    char* entry = term_table + std::size_t{term_index++} * format::term_entry_bytes;
    base::store_u64(entry, term);
    base::store_u32(entry + 8, first);
    base::store_u32(entry + 12, written - first);
    base::store_u32(entry + 20, 0);
  }
  MS_ASSERT(term_index == term_count && written == posting_total);
  // One pass over the entries of each part, in offset order, fills every run ascending.
  for (std::size_t part = 0; part < parts.size(); ++part) {
    std::vector<std::uint32_t>& cursor = run_cursor[part];
    const SegmentIndexBuilder& builder = *parts[part];
    for (std::uint32_t first = 0; first < builder.entry_count_; first += entry_chunk_size) {
      for (const Entry& entry : builder.entry_chunks_[first >> entry_chunk_bits]) {
        char* out = postings_area + std::size_t{cursor[entry.term_id]++} * format::posting_bytes;
        base::store_u32(out, entry.posting.relative_offset);
        base::store_u32(out + 4, entry.posting.position);
      }
    }
  }
  for (std::uint32_t index = 0; index < term_count; ++index) {
    char* entry = term_table + std::size_t{index} * format::term_entry_bytes;
    const char* run = postings_area + std::size_t{base::load_u32(entry + 8)} * format::posting_bytes;
    base::store_u32(entry + 16, base::crc32c(run, std::size_t{base::load_u32(entry + 12)} * format::posting_bytes));
  }
  for (std::uint32_t word = 0; word < bloom_words; ++word) base::store_u64(bloom + word * 8, bloom_bits_words[word]);
  char* header = image.data();
  base::store_u32(header, format::magic);
  base::store_u16(header + 4, format::version);
  base::store_u16(header + 6, 0);
  base::store_u64(header + 8, base_offset);
  base::store_u64(header + 16, log_bytes);
  base::store_u64(header + 24, next_offset);
  base::store_u64(header + 32, fingerprint);
  base::store_u32(header + 40, term_count);
  base::store_u32(header + 44, bloom_words);
  base::store_u32(header + 48, written);
  base::store_u32(header + 52, base::crc32c(bloom, tables_bytes));
  base::store_u32(header + 56, 0);
  base::store_u32(header + format::header_crc_position, base::crc32c(header, format::header_crc_position));
  return image;
}

// ---- File -------------------------------------------------------------------------------------
Result<std::shared_ptr<SegmentIndexFile>> SegmentIndexFile::open(std::unique_ptr<File> file, std::uint64_t& bytes_read) {
  auto size = file->size();
  if (!size) return size.status();
  char header[format::header_bytes];
  if (*size < format::header_bytes) return Status(ErrorCode::corruption, "index file too short");
  MSGSTORE_RETURN_IF_ERROR(read_exactly(*file, 0, header, sizeof header, bytes_read));
  if (base::load_u32(header) != format::magic) return Status(ErrorCode::corruption, "index file has a bad magic");
  if (base::crc32c(header, format::header_crc_position) != base::load_u32(header + format::header_crc_position)) {
    return Status(ErrorCode::corruption, "index file header checksum mismatch");
  }
  if (base::load_u16(header + 4) != format::version) {
    return Status(ErrorCode::unsupported_format, "index file version " + std::to_string(base::load_u16(header + 4)));
  }
  auto result = std::shared_ptr<SegmentIndexFile>(new SegmentIndexFile());
  IndexFileHeader& fields = result->header_;
  fields.base_offset = base::load_u64(header + 8);
  fields.log_bytes = base::load_u64(header + 16);
  fields.next_offset = base::load_u64(header + 24);
  fields.fingerprint = base::load_u64(header + 32);
  fields.term_count = base::load_u32(header + 40);
  fields.bloom_words = base::load_u32(header + 44);
  fields.posting_count = base::load_u32(header + 48);
  const std::uint32_t tables_crc = base::load_u32(header + 52);
  if (base::load_u16(header + 6) != 0 || base::load_u32(header + 56) != 0) {
    return Status(ErrorCode::corruption, "index file has unknown flags");
  }
  if (fields.next_offset < fields.base_offset || fields.next_offset - fields.base_offset > 0xFFFFFFFFull ||
      fields.log_bytes > 0xFFFFFFFFull || fields.log_bytes < log::format::segment_header_bytes) {
    return Status(ErrorCode::corruption, "index file header has impossible offsets or sizes");
  }
  if (fields.bloom_words != bloom_words_for(fields.term_count) || fields.term_count > fields.posting_count) {
    return Status(ErrorCode::corruption, "index file header has inconsistent counts");
  }
  const std::uint64_t tables_bytes = std::uint64_t{fields.bloom_words} * 8 + std::uint64_t{fields.term_count} * format::term_entry_bytes;
  const std::uint64_t expected_size = format::header_bytes + tables_bytes + std::uint64_t{fields.posting_count} * format::posting_bytes;
  if (*size != expected_size) return Status(ErrorCode::corruption, "index file size does not match its header");
  std::string tables(tables_bytes, '\0');
  MSGSTORE_RETURN_IF_ERROR(read_exactly(*file, format::header_bytes, tables.data(), tables.size(), bytes_read));
  if (base::crc32c(tables.data(), tables.size()) != tables_crc) return Status(ErrorCode::corruption, "index file tables checksum mismatch");
  result->bloom_.resize(fields.bloom_words);
  for (std::uint32_t word = 0; word < fields.bloom_words; ++word) result->bloom_[word] = base::load_u64(tables.data() + word * 8);
  result->terms_.reserve(fields.term_count);
  const char* entry = tables.data() + std::size_t{fields.bloom_words} * 8;
  std::uint64_t next_posting = 0;
  for (std::uint32_t index = 0; index < fields.term_count; ++index, entry += format::term_entry_bytes) {
    TermEntry term{base::load_u64(entry), base::load_u32(entry + 8), base::load_u32(entry + 12), base::load_u32(entry + 16)};
    if (base::load_u32(entry + 20) != 0 || term.first_posting != next_posting || term.posting_count == 0 ||
        (!result->terms_.empty() && result->terms_.back().term >= term.term)) {
      return Status(ErrorCode::corruption, "index file term table is malformed at entry " + std::to_string(index));
    }
    next_posting += term.posting_count;
    if (next_posting > fields.posting_count) return Status(ErrorCode::corruption, "index file term table overruns the postings");
    result->terms_.push_back(term);
  }
  if (next_posting != fields.posting_count) return Status(ErrorCode::corruption, "index file has postings no term owns");
  result->postings_position_ = format::header_bytes + tables_bytes;
  result->file_ = std::move(file);
  return result;
}

const SegmentIndexFile::TermEntry* SegmentIndexFile::find(std::uint64_t term) const {
  auto found = std::lower_bound(terms_.begin(), terms_.end(), term,
                                [](const TermEntry& entry, std::uint64_t value) { return entry.term < value; });
  if (found == terms_.end() || found->term != term) return nullptr;
  return &*found;
}

bool SegmentIndexFile::might_contain(std::uint64_t term) const {
  const std::uint64_t bits = bloom_.size() * 64;
  bool present = true;
  for_each_bloom_bit(term, bits, [&](std::uint64_t bit) {
    present = (bloom_[bit / 64] >> (bit % 64)) & 1;
    return present;
  });
  return present && find(term) != nullptr;
}

std::size_t SegmentIndexFile::expect_postings(std::uint64_t term) const {
  const TermEntry* entry = find(term);
  if (entry == nullptr) return 0;
  file_->will_need(postings_position_ + std::uint64_t{entry->first_posting} * format::posting_bytes,
                   std::uint64_t{entry->posting_count} * format::posting_bytes);
  return entry->posting_count;
}

Status SegmentIndexFile::postings(std::uint64_t term, std::vector<Posting>& out, std::uint64_t& bytes_read) const {
  const TermEntry* entry = find(term);
  if (entry == nullptr) return Status::ok();
  std::string run(std::size_t{entry->posting_count} * format::posting_bytes, '\0');
  MSGSTORE_RETURN_IF_ERROR(read_exactly(*file_, postings_position_ + std::uint64_t{entry->first_posting} * format::posting_bytes,
                                        run.data(), run.size(), bytes_read));
  if (base::crc32c(run.data(), run.size()) != entry->postings_crc) {
    return Status(ErrorCode::corruption, "index file postings checksum mismatch");
  }
  const std::uint64_t offsets = header_.next_offset - header_.base_offset;
  const std::size_t start = out.size();
  for (std::uint32_t i = 0; i < entry->posting_count; ++i) {
    Posting posting{base::load_u32(run.data() + i * format::posting_bytes), base::load_u32(run.data() + i * format::posting_bytes + 4)};
    const bool ascending = out.size() == start || out.back().relative_offset < posting.relative_offset;
    if (!ascending || posting.relative_offset >= offsets || posting.position < log::format::segment_header_bytes ||
        posting.position >= header_.log_bytes) {
      out.resize(start);
      return Status(ErrorCode::corruption, "index file posting out of range");
    }
    out.push_back(posting);
  }
  return Status::ok();
}

std::unique_ptr<File> memory_file(std::string bytes) { return std::make_unique<MemoryFile>(std::move(bytes)); }

}  // namespace msgstore::index
