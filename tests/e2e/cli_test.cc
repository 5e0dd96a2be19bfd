// End-to-end tests of the msgstore CLI: every test drives the real binary (MSGSTORE_BINARY)
// on its own temporary data directory and checks stdout, stderr and the exit status.
#include <signal.h>
#include <sys/wait.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <random>

#include <gtest/gtest.h>

#include "e2e/json_fields.h"
#include "e2e/process.h"
#include "support/temporary_directory.h"

namespace msgstore::e2e {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

class CliTest : public ::testing::Test {
 protected:
  CliTest() : binary_(binary_from_environment("MSGSTORE_BINARY")), data_(directory_.path() / "data") {}

  // Runs `msgstore --data <data> args...`.
  ProcessResult run(std::vector<std::string> args, const std::string& input = {}) {
    args.insert(args.begin(), {binary_, "--data", data_.string()});
    return run_process(args, input);
  }
  ProcessResult run_without_data(std::vector<std::string> args, const std::map<std::string, std::string>& environment = {}) {
    args.insert(args.begin(), binary_);
    return run_process(args, {}, environment);
  }

  // Runs and expects exit 0 with nothing on stderr.
  ProcessResult ok(const std::vector<std::string>& args, const std::string& input = {}) {
    ProcessResult result = run(args, input);
    EXPECT_EQ(result.exit_code, 0) << describe(args, result);
    EXPECT_EQ(result.err, "") << describe(args, result);
    return result;
  }

  // Expects a failure with exactly one stderr line "msgstore: <code>: ..." and `exit_code`.
  ProcessResult fails(const std::vector<std::string>& args, int exit_code, const std::string& code,
                      const std::string& input = {}) {
    ProcessResult result = run(args, input);
    EXPECT_EQ(result.exit_code, exit_code) << describe(args, result);
    const auto lines = result.err_lines();
    EXPECT_EQ(lines.size(), 1u) << describe(args, result);
    EXPECT_EQ(result.err.rfind("msgstore: " + code + ": ", 0), 0u) << describe(args, result);
    EXPECT_TRUE(!result.err.empty() && result.err.back() == '\n') << describe(args, result);
    return result;
  }

  static std::string describe(const std::vector<std::string>& args, const ProcessResult& result) {
    std::string command = "msgstore";
    for (const std::string& arg : args) command += " '" + arg + "'";
    return command + "\nexit " + std::to_string(result.exit_code) + " signal " + std::to_string(result.signal_number) +
           "\nstdout:\n" + result.out + "stderr:\n" + result.err;
  }

  fs::path partition_directory(const std::string& stream, int partition) const {
    return data_ / "streams" / stream / ("partition-" + std::to_string(partition));
  }
  std::vector<fs::path> segment_files(const std::string& stream, int partition, const std::string& extension) const {
    std::vector<fs::path> files;
    for (const auto& entry : fs::directory_iterator(partition_directory(stream, partition))) {
      if (entry.path().extension() == extension) files.push_back(entry.path());
    }
    std::sort(files.begin(), files.end());
    return files;
  }

  std::string binary_;
  testing::TemporaryDirectory directory_{"msgstore-cli-test"};
  fs::path data_;
};

TEST_F(CliTest, HelpForEveryCommand) {
  for (std::vector<std::string> args :
       {std::vector<std::string>{"--help"}, {"stream", "--help"}, {"stream", "create", "--help"}, {"stream", "update", "--help"},
        {"stream", "list", "--help"}, {"stream", "info", "--help"}, {"stream", "delete", "--help"}, {"publish", "--help"},
        {"read", "--help"}, {"tail", "--help"}, {"verify", "--help"}, {"dump", "--help"}, {"demo", "--help"}}) {
    ProcessResult result = ok(args);
    EXPECT_NE(result.out.find("Usage:"), std::string::npos) << describe(args, result);
  }
  EXPECT_NE(ok({"stream", "create", "--help"}).out.find("--subjects"), std::string::npos);
  EXPECT_NE(ok({"read", "--help"}).out.find("--from-time"), std::string::npos);
}

TEST_F(CliTest, StreamLifecycle) {
  ProcessResult created = ok({"stream", "create", "orders", "--subjects", "orders.*,orders.>", "--partitions", "2",
                              "--max-age", "7d", "--max-bytes", "1GiB", "--max-messages", "1000", "--fsync", "interval:100",
                              "--max-message-bytes", "64KiB", "--segment-bytes", "1MiB"});
  EXPECT_EQ(created.out,
            R"({"name":"orders","subjects":["orders.*","orders.>"],"partitions":2,"max_age_ms":604800000,)"
            R"("max_bytes":1073741824,"max_messages":1000,"fsync":"interval:100","max_message_bytes":65536,)"
            R"("segment_bytes":1048576,"segment_age_ms":604800000,"indexes_enabled":true,"indexed_headers":[],)"
            R"("dedup_window_ms":120000,"cleanup":"delete","tombstone_retention_ms":86400000})"
            "\n");
  ok({"stream", "create", "audit", "--subjects", "audit.>", "--max-age", "3600s"});

  ProcessResult listed = ok({"stream", "list"});
  ASSERT_EQ(listed.out_lines().size(), 2u) << listed.out;
  EXPECT_EQ(json_text(listed.out_lines()[0], "name"), "audit");
  EXPECT_EQ(json_number(listed.out_lines()[0], "max_age_ms"), 3'600'000u);
  EXPECT_EQ(json_text(listed.out_lines()[1], "name"), "orders");
  ProcessResult plain = ok({"stream", "list", "--plain"});
  EXPECT_NE(plain.out.find("orders\tsubjects=orders.*,orders.>\tpartitions=2"), std::string::npos) << plain.out;

  ok({"publish", "orders.created", "one", "two", "three"});
  ProcessResult info = ok({"stream", "info", "orders"});
  ASSERT_EQ(info.out_lines().size(), 1u);
  EXPECT_NE(info.out.find(R"("messages":3,"partitions":[{"partition":0,"first_offset":0,)"), std::string::npos) << info.out;
  EXPECT_NE(info.out.find(R"({"partition":1,"first_offset":0,)"), std::string::npos) << info.out;
  EXPECT_NE(info.out.find(R"("damage":[])"), std::string::npos) << info.out;
  EXPECT_NE(info.out.find(R"("segments":1)"), std::string::npos) << info.out;

  // update changes only what is given; partitions may grow.
  ProcessResult updated = ok({"stream", "update", "orders", "--max-age", "2h", "--partitions", "3", "--fsync", "always"});
  EXPECT_EQ(json_number(updated.out, "max_age_ms"), 7'200'000u);
  EXPECT_EQ(json_number(updated.out, "partitions"), 3u);
  EXPECT_EQ(json_number(updated.out, "max_bytes"), 1073741824u);
  EXPECT_EQ(json_text(updated.out, "fsync"), "always");
  EXPECT_NE(ok({"stream", "info", "orders"}).out.find(R"({"partition":2,)"), std::string::npos);
  fails({"stream", "update", "orders", "--partitions", "1"}, 1, "invalid_argument");

  EXPECT_EQ(ok({"stream", "delete", "orders"}).out, "{\"deleted\":\"orders\"}\n");
  listed = ok({"stream", "list"});
  ASSERT_EQ(listed.out_lines().size(), 1u);
  EXPECT_EQ(json_text(listed.out, "name"), "audit");
  fails({"stream", "info", "orders"}, 1, "stream_not_found");
  fails({"stream", "delete", "orders"}, 1, "stream_not_found");
  EXPECT_FALSE(fs::exists(data_ / "streams" / "orders"));
}

TEST_F(CliTest, PublishPoliciesMessageIdExpectedOffsetAndTtl) {
  ok({"stream", "create", "ledger", "--subjects", "ledger.>", "--dedup-window", "10m"});
  EXPECT_EQ(json_number(ok({"stream", "info", "ledger"}).out, "dedup_window_ms"), 600'000u);

  // Duplicate suppression: the repeat acks the original position and stores nothing.
  EXPECT_EQ(ok({"publish", "ledger.entry", "--message-id", "tx-1", "credit 5"}).out,
            "{\"stream\":\"ledger\",\"partition\":0,\"offset\":0,\"index\":0}\n");
  EXPECT_EQ(ok({"publish", "ledger.entry", "--message-id", "tx-1", "credit 5 (retry)"}).out,
            "{\"stream\":\"ledger\",\"partition\":0,\"offset\":0,\"index\":0,\"duplicate\":true}\n");
  // ...also in a later process: the window is rebuilt from the log on open.
  EXPECT_NE(ok({"publish", "ledger.entry", "--message-id", "tx-1", "again"}).out.find("\"duplicate\":true"), std::string::npos);

  // Conditional append: the last offset is 0 now.
  ProcessResult stale = fails({"publish", "ledger.entry", "--expected-offset", "empty", "debit 2"}, 1, "expected_offset_mismatch");
  EXPECT_NE(stale.err.find("(actual_offset=0)"), std::string::npos) << stale.err;
  fails({"publish", "ledger.entry", "--expected-offset", "7", "debit 2"}, 1, "expected_offset_mismatch");
  EXPECT_EQ(json_number(ok({"publish", "ledger.entry", "--expected-offset", "0", "debit 2"}).out, "offset"), 1u);
  ok({"stream", "create", "fresh", "--subjects", "fresh.>"});
  ProcessResult empty = fails({"publish", "fresh.x", "--expected-offset", "3", "x"}, 1, "expected_offset_mismatch");
  EXPECT_NE(empty.err.find("(actual_offset=empty)"), std::string::npos) << empty.err;
  ok({"publish", "fresh.x", "--expected-offset", "empty", "x"});

  // Time to live: an expired message is not read; a live one is, with its header.
  ok({"publish", "ledger.entry", "--ttl", "1ms", "--timestamp-ms", "1000", "long gone"});
  ok({"publish", "ledger.entry", "--ttl", "1h", "still here"});
  EXPECT_EQ(ok({"read", "ledger", "--format", "text"}).out, "credit 5\ndebit 2\nstill here\n");
  EXPECT_NE(ok({"read", "ledger"}).out.find("Msgstore-TTL-Ms"), std::string::npos);

  // Bad values are usage errors (exit 2); nothing was stored by any failure above.
  fails({"publish", "ledger.entry", "--expected-offset", "-1", "x"}, 2, "invalid_argument");
  fails({"publish", "ledger.entry", "--expected-offset", "soon", "x"}, 2, "invalid_argument");
  fails({"publish", "ledger.entry", "--ttl", "0", "x"}, 2, "invalid_argument");
  fails({"publish", "ledger.entry", "--ttl", "forever", "x"}, 2, "invalid_argument");
  fails({"publish", "ledger.entry", "--message-id", "a", "x", "y"}, 2, "invalid_argument");
  fails({"publish", "ledger.entry", "--message-id", "a"}, 2, "invalid_argument", "from stdin\n");
  fails({"publish", "ledger.entry", "--message-id", "", "x"}, 1, "invalid_argument");
  fails({"stream", "create", "bad", "--subjects", "bad.>", "--dedup-window", "30d"}, 2, "invalid_argument");
  EXPECT_EQ(ok({"read", "ledger", "--format", "text"}).out, "credit 5\ndebit 2\nstill here\n");
}

TEST_F(CliTest, PublishArgumentsAndStdinThenRead) {
  ok({"stream", "create", "events", "--subjects", "events.>"});
  ProcessResult published = ok({"publish", "events.created", "first", "second"});
  EXPECT_EQ(published.out,
            "{\"stream\":\"events\",\"partition\":0,\"offset\":0,\"index\":0}\n"
            "{\"stream\":\"events\",\"partition\":0,\"offset\":1,\"index\":1}\n");
  // stdin: one message per line, batched 2 at a time; the last line has no newline.
  published = ok({"publish", "events.bulk", "--batch", "2"}, "line a\nline b\n\nline d\nline e");
  const auto acks = published.out_lines();
  ASSERT_EQ(acks.size(), 5u) << published.out;
  for (std::uint64_t i = 0; i < acks.size(); ++i) {
    EXPECT_EQ(json_number(acks[i], "index"), i);
    EXPECT_EQ(json_number(acks[i], "offset"), i + 2);
  }
  EXPECT_EQ(ok({"publish", "events.quiet", "--quiet", "shh"}).out, "");
  // Keys, headers, timestamps and awkward payloads round-trip through JSON.
  ok({"publish", "events.special", "--key", "customer-7", "--header", "trace=abc", "--header", "kind=a=b", "--timestamp-ms",
      "1714566600250", "--", "quote\" backslash\\ tab\t bell\x07 unicode \xC3\xA9 -dash"});
  ok({"publish", "events.binary", "--quiet"}, std::string("\xFF\xFE\x00\x01", 4) + "\n");

  ProcessResult text = ok({"read", "events", "--format", "text"});
  EXPECT_EQ(text.out, std::string("first\nsecond\nline a\nline b\n\nline d\nline e\nshh\n") +
                          "quote\" backslash\\ tab\t bell\x07 unicode \xC3\xA9 -dash\n" + std::string("\xFF\xFE\x00\x01", 4) + "\n");

  ProcessResult json = ok({"read", "events"});
  const auto lines = json.out_lines();
  ASSERT_EQ(lines.size(), 10u) << json.out;
  EXPECT_EQ(json_number(lines[0], "offset"), 0u);
  EXPECT_EQ(json_text(lines[0], "payload"), "first");
  EXPECT_EQ(json_text(lines[0], "subject"), "events.created");
  EXPECT_NE(lines[0].find(R"("key":null,"headers":{})"), std::string::npos) << lines[0];
  EXPECT_EQ(lines[8],
            R"({"stream":"events","partition":0,"offset":8,"timestamp_ms":1714566600250,"subject":"events.special",)"
            R"("key":"customer-7","headers":{"trace":"abc","kind":"a=b"},)"
            R"("payload":"quote\" backslash\\ tab\t bell\u0007 unicode )" "\xC3\xA9" R"( -dash"})");
  EXPECT_EQ(json_text(lines[9], "payload_base64"), "//4AAQ==");
  EXPECT_EQ(lines[9].find("\"payload\":"), std::string::npos);
}

TEST_F(CliTest, InteractiveStdinIsAckedWithoutWaitingForAFullBatch) {
  ok({"stream", "create", "chat", "--subjects", "chat.>"});
  ChildProcess publisher({binary_, "--data", data_.string(), "publish", "chat.room", "--batch", "100"});
  ASSERT_TRUE(publisher.write_input("hello\n"));
  auto ack = publisher.read_line(10s);
  ASSERT_TRUE(ack.has_value()) << "a partial batch must be published when stdin has nothing more ready";
  EXPECT_EQ(*ack, R"({"stream":"chat","partition":0,"offset":0,"index":0})");
  ASSERT_TRUE(publisher.write_input("again\n"));
  ack = publisher.read_line(10s);
  ASSERT_TRUE(ack.has_value());
  EXPECT_EQ(json_number(*ack, "index"), 1u);
  publisher.close_input();
  const int status = publisher.wait();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
}

TEST_F(CliTest, ReadFromOffsetTimePartitionAndLimit) {
  ok({"stream", "create", "ticks", "--subjects", "ticks.*"});
  // Explicit timestamps so --from-time is deterministic.
  for (int i = 0; i < 6; ++i) {
    ok({"publish", "ticks.t", "--timestamp-ms", std::to_string(1'000'000 + i * 1000), "tick-" + std::to_string(i)});
  }
  EXPECT_EQ(ok({"read", "ticks", "--format", "text"}).out, "tick-0\ntick-1\ntick-2\ntick-3\ntick-4\ntick-5\n");
  EXPECT_EQ(ok({"read", "ticks", "--from-offset", "4", "--format", "text"}).out, "tick-4\ntick-5\n");
  EXPECT_EQ(ok({"read", "ticks", "--from-offset", "1", "--limit", "2", "--format", "text"}).out, "tick-1\ntick-2\n");
  EXPECT_EQ(ok({"read", "ticks", "--from-offset", "6"}).out, "");  // the end is a valid place to start
  // 1'003'000 ms = 1970-01-01T00:16:43Z.
  EXPECT_EQ(ok({"read", "ticks", "--from-time", "1003000", "--format", "text"}).out, "tick-3\ntick-4\ntick-5\n");
  EXPECT_EQ(ok({"read", "ticks", "--from-time", "1970-01-01T00:16:43Z", "--format", "text"}).out, "tick-3\ntick-4\ntick-5\n");
  EXPECT_EQ(ok({"read", "ticks", "--from-time", "1970-01-01T01:16:42.500+01:00", "--format", "text"}).out,
            "tick-3\ntick-4\ntick-5\n");
  EXPECT_EQ(ok({"read", "ticks", "--from-time", "2100-01-01"}).out, "");
  EXPECT_EQ(ok({"read", "ticks", "--from-end"}).out, "");
  EXPECT_EQ(ok({"read", "ticks", "--from-beginning", "--limit", "2"}).out_lines().size(), 2u);
  ProcessResult one = ok({"read", "ticks", "--from-offset", "2", "--limit", "1"});
  EXPECT_EQ(json_number(one.out, "timestamp_ms"), 1'002'000u);
  EXPECT_EQ(json_text(one.out, "subject"), "ticks.t");

  // Two partitions: round robin within one publish spreads the messages.
  ok({"stream", "create", "spread", "--subjects", "spread.>", "--partitions", "2"});
  ProcessResult acks = ok({"publish", "spread.x", "a", "b", "c", "d"});
  EXPECT_EQ(acks.out_lines().size(), 4u);
  ProcessResult all = ok({"read", "spread"});
  const auto lines = all.out_lines();
  ASSERT_EQ(lines.size(), 4u) << all.out;
  // Partition 0 first, each partition in offset order.
  EXPECT_EQ(json_number(lines[0], "partition"), 0u);
  EXPECT_EQ(json_number(lines[0], "offset"), 0u);
  EXPECT_EQ(json_number(lines[1], "partition"), 0u);
  EXPECT_EQ(json_number(lines[1], "offset"), 1u);
  EXPECT_EQ(json_number(lines[2], "partition"), 1u);
  EXPECT_EQ(json_number(lines[3], "partition"), 1u);
  ProcessResult second = ok({"read", "spread", "--partition", "1", "--from-offset", "1"});
  ASSERT_EQ(second.out_lines().size(), 1u) << second.out;
  EXPECT_EQ(json_number(second.out, "partition"), 1u);
  EXPECT_EQ(json_number(second.out, "offset"), 1u);
  EXPECT_EQ(second.out, lines[3] + "\n");
}

TEST_F(CliTest, BadInputGivesOneLineErrorAndNonZeroExit) {
  ok({"stream", "create", "small", "--subjects", "small.>", "--max-message-bytes", "100"});
  // Usage errors: exit 2.
  fails({"stream", "create", "../x", "--subjects", "x.>"}, 2, "invalid_name");
  fails({"stream", "create", "bad/name", "--subjects", "x.>"}, 2, "invalid_name");
  fails({"read", "../x"}, 2, "invalid_name");
  fails({"stream", "create", "x", "--subjects", "a..b"}, 2, "invalid_argument");
  fails({"stream", "create", "x"}, 2, "invalid_argument");  // --subjects missing
  fails({"stream", "create", "x", "--subjects", "x.>", "--partitions", "many"}, 2, "invalid_argument");
  fails({"stream", "create", "x", "--subjects", "x.>", "--partitions", "0"}, 2, "invalid_argument");
  fails({"stream", "create", "x", "--subjects", "x.>", "--max-age", "7x"}, 2, "invalid_argument");
  fails({"stream", "create", "x", "--subjects", "x.>", "--max-bytes", "lots"}, 2, "invalid_argument");
  fails({"stream", "create", "x", "--subjects", "x.>", "--fsync", "sometimes"}, 2, "invalid_argument");
  fails({"stream", "create", "x", "--subjects", "x.>", "--segment-bytes", "100"}, 2, "invalid_argument");
  fails({"stream", "create", "x", "--subjects", "x.>", "--bogus-flag"}, 2, "invalid_argument");
  fails({"read", "small", "--from-offset", "-3"}, 2, "invalid_argument");
  fails({"read", "small", "--from-offset", "abc"}, 2, "invalid_argument");
  fails({"read", "small", "--from-offset", "1", "--from-end"}, 2, "invalid_argument");
  fails({"read", "small", "--from-time", "yesterday"}, 2, "invalid_argument");
  fails({"read", "small", "--format", "xml"}, 2, "invalid_argument");
  fails({"publish", "small.x", "--header", "novalue", "m"}, 2, "invalid_argument");
  fails({"publish", "small.x", "--batch", "0", "m"}, 2, "invalid_argument");
  fails({"frobnicate"}, 2, "invalid_argument");
  fails({}, 2, "invalid_argument");
  // Operational errors: exit 1.
  fails({"stream", "create", "small", "--subjects", "small.>"}, 1, "stream_exists");
  fails({"read", "nope"}, 1, "stream_not_found");
  fails({"stream", "info", "nope"}, 1, "stream_not_found");
  fails({"verify", "nope"}, 1, "stream_not_found");
  fails({"publish", "nobody.listens", "m"}, 1, "no_matching_stream");
  fails({"publish", "small.*", "m"}, 1, "invalid_argument");
  ProcessResult too_large = fails({"publish", "small.x", std::string(200, 'a')}, 1, "message_too_large");
  EXPECT_NE(too_large.err.find("at most 100"), std::string::npos) << too_large.err;
  EXPECT_EQ(too_large.out, "");
  fails({"publish", "small.x", "--batch", "3"}, 1, "message_too_large", std::string(200, 'b') + "\nok\nok\n");
  fails({"read", "small", "--from-offset", "5"}, 1, "offset_out_of_range");
  fails({"read", "small", "--partition", "3"}, 1, "partition_not_found");
  fails({"dump", (directory_.path() / "missing.log").string()}, 1, "io_error");
  // A data directory that does not exist is not created by commands that only look.
  ProcessResult missing = run_without_data({"--data", (directory_.path() / "nowhere").string(), "stream", "list"});
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_EQ(missing.err_lines().size(), 1u) << missing.err;
  EXPECT_FALSE(fs::exists(directory_.path() / "nowhere"));
  // Nothing was half-published by the failures above.
  EXPECT_EQ(ok({"read", "small", "--format", "text"}).out, "");
}

TEST_F(CliTest, DataDirectoryFromEnvironmentAndAfterSubcommand) {
  ProcessResult created = run_without_data({"stream", "create", "env", "--subjects", "env.>"}, {{"MSGSTORE_DATA", data_.string()}});
  EXPECT_EQ(created.exit_code, 0) << created.err;
  ProcessResult listed = run_without_data({"stream", "list", "--data", data_.string()});
  EXPECT_EQ(listed.exit_code, 0) << listed.err;
  EXPECT_EQ(json_text(listed.out, "name"), "env");
}

TEST_F(CliTest, VerifyCleanThenNamesTheDamagedStreamAndPartition) {
  ok({"stream", "create", "ledger", "--subjects", "ledger.>", "--segment-bytes", "4KiB", "--fsync", "never"});
  ok({"stream", "create", "other", "--subjects", "other.>"});
  std::string input;
  for (int i = 0; i < 300; ++i) input += "entry-" + std::to_string(i) + "\n";
  ok({"publish", "ledger.entry", "--batch", "10", "--quiet"}, input);
  ok({"publish", "other.x", "fine"});

  ProcessResult clean = ok({"verify"});
  EXPECT_NE(clean.out.find("\nclean\n"), std::string::npos) << clean.out;
  EXPECT_NE(clean.out.find("301 messages"), std::string::npos) << clean.out;
  EXPECT_NE(ok({"verify", "ledger"}).out.find("300 messages"), std::string::npos);

  const auto segments = segment_files("ledger", 0, ".log");
  ASSERT_GE(segments.size(), 2u) << "the stream should have rolled into several segments";
  const fs::path sealed = segments.front();
  {
    std::fstream file(sealed, std::ios::in | std::ios::out | std::ios::binary);
    file.seekg(1000);
    char byte = 0;
    file.read(&byte, 1);
    byte = static_cast<char>(byte ^ 0x5A);
    file.seekp(1000);
    file.write(&byte, 1);
  }
  ProcessResult damaged = fails({"verify"}, 1, "corruption");
  EXPECT_NE(damaged.out.find("problem: ledger/0 " + sealed.filename().string()), std::string::npos) << damaged.out;
  EXPECT_NE(damaged.out.find("damaged: "), std::string::npos) << damaged.out;
  EXPECT_NE(damaged.err.find("ledger/0"), std::string::npos) << damaged.err;
  fails({"verify", "ledger"}, 1, "corruption");
  ProcessResult other = ok({"verify", "other"});
  EXPECT_NE(other.out.find("clean"), std::string::npos);
  // Reading stops at the damage with a clear error; the batches before it are served.
  ProcessResult read = fails({"read", "ledger", "--format", "text"}, 1, "corruption");
  EXPECT_FALSE(read.out.empty());
  EXPECT_EQ(read.out.rfind("entry-0\n", 0), 0u);
  // dump points at the damaged batch and exits 1 without crashing.
  ProcessResult dump = fails({"dump", sealed.string()}, 1, "corruption");
  EXPECT_NE(dump.out.find("DAMAGE"), std::string::npos) << dump.out;
  EXPECT_NE(dump.out.find("batch at byte 32: base_offset 0,"), std::string::npos) << dump.out;
}

TEST_F(CliTest, DumpListsSegmentsAndIndexesAndSurvivesGarbage) {
  ok({"stream", "create", "logs", "--subjects", "logs.>"});
  ok({"publish", "logs.app", "--key", "k", "--header", "h=v", "alpha", "beta"});
  const fs::path segment = segment_files("logs", 0, ".log").at(0);
  ProcessResult dump = ok({"dump", segment.string()});
  EXPECT_NE(dump.out.find("header: magic 0x4753534d (MSSG), version 1"), std::string::npos) << dump.out;
  EXPECT_NE(dump.out.find("batch at byte 32: base_offset 0, last_offset 0, 1 record(s)"), std::string::npos) << dump.out;
  EXPECT_NE(dump.out.find("crc ok"), std::string::npos) << dump.out;
  EXPECT_NE(dump.out.find("summary: 2 batch(es), 2 record(s)"), std::string::npos) << dump.out;
  EXPECT_EQ(dump.out.find("record {"), std::string::npos);
  ProcessResult records = ok({"dump", "--records", segment.string()});
  EXPECT_NE(records.out.find(R"(record {"offset":1,)"), std::string::npos) << records.out;
  EXPECT_NE(records.out.find(R"("key":"k","headers":{"h":"v"},"payload":"beta"})"), std::string::npos) << records.out;

  ProcessResult offsets = ok({"dump", segment_files("logs", 0, ".offset_index").at(0).string()});
  EXPECT_NE(offsets.out.find("entry 0 at byte 24: relative_offset 0 (offset 0), position 32, crc ok"), std::string::npos)
      << offsets.out;
  ProcessResult times = ok({"dump", segment_files("logs", 0, ".time_index").at(0).string()});
  EXPECT_NE(times.out.find("time index"), std::string::npos) << times.out;

  // Garbage of many shapes: damage is reported, the tool never crashes.
  std::mt19937 random(12345);
  const std::string original = msgstore::testing::read_file(segment);
  for (int round = 0; round < 40; ++round) {
    std::string bytes;
    switch (round % 4) {
      case 0: bytes = original.substr(0, random() % original.size()); break;  // truncated
      case 1:                                                               // random bytes
        bytes.resize(random() % 600);
        for (char& byte : bytes) byte = static_cast<char>(random());
        break;
      case 2:  // valid header, garbage after it
        bytes = original.substr(0, 32);
        for (int i = 0; i < 200; ++i) bytes += static_cast<char>(random());
        break;
      case 3:  // original with random bytes flipped
        bytes = original;
        for (int i = 0; i < 3; ++i) bytes[random() % bytes.size()] ^= static_cast<char>(1 + random() % 255);
        break;
    }
    const fs::path garbage = directory_.path() / ("garbage-" + std::to_string(round) + ".log");
    msgstore::testing::write_file(garbage, bytes);
    ProcessResult result = run({"dump", "--records", garbage.string()});
    EXPECT_EQ(result.signal_number, 0) << describe({"dump", garbage.string()}, result);
    EXPECT_TRUE(result.exit_code == 0 || result.exit_code == 1) << describe({"dump", garbage.string()}, result);
    EXPECT_LE(result.err_lines().size(), 1u) << result.err;
    if (round % 4 == 1 || round % 4 == 2) {  // truncation at a batch boundary or a lucky flip can be valid
      EXPECT_EQ(result.exit_code, 1) << describe({"dump", garbage.string()}, result);
    }
  }
  fails({"dump", data_.string()}, 2, "invalid_argument");  // a directory
}

TEST_F(CliTest, TailFollowsUntilLimitOrSignal) {
  ok({"stream", "create", "feed", "--subjects", "feed.>", "--partitions", "2"});
  ok({"publish", "feed.a", "one", "two", "three"});
  ProcessResult limited = ok({"tail", "feed", "--from-beginning", "--limit", "2", "--format", "text"});
  EXPECT_EQ(limited.out_lines().size(), 2u) << limited.out;
  ProcessResult follow = ok({"read", "feed", "--follow", "--limit", "3", "--format", "text"});
  auto lines = follow.out_lines();
  std::sort(lines.begin(), lines.end());
  EXPECT_EQ(lines, (std::vector<std::string>{"one", "three", "two"}));

  for (int signal_number : {SIGTERM, SIGINT}) {
    ChildProcess tail({binary_, "--data", data_.string(), "tail", "feed", "--from-beginning", "--format", "text"});
    std::vector<std::string> seen;
    while (seen.size() < 3) {
      auto line = tail.read_line(10s);
      ASSERT_TRUE(line.has_value()) << "tail printed only " << seen.size() << " lines";
      seen.push_back(*line);
    }
    tail.send_signal(signal_number);
    const int status = tail.wait();
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "signal " << signal_number << " status " << status;
  }
}

TEST_F(CliTest, DemoRunsAndMatches) {
  ProcessResult demo = ok({"demo"});
  EXPECT_NE(demo.out.find("demo OK"), std::string::npos) << demo.out;
  demo = ok({"demo"});  // again, on the existing stream
  EXPECT_NE(demo.out.find("stream 'demo' exists"), std::string::npos) << demo.out;
  EXPECT_NE(demo.out.find("demo OK"), std::string::npos) << demo.out;
  ok({"verify"});
}

TEST_F(CliTest, EraseHidesAtOnceRemovesBytesAndAudits) {
  ok({"stream", "create", "people", "--subjects", "people.>", "--segment-bytes", "4KiB"});
  std::string lines;
  for (int i = 0; i < 60; ++i) lines += "record-" + std::to_string(i) + (i % 3 == 0 ? "-SECRET-alice" : "-public") + "\n";
  ok({"publish", "-q", "--key", "alice", "people.update"}, lines);
  ok({"publish", "-q", "--key", "bob", "people.update", "bob-keeps-this"});
  // Usage errors: no criterion, two criteria, no actor, a malformed header.
  fails({"erase", "--stream", "people", "--actor", "dpo"}, 2, "invalid_argument");
  fails({"erase", "--stream", "people", "--key", "alice", "--header", "a=b", "--actor", "dpo"}, 2, "invalid_argument");
  fails({"erase", "--stream", "people", "--header", "novalue", "--actor", "dpo"}, 2, "invalid_argument");
  ProcessResult background = ok({"erase", "--stream", "people", "--key", "alice", "--actor", "dpo", "--background"});
  ASSERT_EQ(background.out_lines().size(), 1u) << background.out;
  EXPECT_EQ(json_number(background.out, "matched_messages"), 60u);
  // Unreadable at once, also for dump --records, while the bytes are still there.
  ProcessResult read = ok({"read", "people"});
  EXPECT_EQ(read.out.find("alice"), std::string::npos) << read.out;
  EXPECT_NE(read.out.find("bob-keeps-this"), std::string::npos);
  const fs::path first_segment = segment_files("people", 0, ".log").front();
  ProcessResult dumped = ok({"dump", "--records", first_segment.string()});
  EXPECT_EQ(dumped.out.find("SECRET"), std::string::npos) << dumped.out;
  EXPECT_NE(dumped.out.find(": erased"), std::string::npos) << dumped.out;
  // Erasing again on demand finishes the removal and reports it.
  ProcessResult now = ok({"erase", "--stream", "people", "--key", "alice", "--actor", "dpo"});
  EXPECT_EQ(json_text(now.out_lines().back(), "event"), "done") << now.out;
  EXPECT_EQ(json_number(now.out_lines().back(), "offsets_pending"), 0u) << now.out;
  for (const auto& entry : fs::recursive_directory_iterator(data_)) {
    if (!entry.is_regular_file()) continue;
    EXPECT_EQ(testing::read_file(entry.path()).find("SECRET-alice"), std::string::npos) << entry.path();
  }
  ProcessResult audit = ok({"read", "_audit"});
  ASSERT_EQ(audit.out_lines().size(), 2u) << audit.out;
  EXPECT_NE(audit.out.find("dpo"), std::string::npos);
  ok({"verify"});
}

TEST_F(CliTest, CompactKeepsTheLatestPerKey) {
  ok({"stream", "create", "kv", "--subjects", "kv.>", "--cleanup", "compact", "--tombstone-retention", "1h",
      "--segment-bytes", "4KiB"});
  std::string values;
  for (int i = 0; i < 40; ++i) values += "value-" + std::to_string(i) + "\n";
  ok({"publish", "-q", "--key", "a", "kv.set"}, values);
  ok({"publish", "-q", "--key", "b", "kv.set", "only-b"});
  fails({"compact", "--stream", "nope"}, 1, "stream_not_found");
  ProcessResult compacted = ok({"compact", "--stream", "kv"});
  EXPECT_EQ(json_number(compacted.out, "messages_removed"), 39u) << compacted.out;
  ProcessResult read = ok({"read", "kv"});
  ASSERT_EQ(read.out_lines().size(), 2u) << read.out;
  EXPECT_NE(read.out.find("value-39"), std::string::npos);
  EXPECT_NE(read.out.find("only-b"), std::string::npos);
  EXPECT_EQ(json_number(read.out_lines()[0], "offset"), 39u);  // offsets kept
  ok({"stream", "create", "plain", "--subjects", "plain.>"});
  fails({"compact", "--stream", "plain"}, 1, "invalid_argument");
  fails({"stream", "create", "bad", "--subjects", "bad.>", "--cleanup", "sometimes"}, 2, "invalid_argument");
  ok({"verify"});
}

TEST_F(CliTest, QueryFindsPagesAndExplains) {
  ok({"stream", "create", "orders", "--subjects", "orders.>", "--segment-bytes", "4KiB", "--index-headers", "customer"});
  std::string input;
  for (int i = 0; i < 90; ++i) input += "payload " + std::to_string(i) + (i % 30 == 0 ? " needle" : "") + "\n";
  ok({"publish", "-q", "orders.created", "--key", "order-7", "--header", "customer=acme", "--batch", "4"}, input);
  ok({"publish", "-q", "orders.paid", "--key", "order-8", "--header", "customer=initech"}, input);

  ProcessResult page = ok({"query", "--stream", "orders", "--key", "order-7", "--newest-first", "--limit", "5", "--explain"});
  auto lines = page.out_lines();
  ASSERT_EQ(lines.size(), 7u) << page.out;
  EXPECT_NE(lines[0].find(R"("offset":89,)"), std::string::npos) << lines[0];
  EXPECT_NE(lines[4].find(R"("offset":85,)"), std::string::npos) << lines[4];
  ASSERT_EQ(lines[5].rfind(R"({"next_cursor":")", 0), 0u) << lines[5];
  EXPECT_NE(lines[6].find(R"("plan":"key index")"), std::string::npos) << lines[6];
  const std::string cursor = lines[5].substr(16, lines[5].size() - 18);
  ProcessResult next = ok({"query", "--stream", "orders", "--key", "order-7", "--newest-first", "--limit", "5", "--cursor", cursor});
  EXPECT_NE(next.out_lines().at(0).find(R"("offset":84,)"), std::string::npos) << next.out;

  ProcessResult found = ok({"query", "--stream", "orders", "--header", "customer=initech", "--contains", "needle"});
  EXPECT_EQ(found.out_lines().size(), 3u) << found.out;

  fails({"query", "--stream", "orders", "--header", "region=eu"}, 2, "invalid_argument");
  fails({"query", "--stream", "orders", "--cursor", "garbage"}, 2, "invalid_argument");
  fails({"query", "--stream", "orders", "--from-offset", "9", "--to-offset", "3"}, 2, "invalid_argument");
  fails({"query", "--stream", "orders", "--subject", "orders.>.x"}, 2, "invalid_argument");
  fails({"query", "--stream", "nope"}, 1, "stream_not_found");
  ok({"query", "--stream", "orders", "--header", "region=eu", "--scan"});
}

}  // namespace
}  // namespace msgstore::e2e
