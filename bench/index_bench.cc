// index_bench: the index and query goals of issue 3, measured in one run and printed as ratios
// (see bench/README.md, "index_bench").
//
//   index_bench [--messages N] [--segments N] [--keys N] [--rate-messages N] [--repetitions N]
//               [--runs N] [--directory PATH] [--keep] [--reuse] [--profile-lookups N]
//               [--lookups-only] [--rate-only] [--index-threads N]
//
// 1. Publish rate with key, subject and two header indexes on, against the same messages into
//    a stream with indexes off: the two streams take turns per chunk, publish_batch of 100,
//    fsync=never, the store's default index thread (--index-threads). Goal: >= 0.7x.
// 2. A data set of --messages 100 B messages (default 10 million) in --segments segments of one
//    partition, and the same rows in SQLite (WAL, one table, B-tree indexes on key and on the
//    header column). The 20 latest messages of one key, and of one header value: Store::query
//    against a full scan (Store::scan of the whole partition keeping the last 20 matches) and
//    against SQLite (SELECT ... WHERE key = ? ORDER BY seq DESC LIMIT 20). Goals: >= 1000x
//    faster than the scan, within 2x of SQLite. A different key per repetition; medians.
//    Both sides see the same page cache state, measured twice: warm (every file of both data
//    sets read just before) and cold (every file of both evicted with POSIX_FADV_DONTNEED
//    before each timed lookup). Each process keeps its own cache in both: msgstore's parsed
//    index tables (64 MiB per partition) and SQLite's page cache (set to the same 64 MiB).
// 3. A payload-contains query for text no payload holds, over everything, from the page cache
//    (run once to warm it, then timed): GB/s of log read. Goal: >= 1 GB/s.
#include <sqlite3.h>

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <deque>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "log/record_batch.h"
#include "msgstore/store.h"

namespace {

using Clock = std::chrono::steady_clock;
using msgstore::Store;

struct Options {
  std::uint64_t messages = 10'000'000;
  std::uint64_t segments = 64;
  std::uint64_t keys = 100'000;
  std::uint64_t header_values = 50'000;
  std::uint64_t rate_messages = 2'000'000;
  int repetitions = 9;
  int profile_lookups = 0;  // extra untimed lookups, to profile them
  int runs = 1;             // whole runs (fresh data set each), medians over them
  std::string directory;    // where the data sets live (default: the system temp directory)
  bool keep = false;        // keep the data set (for --reuse)
  bool reuse = false;       // open the data set a --keep run left, measure lookups and scans only
  bool lookups_only = false;  // no full scans, no payload-contains scan (for profiling lookups)
  bool rate_only = false;     // only the publish-rate phase, with segments sized for --messages (profiling)
  std::size_t payload_bytes = 100;
  std::size_t batch_messages = 100;
  std::uint32_t index_threads = msgstore::StoreOptions{}.index_threads;  // 0: index on the publishing thread
};

double seconds_since(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values.empty() ? 0 : values[values.size() / 2];
}

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "index_bench: %s\n", what.c_str());
  std::exit(1);
}

template <typename T>
T must(msgstore::Result<T> result, const char* what) {
  if (!result) die(std::string(what) + ": " + result.status().to_string());
  return std::move(*result);
}

void must(const msgstore::Status& status, const char* what) {
  if (!status.is_ok()) die(std::string(what) + ": " + status.to_string());
}

// Message i: key "key-<i % keys>", header customer "customer-<i % header_values>", header
// region one of four, subject one of four, a 100 B payload.
class Messages {
 public:
  explicit Messages(const Options& options) : options_(options) {
    payload_.assign(options.payload_bytes, 'x');
  }
  std::string key(std::uint64_t index) const { return "key-" + std::to_string(index % options_.keys); }
  std::string customer(std::uint64_t index) const { return "customer-" + std::to_string(index % options_.header_values); }
  // Fills `batch` with messages [first, first + count); the views point into this object.
  void fill(std::uint64_t first, std::size_t count, std::vector<msgstore::OutgoingMessage>& batch) {
    static const char* subjects[] = {"orders.created", "orders.paid", "orders.shipped", "orders.closed"};
    static const char* regions[] = {"eu", "us", "ap", "sa"};
    keys_.resize(count);
    customers_.resize(count);
    payloads_.resize(count);
    headers_.resize(count);
    batch.resize(count);
    for (std::size_t i = 0; i < count; ++i) {
      const std::uint64_t index = first + i;
      keys_[i] = key(index);
      customers_[i] = customer(index);
      payloads_[i] = payload_;
      std::snprintf(payloads_[i].data(), payloads_[i].size(), "message %llu ", static_cast<unsigned long long>(index));
      headers_[i][0] = {"customer", customers_[i]};
      headers_[i][1] = {"region", regions[index % 4]};
      msgstore::OutgoingMessage& message = batch[i];
      message.subject = subjects[index % 4];
      message.key = keys_[i];
      message.headers = headers_[i];
      message.payload = payloads_[i];
      message.timestamp_ms = 1'700'000'000'000 + static_cast<std::int64_t>(index);
    }
  }
  const std::string& payload(std::size_t i) const { return payloads_[i]; }

 private:
  const Options& options_;
  std::string payload_;
  std::vector<std::string> keys_, customers_, payloads_;
  std::vector<std::array<msgstore::HeaderView, 2>> headers_;
};

msgstore::StreamConfig stream(const std::string& name, const std::string& subjects, bool indexed, std::uint64_t segment_bytes) {
  msgstore::StreamConfig config;
  config.name = name;
  config.subjects = {subjects};
  config.fsync = msgstore::FsyncPolicy::never;
  config.segment_bytes = segment_bytes;
  config.indexes_enabled = indexed;
  if (indexed) config.indexed_headers = {"customer", "region"};
  return config;
}

// ---- SQLite peer ----------------------------------------------------------------------------
class Sqlite {
 public:
  Sqlite(const std::filesystem::path& path, bool create) {
    if (sqlite3_open(path.c_str(), &database_) != SQLITE_OK) die("sqlite open");
    execute("PRAGMA journal_mode=WAL");
    execute("PRAGMA synchronous=OFF");
    execute("PRAGMA cache_size=-65536");  // 64 MiB, msgstore's parsed-index budget per partition
    if (!create) return;
    execute("CREATE TABLE messages(seq INTEGER PRIMARY KEY, ts INTEGER, subject TEXT, key TEXT, customer TEXT, region TEXT,"
            " payload BLOB)");
    execute("CREATE INDEX messages_key ON messages(key)");
    execute("CREATE INDEX messages_customer ON messages(customer)");
  }
  ~Sqlite() {
    for (sqlite3_stmt* statement : {insert_, by_key_, by_customer_}) sqlite3_finalize(statement);
    sqlite3_close(database_);
  }
  void execute(const char* sql) {
    char* message = nullptr;
    if (sqlite3_exec(database_, sql, nullptr, nullptr, &message) != SQLITE_OK) die(std::string(sql) + ": " + (message ? message : "?"));
  }
  sqlite3_stmt* prepare(const char* sql) {
    sqlite3_stmt* statement = nullptr;
    if (sqlite3_prepare_v2(database_, sql, -1, &statement, nullptr) != SQLITE_OK) die(std::string("prepare ") + sql);
    return statement;
  }
  void insert(std::uint64_t seq, const msgstore::OutgoingMessage& message) {
    if (insert_ == nullptr) insert_ = prepare("INSERT INTO messages VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)");
    sqlite3_bind_int64(insert_, 1, static_cast<sqlite3_int64>(seq));
    sqlite3_bind_int64(insert_, 2, message.timestamp_ms);
    sqlite3_bind_text(insert_, 3, message.subject.data(), static_cast<int>(message.subject.size()), SQLITE_STATIC);
    sqlite3_bind_text(insert_, 4, message.key->data(), static_cast<int>(message.key->size()), SQLITE_STATIC);
    sqlite3_bind_text(insert_, 5, message.headers[0].value.data(), static_cast<int>(message.headers[0].value.size()), SQLITE_STATIC);
    sqlite3_bind_text(insert_, 6, message.headers[1].value.data(), static_cast<int>(message.headers[1].value.size()), SQLITE_STATIC);
    sqlite3_bind_blob(insert_, 7, message.payload.data(), static_cast<int>(message.payload.size()), SQLITE_STATIC);
    if (sqlite3_step(insert_) != SQLITE_DONE) die("sqlite insert");
    sqlite3_reset(insert_);
  }
  // The 20 latest rows of a key (or customer); returns the count and sums a payload byte.
  std::size_t latest(bool by_key, const std::string& value, std::uint64_t& checksum) {
    sqlite3_stmt*& statement = by_key ? by_key_ : by_customer_;
    if (statement == nullptr) {
      statement = prepare(by_key ? "SELECT seq, ts, subject, key, customer, region, payload FROM messages WHERE key = ?1"
                                   " ORDER BY seq DESC LIMIT 20"
                                 : "SELECT seq, ts, subject, key, customer, region, payload FROM messages WHERE customer = ?1"
                                   " ORDER BY seq DESC LIMIT 20");
    }
    sqlite3_bind_text(statement, 1, value.data(), static_cast<int>(value.size()), SQLITE_STATIC);
    std::size_t rows = 0;
    while (sqlite3_step(statement) == SQLITE_ROW) {
      const void* payload = sqlite3_column_blob(statement, 6);
      checksum += static_cast<unsigned char>(static_cast<const char*>(payload)[10]);
      ++rows;
    }
    sqlite3_reset(statement);
    return rows;
  }

 private:
  sqlite3* database_ = nullptr;
  sqlite3_stmt* insert_ = nullptr;
  sqlite3_stmt* by_key_ = nullptr;
  sqlite3_stmt* by_customer_ = nullptr;
};

std::size_t query_latest(Store& store, bool by_key, const std::string& value, std::uint64_t& checksum,
                         msgstore::QueryStatistics* statistics = nullptr) {
  msgstore::Query query;
  query.stream = "indexed";
  if (by_key) query.key = value;
  else query.header_equals = {{"customer", value}};
  query.order = msgstore::QueryOrder::newest_first;
  query.limit = 20;
  std::size_t rows = 0;
  auto result = must(store.query(query, [&](const msgstore::QueryMatch& match) {
    checksum += static_cast<unsigned char>(match.message.payload[10]);
    ++rows;
    return msgstore::ScanControl::proceed;
  }), "query");
  if (statistics) *statistics = result.statistics;
  return rows;
}

// The same answer by reading everything: the last 20 matches of a forward scan.
std::size_t scan_latest(Store& store, bool by_key, const std::string& value, std::uint64_t& checksum) {
  std::deque<std::uint64_t> latest;
  msgstore::Offset from = 0;
  while (true) {
    const msgstore::Offset next = must(store.scan("indexed", 0, from, 1'000'000, [&](const msgstore::MessageView& message) {
      bool match = false;
      if (by_key) {
        match = message.key && *message.key == value;
      } else {
        for (const msgstore::HeaderView& field : message.headers) match = match || (field.name == "customer" && field.value == value);
      }
      if (match) {
        latest.push_back(static_cast<unsigned char>(message.payload[10]));
        if (latest.size() > 20) latest.pop_front();
      }
      return msgstore::ScanControl::proceed;
    }), "scan");
    if (next == from) break;
    from = next;
  }
  for (std::uint64_t byte : latest) checksum += byte;
  return latest.size();
}


// What one run measured.
// Reads every file whole, so its pages are in the page cache.
void read_files(const std::vector<std::filesystem::path>& files) {
  std::vector<char> buffer(1 << 20);
  for (const auto& path : files) {
    const int descriptor = ::open(path.c_str(), O_RDONLY);
    if (descriptor < 0) continue;  // removed meanwhile (a temporary file)
    off_t at = 0;
    for (ssize_t got; (got = ::pread(descriptor, buffer.data(), buffer.size(), at)) > 0;) at += got;
    ::close(descriptor);
  }
}

// Drops every file's (clean) pages from the page cache.
void evict_files(const std::vector<std::filesystem::path>& files) {
  for (const auto& path : files) {
    const int descriptor = ::open(path.c_str(), O_RDONLY);
    if (descriptor < 0) continue;
    (void)::posix_fadvise(descriptor, 0, 0, POSIX_FADV_DONTNEED);
    ::close(descriptor);
  }
}

struct RunResult {
  double rate_ratio = 0;
  double indexed_rate = 0;
  double plain_rate = 0;
  std::uint32_t segments = 0;
  struct Lookup {
    double index_seconds = 0;
    double sqlite_seconds = 0;
    double scan_seconds = 0;
    std::string plan;
    std::uint64_t segments_read = 0;
    std::uint64_t bytes_read = 0;
  } lookups[2][2];  // [warm, cold][by key, by header value]
  double contains_gigabytes_per_second = 0;
};

RunResult run_once(const Options& options, const std::filesystem::path& directory) {
  RunResult outcome;
  Messages messages(options);
  std::vector<msgstore::OutgoingMessage> batch;
  messages.fill(0, 1, batch);
  const std::uint64_t record_bytes = msgstore::log::encoded_record_bytes(batch[0]) + 1;
  // Slightly under an even share, so the data set has at least --segments sealed segments.
  const std::uint64_t segment_bytes = std::max<std::uint64_t>(
      64 * 1024, (options.messages * record_bytes + 56 * options.messages / options.batch_messages) / options.segments * 98 / 100);
  msgstore::StoreOptions store_options;
  store_options.index_threads = options.index_threads;
  auto store = must(Store::open(directory / "msgstore", store_options), "open");
  const bool build = !options.reuse;
  Sqlite sqlite(directory / "messages.db", /*create=*/build);
  if (build) {
    must(store->create_stream(stream("indexed", "orders.>", true, segment_bytes)), "create indexed");
    must(store->create_stream(stream("plain", "plain.never", false, segment_bytes)), "create plain");

    // 1. Publish rate, indexes on and off, taking turns per chunk of 100k messages.
    double indexed_seconds = 0;
    double plain_seconds = 0;
    constexpr std::uint64_t chunk_messages = 100'000;
    std::uint64_t published = 0;
    auto publish_range = [&](const std::string& target, std::uint64_t first, std::uint64_t count) {
      for (std::uint64_t at = first; at < first + count; at += options.batch_messages) {
        const std::size_t size = static_cast<std::size_t>(std::min<std::uint64_t>(options.batch_messages, first + count - at));
        messages.fill(at, size, batch);
        must(store->publish_to(target, batch), "publish");
      }
    };
    bool plain_first = true;
    while (published < options.rate_messages) {
      const std::uint64_t count = std::min(chunk_messages, options.rate_messages - published);
      for (bool plain : {plain_first, !plain_first}) {
        const auto start = Clock::now();
        publish_range(plain ? "plain" : "indexed", published, count);
        (plain ? plain_seconds : indexed_seconds) += seconds_since(start);
      }
      plain_first = !plain_first;  // neither side always goes first
      published += count;
    }
    must(store->delete_stream("plain"), "delete plain");
    outcome.rate_ratio = plain_seconds / indexed_seconds;
    outcome.indexed_rate = static_cast<double>(options.rate_messages) / indexed_seconds;
    outcome.plain_rate = static_cast<double>(options.rate_messages) / plain_seconds;
    if (options.rate_only) {
      must(store->close(), "close");
      return outcome;
    }
    publish_range("indexed", published, options.messages - published);
    sqlite.execute("BEGIN");
    for (std::uint64_t at = 0; at < options.messages; at += 1000) {
      const std::size_t size = static_cast<std::size_t>(std::min<std::uint64_t>(1000, options.messages - at));
      messages.fill(at, size, batch);
      for (std::size_t i = 0; i < size; ++i) sqlite.insert(at + i, batch[i]);
    }
    sqlite.execute("COMMIT");
  }
  auto info = must(store->describe_stream("indexed"), "describe");
  outcome.segments = info.partitions[0].segments;

  // 2. Latest 20 by key and by header value, warm and cold, the same state on both sides.
  std::vector<std::filesystem::path> files;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(directory)) {
    if (entry.is_regular_file()) files.push_back(entry.path());
  }
  ::sync();  // dirty pages cannot be evicted
  std::mt19937_64 random(42);
  for (int cold = 0; cold < 2; ++cold) {
    for (bool by_key : {true, false}) {
      const std::uint64_t distinct = by_key ? options.keys : options.header_values;
      std::vector<double> index_times, sqlite_times;
      std::uint64_t checksum = 0;
      msgstore::QueryStatistics statistics;
      // Warm-up, untimed, on both sides: index tables and SQLite's B-tree pages get loaded.
      for (std::uint64_t warm = 0; warm < 16; ++warm) {
        const std::string value = by_key ? "key-" + std::to_string(random() % distinct) : "customer-" + std::to_string(random() % distinct);
        query_latest(*store, by_key, value, checksum);
        sqlite.latest(by_key, value, checksum);
      }
      for (int extra = 0; extra < options.profile_lookups; ++extra) {
        query_latest(*store, by_key, (by_key ? "key-" : "customer-") + std::to_string(random() % distinct), checksum);
      }
      if (!cold) read_files(files);
      for (int repetition = 0; repetition < options.repetitions; ++repetition) {
        const std::uint64_t pick = random() % distinct;
        const std::string value = by_key ? "key-" + std::to_string(pick) : "customer-" + std::to_string(pick);
        // The two sides alternate which goes first.
        for (bool msgstore_side : {repetition % 2 == 0, repetition % 2 != 0}) {
          if (cold) evict_files(files);
          const auto start = Clock::now();
          if (msgstore_side) {
            const std::size_t found = query_latest(*store, by_key, value, checksum, &statistics);
            index_times.push_back(seconds_since(start));
            if (found != 20) die("msgstore found " + std::to_string(found) + " messages of " + value);
          } else {
            const std::size_t found = sqlite.latest(by_key, value, checksum);
            sqlite_times.push_back(seconds_since(start));
            if (found != 20) die("SQLite found " + std::to_string(found) + " rows of " + value);
          }
        }
      }
      // The full scan, from the page cache (after the warm lookups).
      std::vector<double> scan_times;
      for (int repetition = 0; repetition < (options.lookups_only || cold ? 0 : std::max(1, options.repetitions / 4)); ++repetition) {
        const std::string value = by_key ? "key-1" : "customer-1";
        const auto start = Clock::now();
        if (scan_latest(*store, by_key, value, checksum) != 20) die("the scan did not find 20 messages of " + value);
        scan_times.push_back(seconds_since(start));
      }
      RunResult::Lookup& lookup = outcome.lookups[cold][by_key ? 0 : 1];
      lookup.index_seconds = median(index_times);
      lookup.sqlite_seconds = median(sqlite_times);
      lookup.scan_seconds = median(scan_times);
      lookup.plan = statistics.plan;
      lookup.segments_read = statistics.segments_read;
      lookup.bytes_read = statistics.bytes_read;
      if (checksum == 0) std::printf("(checksum 0)\n");
    }
  }

  // 3. Payload contains, from the page cache (the first pass warms it).
  for (int pass = 0; pass < (options.lookups_only ? 0 : 2); ++pass) {
    msgstore::Query query;
    query.stream = "indexed";
    query.payload_contains = "no payload holds this";
    const auto start = Clock::now();
    auto result = must(store->query(query, [](const msgstore::QueryMatch&) { return msgstore::ScanControl::proceed; }), "contains");
    outcome.contains_gigabytes_per_second = static_cast<double>(result.statistics.bytes_read) / seconds_since(start) / 1e9;
  }
  must(store->close(), "close");
  return outcome;
}

const char* verdict(bool pass) { return pass ? "pass" : "FAIL"; }

// One table: the figures of one run, or (over several runs) the medians of each figure.
void print_table(const Options& options, const std::vector<RunResult>& runs) {
  auto median_of = [&](auto field) {
    std::vector<double> values;
    for (const RunResult& run : runs) values.push_back(field(run));
    return median(values);
  };
  auto spread_of = [&](auto field) {
    if (runs.size() < 2) return std::string();
    double low = field(runs[0]), high = low;
    for (const RunResult& run : runs) low = std::min(low, field(run)), high = std::max(high, field(run));
    char text[64];
    std::snprintf(text, sizeof text, " (%.2f..%.2f)", low, high);
    return std::string(text);
  };
  std::printf("| measurement | value%s | goal | result |\n|---|---|---|---|\n", runs.size() > 1 ? " (median of runs; min..max)" : "");
  if (!options.reuse) {
    auto ratio = [](const RunResult& run) { return run.rate_ratio; };
    const double rate_ratio = median_of(ratio);
    std::printf("| publish rate, indexes on / off (%llu msgs each) | %.2fx%s (%.0f vs %.0f msg/s) | >= 0.7x | %s |\n",
                static_cast<unsigned long long>(options.rate_messages), rate_ratio, spread_of(ratio).c_str(),
                median_of([](const RunResult& run) { return run.indexed_rate; }),
                median_of([](const RunResult& run) { return run.plain_rate; }), verdict(rate_ratio >= 0.7));
  }
  if (options.rate_only) {
    std::printf("\n");
    std::fflush(stdout);
    return;
  }
  std::printf("| segments in the data set | %.0f | 64 | |\n", median_of([](const RunResult& run) { return double(run.segments); }));
  for (int cold = 0; cold < 2; ++cold) {
    const char* state = cold ? "cold" : "warm";
    for (int which = 0; which < 2; ++which) {
      const char* what = which == 0 ? "key" : "header value";
      auto lookup_of = [&](const RunResult& run) -> const RunResult::Lookup& { return run.lookups[cold][which]; };
      const RunResult::Lookup& last = lookup_of(runs.back());
      std::printf("| %s: latest 20 of one %s: index %.1f us, SQLite %.1f us (plan: %s, %llu segments and %llu bytes read) | | | |\n",
                  state, what, median_of([&](const RunResult& run) { return lookup_of(run).index_seconds; }) * 1e6,
                  median_of([&](const RunResult& run) { return lookup_of(run).sqlite_seconds; }) * 1e6, last.plan.c_str(),
                  static_cast<unsigned long long>(last.segments_read), static_cast<unsigned long long>(last.bytes_read));
      if (!cold && !options.lookups_only) {
        auto scan_speedup = [&](const RunResult& run) { return lookup_of(run).scan_seconds / lookup_of(run).index_seconds; };
        const double speedup = median_of(scan_speedup);
        std::printf("| warm: latest 20 of one %s, full scan (%.1f ms) / index | %.0fx%s | >= 1000x | %s |\n", what,
                    median_of([&](const RunResult& run) { return lookup_of(run).scan_seconds; }) * 1e3, speedup,
                    spread_of(scan_speedup).c_str(), verdict(speedup >= 1000));
      }
      auto sqlite_ratio = [&](const RunResult& run) { return lookup_of(run).index_seconds / lookup_of(run).sqlite_seconds; };
      const double ratio = median_of(sqlite_ratio);
      std::printf("| %s: latest 20 of one %s, index / SQLite time | %.2fx%s | <= 2x | %s |\n", state, what, ratio,
                  spread_of(sqlite_ratio).c_str(), verdict(ratio <= 2));
    }
  }
  auto contains = [](const RunResult& run) { return run.contains_gigabytes_per_second; };
  const double gigabytes_per_second = median_of(contains);
  std::printf("| payload contains scan, page cache | %.2f GB/s%s | >= 1 GB/s | %s |\n\n", gigabytes_per_second,
              spread_of(contains).c_str(), verdict(gigabytes_per_second >= 1));
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  Options options;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (flag == "--keep") {
      options.keep = true;
      continue;
    }
    if (flag == "--reuse") {
      options.reuse = true;
      continue;
    }
    if (flag == "--lookups-only") {
      options.lookups_only = true;
      continue;
    }
    if (flag == "--rate-only") {
      options.rate_only = true;
      continue;
    }
    if (i + 1 >= argc) die("missing value after " + flag);
    const std::string text = argv[++i];
    const std::uint64_t value = std::strtoull(text.c_str(), nullptr, 10);
    if (flag == "--messages") options.messages = value;
    else if (flag == "--segments") options.segments = value;
    else if (flag == "--keys") options.keys = value;
    else if (flag == "--header-values") options.header_values = value;
    else if (flag == "--rate-messages") options.rate_messages = value;
    else if (flag == "--repetitions") options.repetitions = static_cast<int>(value);
    else if (flag == "--profile-lookups") options.profile_lookups = static_cast<int>(value);
    else if (flag == "--runs") options.runs = static_cast<int>(std::max<std::uint64_t>(1, value));
    else if (flag == "--directory") options.directory = text;
    else if (flag == "--index-threads") options.index_threads = static_cast<std::uint32_t>(value);
    else die("unknown flag " + flag);
  }
  options.rate_messages = std::min(options.rate_messages, options.messages);
  if (options.reuse && options.directory.empty()) die("--reuse needs the --directory of a --keep run");
  if (options.reuse) options.runs = 1;
  const std::filesystem::path parent =
      options.directory.empty() ? std::filesystem::temp_directory_path() / ("msgstore-index-bench-" + std::to_string(::getpid()))
                                : std::filesystem::path(options.directory);
  std::printf("# index_bench: %llu messages of %zu B payload, %llu keys, %llu header values, target %llu segments, %d run(s), "
              "%u index thread(s)\n\n",
              static_cast<unsigned long long>(options.messages), options.payload_bytes,
              static_cast<unsigned long long>(options.keys), static_cast<unsigned long long>(options.header_values),
              static_cast<unsigned long long>(options.segments), options.runs, options.index_threads);
  std::fflush(stdout);
  std::vector<RunResult> runs;
  for (int run = 0; run < options.runs; ++run) {
    if (!options.reuse) {
      std::filesystem::remove_all(parent);
      std::filesystem::create_directories(parent);
    }
    runs.push_back(run_once(options, parent));
    if (options.runs > 1) {
      std::printf("## run %d of %d\n\n", run + 1, options.runs);
      print_table(options, {runs.back()});
    }
    if (!options.keep && !options.reuse) std::filesystem::remove_all(parent);
  }
  if (options.runs > 1) std::printf("## medians over %d runs\n\n", options.runs);
  print_table(options, runs);
  return 0;
}
