#include "sqlite_workloads.h"

#include <sqlite3.h>

#include <algorithm>
#include <atomic>
#include <latch>
#include <mutex>
#include <thread>
#include <vector>

namespace msgstore::bench {
namespace {

constexpr const char* database_file_name = "messages.db";
constexpr const char* stream_name = "bench";
constexpr int stream_name_bytes = 5;
constexpr int busy_timeout_ms = 250;  // short, so that a writer notices its time limit soon
constexpr std::int64_t page_rows = 1000;
constexpr std::uint64_t clock_check_rows = 4096;

constexpr const char* create_table_sql =
    "CREATE TABLE messages(stream TEXT NOT NULL, seq INTEGER NOT NULL, ts INTEGER NOT NULL, key TEXT,"
    " payload BLOB NOT NULL, PRIMARY KEY(stream, seq))";
constexpr const char* insert_sql = "INSERT INTO messages(stream, seq, ts, key, payload) VALUES(?1, ?2, ?3, ?4, ?5)";
constexpr const char* select_all_sql = "SELECT seq, ts, key, payload FROM messages WHERE stream = ?1 ORDER BY seq";
constexpr const char* select_page_sql =
    "SELECT seq, ts, key, payload FROM messages WHERE stream = ?1 AND seq > ?2 ORDER BY seq LIMIT 1000";

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

class Connection {
 public:
  Connection() = default;
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
  ~Connection() { close(); }
  // Closes the database (its statements must be finalized first).
  void close() {
    if (database_ != nullptr) sqlite3_close_v2(database_);
    database_ = nullptr;
  }
  // Returns an error message, empty on success.
  std::string open(const std::filesystem::path& path, SqliteSynchronous synchronous, bool create) {
    const int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | (create ? SQLITE_OPEN_CREATE : 0);
    if (sqlite3_open_v2(path.c_str(), &database_, flags, nullptr) != SQLITE_OK) return "open: " + last_error();
    // busy_timeout first: the other pragmas may meet a lock held by another connection.
    if (auto error = execute("PRAGMA busy_timeout=" + std::to_string(busy_timeout_ms)); !error.empty()) return error;
    if (auto error = execute("PRAGMA journal_mode=WAL"); !error.empty()) return error;
    if (auto error = execute(std::string("PRAGMA synchronous=") + sqlite_synchronous_name(synchronous)); !error.empty()) return error;
    return {};
  }
  std::string execute(const std::string& sql) {
    char* message = nullptr;
    if (sqlite3_exec(database_, sql.c_str(), nullptr, nullptr, &message) != SQLITE_OK) {
      std::string error = sql + ": " + (message != nullptr ? message : "?");
      sqlite3_free(message);
      return error;
    }
    return {};
  }
  std::string last_error() const { return database_ != nullptr ? sqlite3_errmsg(database_) : "out of memory"; }
  sqlite3* handle() const { return database_; }

 private:
  sqlite3* database_ = nullptr;
};

class Statement {
 public:
  Statement() = default;
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;
  ~Statement() { finalize(); }
  void finalize() {
    sqlite3_finalize(statement_);
    statement_ = nullptr;
  }
  std::string prepare(Connection& connection, const char* sql) {
    if (sqlite3_prepare_v2(connection.handle(), sql, -1, &statement_, nullptr) != SQLITE_OK) {
      return std::string("prepare ") + sql + ": " + connection.last_error();
    }
    return {};
  }
  sqlite3_stmt* handle() const { return statement_; }

 private:
  sqlite3_stmt* statement_ = nullptr;
};

// Runs a statement with no result rows (BEGIN, COMMIT) and resets it.
bool step_done(Statement& statement) {
  const int code = sqlite3_step(statement.handle());
  sqlite3_reset(statement.handle());
  return code == SQLITE_DONE;
}

void bind_row(sqlite3_stmt* insert, const PayloadSource& payloads, std::uint64_t index, std::int64_t timestamp_ms) {
  const std::string_view key = payloads.key(index);
  const std::string_view payload = payloads.payload(index);
  sqlite3_bind_text(insert, 1, stream_name, stream_name_bytes, SQLITE_STATIC);
  sqlite3_bind_int64(insert, 2, static_cast<sqlite3_int64>(index + 1));
  sqlite3_bind_int64(insert, 3, timestamp_ms);
  sqlite3_bind_text(insert, 4, key.data(), static_cast<int>(key.size()), SQLITE_STATIC);
  sqlite3_bind_blob(insert, 5, payload.data(), static_cast<int>(payload.size()), SQLITE_STATIC);
}

// One transaction of `rows` rows starting at message `first_index`, the timestamp taken once.
// Returns an error message, empty on success.
std::string insert_transaction(Connection& connection, Statement& insert, Statement& begin, Statement& commit,
                               const PayloadSource& payloads, std::uint64_t first_index, std::uint64_t rows) {
  const std::int64_t timestamp_ms = now_ms();
  if (!step_done(begin)) return "BEGIN: " + connection.last_error();
  for (std::uint64_t row = 0; row < rows; ++row) {
    bind_row(insert.handle(), payloads, first_index + row, timestamp_ms);
    const int code = sqlite3_step(insert.handle());
    sqlite3_reset(insert.handle());
    if (code != SQLITE_DONE) {
      std::string error = "INSERT: " + connection.last_error();
      (void)connection.execute("ROLLBACK");
      return error;
    }
  }
  if (!step_done(commit)) return "COMMIT: " + connection.last_error();
  return {};
}

RunResult replay(Connection& connection, std::uint64_t expected_rows, bool paged, const RunLimits& limits) {
  RunResult result;
  Statement select;
  if (auto error = select.prepare(connection, paged ? select_page_sql : select_all_sql); !error.empty()) {
    result.error = error;
    return result;
  }
  sqlite3_stmt* statement = select.handle();
  const std::uint64_t rows_max = std::min(expected_rows, limits.messages_max);
  const double cpu_begin = process_cpu_seconds();
  const auto begin = SteadyClock::now();
  const auto deadline = deadline_after(begin, limits.seconds_max);
  std::int64_t last_seq = 0;
  bool out_of_time = false;
  while (result.messages < rows_max && !out_of_time) {
    sqlite3_bind_text(statement, 1, stream_name, stream_name_bytes, SQLITE_STATIC);
    if (paged) sqlite3_bind_int64(statement, 2, last_seq);
    std::int64_t page = 0;
    int code;
    while ((code = sqlite3_step(statement)) == SQLITE_ROW) {
      last_seq = sqlite3_column_int64(statement, 0);
      const auto* payload = static_cast<const char*>(sqlite3_column_blob(statement, 3));
      const int payload_bytes = sqlite3_column_bytes(statement, 3);
      if (payload_bytes > 0) result.payload_checksum += PayloadSource::touched_byte(std::string_view(payload, payload_bytes));
      ++page;
      ++result.messages;
      if (result.messages >= rows_max) break;
      if (result.messages % clock_check_rows == 0 && SteadyClock::now() >= deadline) {
        out_of_time = true;
        break;
      }
    }
    if (code != SQLITE_ROW && code != SQLITE_DONE) {
      result.error = "select: " + connection.last_error();
      sqlite3_reset(statement);
      break;
    }
    sqlite3_reset(statement);
    if (!paged || page < page_rows) break;
    if (SteadyClock::now() >= deadline) out_of_time = true;
  }
  result.elapsed_seconds = seconds_between(begin, SteadyClock::now());
  result.cpu_seconds = process_cpu_seconds() - cpu_begin;
  result.time_bound_hit = out_of_time && result.messages < rows_max;
  return result;
}

}  // namespace

const char* sqlite_synchronous_name(SqliteSynchronous synchronous) {
  return synchronous == SqliteSynchronous::full ? "FULL" : "NORMAL";
}

SqlitePublishRun sqlite_publish(const std::filesystem::path& directory, const PayloadSource& payloads,
                                std::size_t rows_per_transaction, SqliteSynchronous synchronous, const RunLimits& limits,
                                bool replay_after, const RunLimits& replay_limits) {
  SqlitePublishRun run;
  RunResult& insert_result = run.insert;
  Connection connection;
  Statement insert, begin_transaction, commit_transaction;
  for (const std::string& error :
       {connection.open(directory / database_file_name, synchronous, /*create=*/true), connection.execute(create_table_sql),
        insert.prepare(connection, insert_sql), begin_transaction.prepare(connection, "BEGIN"),
        commit_transaction.prepare(connection, "COMMIT")}) {
    if (!error.empty()) {
      insert_result.error = error;
      return run;
    }
  }

  std::uint64_t next_index = 0;
  insert_result = run_batches(limits.messages_max, rows_per_transaction, deadline_after(SteadyClock::now(), limits.seconds_max),
                              next_index, [&](std::uint64_t first_index, std::uint64_t rows) {
                                return insert_transaction(connection, insert, begin_transaction, commit_transaction, payloads,
                                                          first_index, rows);
                              });

  if (replay_after && insert_result.ok()) {
    // Move the WAL into the database first (untimed), so reads see SQLite's steady state.
    if (auto error = connection.execute("PRAGMA wal_checkpoint(TRUNCATE)"); !error.empty()) {
      run.replay_single_scan.error = error;
    } else {
      run.replay_single_scan = replay(connection, insert_result.messages, /*paged=*/false, replay_limits);
      run.replay_pages_of_1000 = replay(connection, insert_result.messages, /*paged=*/true, replay_limits);
    }
  }
  insert_result.bytes_written = file_bytes_with_suffix(directory, ".db") + file_bytes_with_suffix(directory, ".db-wal");
  return run;
}

namespace {

class SqliteBatchSession final : public PublishSession {
 public:
  SqliteBatchSession(const PayloadSource& payloads, std::size_t rows_per_transaction, SqliteSynchronous synchronous)
      : payloads_(payloads), rows_per_transaction_(rows_per_transaction), synchronous_(synchronous) {}
  std::string name() const override { return "SQLite"; }
  std::string open(const std::filesystem::path& directory) override {
    for (const std::string& error :
         {connection_.open(directory / database_file_name, synchronous_, /*create=*/true), connection_.execute(create_table_sql),
          insert_.prepare(connection_, insert_sql), begin_.prepare(connection_, "BEGIN"),
          commit_.prepare(connection_, "COMMIT")}) {
      if (!error.empty()) return error;
    }
    return {};
  }
  RunResult run_slice(std::uint64_t messages, SteadyClock::time_point deadline) override {
    return run_batches(messages, rows_per_transaction_, deadline, next_index_, [&](std::uint64_t first_index, std::uint64_t rows) {
      return insert_transaction(connection_, insert_, begin_, commit_, payloads_, first_index, rows);
    });
  }
  std::string close() override {
    for (Statement* statement : {&insert_, &begin_, &commit_}) statement->finalize();
    connection_.close();
    return {};
  }

 private:
  const PayloadSource& payloads_;
  std::size_t rows_per_transaction_;
  SqliteSynchronous synchronous_;
  Connection connection_;
  Statement insert_, begin_, commit_;
  std::uint64_t next_index_ = 0;
};

class SqliteConcurrentSession final : public PublishSession {
 public:
  SqliteConcurrentSession(const PayloadSource& payloads, unsigned threads, SqliteSynchronous synchronous)
      : payloads_(payloads), threads_(threads), synchronous_(synchronous), writers_(threads) {}
  std::string name() const override { return "SQLite"; }
  std::string open(const std::filesystem::path& directory) override {
    const auto path = directory / database_file_name;
    for (const std::string& error : {setup_.open(path, synchronous_, /*create=*/true), setup_.execute(create_table_sql)}) {
      if (!error.empty()) return error;
    }
    for (Writer& writer : writers_) {
      std::string error = writer.connection.open(path, synchronous_, /*create=*/false);
      if (error.empty()) error = writer.insert.prepare(writer.connection, insert_sql);
      if (!error.empty()) return error;
    }
    return {};
  }
  // A busy or locked database is retried until the deadline (then the thread gives up).
  RunResult run_slice(std::uint64_t messages, SteadyClock::time_point deadline) override {
    return run_concurrently(threads_, messages, deadline, next_index_, [&](unsigned thread_index, std::uint64_t index, std::string& error) {
      Writer& writer = writers_[thread_index];
      while (SteadyClock::now() < deadline) {
        bind_row(writer.insert.handle(), payloads_, index, now_ms());
        const int code = sqlite3_step(writer.insert.handle());
        sqlite3_reset(writer.insert.handle());
        if (code == SQLITE_DONE) return true;
        if (code != SQLITE_BUSY && code != SQLITE_LOCKED) {
          error = "INSERT: " + writer.connection.last_error();
          return false;
        }
      }
      return false;
    });
  }
  std::string close() override {
    for (Writer& writer : writers_) {
      writer.insert.finalize();
      writer.connection.close();
    }
    setup_.close();
    return {};
  }

 private:
  struct Writer {
    Connection connection;
    Statement insert;
  };
  const PayloadSource& payloads_;
  unsigned threads_;
  SqliteSynchronous synchronous_;
  Connection setup_;
  std::vector<Writer> writers_;  // declared after setup_: closed before it
  std::uint64_t next_index_ = 0;
};

}  // namespace

std::unique_ptr<PublishSession> make_sqlite_batch_session(const PayloadSource& payloads, std::size_t rows_per_transaction,
                                                          SqliteSynchronous synchronous) {
  return std::make_unique<SqliteBatchSession>(payloads, rows_per_transaction, synchronous);
}

std::unique_ptr<PublishSession> make_sqlite_concurrent_session(const PayloadSource& payloads, unsigned threads,
                                                               SqliteSynchronous synchronous) {
  return std::make_unique<SqliteConcurrentSession>(payloads, threads, synchronous);
}

}  // namespace msgstore::bench
