// bench/sqlite_workloads.h: the SQLite baseline, a "JDBC-style message store".
//
// Schema (one table, as an ORM would create it; a rowid table plus the primary key index):
//   messages(stream TEXT NOT NULL, seq INTEGER NOT NULL, ts INTEGER NOT NULL, key TEXT,
//            payload BLOB NOT NULL, PRIMARY KEY(stream, seq))
// journal_mode=WAL, a prepared INSERT with bound parameters, explicit BEGIN/COMMIT around
// each group of rows. Every row is in stream "bench" with seq 1, 2, 3, ..., the same key and
// payload bytes msgstore gets (harness.h, PayloadSource).
#pragma once

#include <cstddef>
#include <filesystem>
#include <memory>
#include <string>

#include "harness.h"

namespace msgstore::bench {

enum class SqliteSynchronous : std::uint8_t { normal, full };
const char* sqlite_synchronous_name(SqliteSynchronous synchronous);

struct SqlitePublishRun {
  RunResult insert;
  RunResult replay_single_scan;    // one SELECT ... WHERE stream=? ORDER BY seq over everything
  RunResult replay_pages_of_1000;  // SELECT ... WHERE stream=? AND seq>? ORDER BY seq LIMIT 1000, repeated
};

// One connection inserts limits.messages_max rows, `rows_per_transaction` per transaction.
// With `replay_after`, the WAL is checkpointed (untimed) and everything is read back twice.
SqlitePublishRun sqlite_publish(const std::filesystem::path& directory, const PayloadSource& payloads,
                                std::size_t rows_per_transaction, SqliteSynchronous synchronous, const RunLimits& limits,
                                bool replay_after, const RunLimits& replay_limits);

// Sessions for run_interleaved (harness.h); `payloads` must outlive them.
// One connection; `rows_per_transaction` rows per BEGIN..COMMIT.
std::unique_ptr<PublishSession> make_sqlite_batch_session(const PayloadSource& payloads, std::size_t rows_per_transaction,
                                                          SqliteSynchronous synchronous);
// `threads` threads, each with its own connection (busy_timeout set), insert one row per
// transaction (autocommit INSERT); a slice ends when its rows are committed between them or
// its time is up. Counts committed rows.
std::unique_ptr<PublishSession> make_sqlite_concurrent_session(const PayloadSource& payloads, unsigned threads,
                                                               SqliteSynchronous synchronous);

}  // namespace msgstore::bench
