// I/O fault injection into the real binary with strace: `msgstore publish` (fsync=always,
// reading messages from stdin) runs under
//   strace -f -y -e trace=<syscall>,write -e inject=<syscall>:error=<errno>:when=N
// for N over the range of calls that syscall sees in a clean run (open, recovery, appends,
// segment rolls, checkpoints, close), for fdatasync, pwrite64, write (the ack lines on stdout),
// rename, fsync and openat with EIO, and pwrite64 with ENOSPC. For each N the test checks:
//
//   - Fail-stop: when the injected call hit anything but a derived file, the publisher prints
//     no ack line after the failed call (from the strace log: no write(1, ...) after the line
//     marked "(INJECTED)"), exits with status 1 and names the error on stderr (log_failed or
//     io_error for EIO, no_space for ENOSPC on a segment). Derived files (the sparse indexes,
//     which are rebuilt from the log), the lock file's pid note, and a checkpoint rewrite that
//     meets ENOSPC (the older checkpoint stays true) may fail without stopping the publisher.
//     Zeros written ahead of the data (preallocation, pwrite64 of a buffer of zeros) that meet
//     ENOSPC are given up and the batch is written without them, so carrying on is correct
//     there too; EIO on them stops the publisher like any write to the log.
//   - After a normal restart every acked message is present, intact and at its acked offset;
//     nothing unexpected or duplicated is stored; offsets are dense (`msgstore read`).
//   - `msgstore verify` is clean (no torn batch is left behind), and a new publish is acked
//     (writing resumes after the restart).
//
// Each N runs in a fresh data directory: create the stream, preload 10 messages with a normal
// publish (earlier acks from another process), then the injected run of 60 messages. The data
// directories live in /dev/shm when it is there (STRACE_SCRATCH overrides): strace fails the
// call before the kernel sees it, so the file system under it does not change what is tested,
// and 60 real fdatasyncs per run would make the test minutes long.
// By default every N is tried (about 400 runs, ~10 s). STRACE_POINTS=k bounds each case to k
// values of N (the first ones, the last ones and the rest spread evenly). Skipped (reported as
// skipped, not passed) when strace is missing or ptrace is not permitted.
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>
#include <stdexcept>

#include <gtest/gtest.h>

#include "e2e/ack_ledger.h"
#include "e2e/process.h"

namespace msgstore::e2e {
namespace {

// A pwrite64 of zeros: the preallocation ahead of a segment's data (strace shows the buffer
// as "\0\0\0..."; a record batch starts with its non-zero magic).
bool zero_fill_write(const std::string& call) {
  return call.find("pwrite64(") != std::string::npos && call.find("\"\\0\\0\\0\\0") != std::string::npos;
}

constexpr const char* stream_name = "faults";
constexpr std::uint64_t preload_messages = 10;
constexpr std::uint64_t injected_run_messages = 60;

std::uint64_t environment_number(const char* name, std::uint64_t fallback) {
  const char* value = std::getenv(name);
  if (value == nullptr || *value == '\0') return fallback;
  return std::strtoull(value, nullptr, 10);
}

std::string find_strace() {
  if (const char* path = std::getenv("STRACE"); path != nullptr && *path != '\0') return path;
  for (const char* path : {"/usr/bin/strace", "/bin/strace", "/usr/local/bin/strace"}) {
    if (::access(path, X_OK) == 0) return path;
  }
  return "";
}

// A scratch directory, removed at the end; in memory when possible (see the top comment).
class ScratchDirectory {
 public:
  ScratchDirectory() {
    std::filesystem::path base = std::filesystem::temp_directory_path();
    if (const char* chosen = std::getenv("STRACE_SCRATCH"); chosen != nullptr && *chosen != '\0') {
      base = chosen;
    } else if (::access("/dev/shm", W_OK) == 0) {
      base = "/dev/shm";
    }
    std::string pattern = (base / "msgstore-strace-test-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp " + pattern + " failed");
    path_ = pattern;
  }
  ~ScratchDirectory() {
    std::error_code ignored;
    if (!keep_) std::filesystem::remove_all(path_, ignored);
  }
  void keep() { keep_ = true; }
  ScratchDirectory(const ScratchDirectory&) = delete;
  ScratchDirectory& operator=(const ScratchDirectory&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
  bool keep_ = false;
};

std::string read_text(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::stringstream stream(text);
  for (std::string line; std::getline(stream, line);) lines.push_back(line);
  return lines;
}

// What a strace log says about the injected call.
struct Injection {
  bool fired = false;
  std::string call;             // the whole call line (the "unfinished" half if it was split)
  std::string target;           // the file the call named: fd path (-y) or rename's source
  std::size_t writes_after = 0;  // write(1, ...) calls (ack lines) started after the injection
  std::size_t writes_before = 0;
};

Injection parse_strace_log(const std::string& log, const std::string& syscall) {
  Injection result;
  const std::vector<std::string> lines = lines_of(log);
  static const std::regex pid_prefix(R"(^(\d+)\s+)");
  static const std::regex fd_path(R"(\(\d+<([^>]*)>)");
  static const std::regex first_string(R"x("([^"]*)")x");
  static const std::regex stdout_write(R"(^(\d+\s+)?write\(1[<,])");
  std::size_t injected_at = lines.size();
  for (std::size_t i = 0; i < lines.size(); ++i) {
    if (lines[i].find("(INJECTED)") == std::string::npos) continue;
    injected_at = i;
    result.fired = true;
    result.call = lines[i];
    if (lines[i].find("resumed>") != std::string::npos) {
      // Split by another thread's output: the arguments are on the "<unfinished ...>" line.
      std::smatch pid;
      const std::string prefix = std::regex_search(lines[i], pid, pid_prefix) ? pid[1].str() : "";
      for (std::size_t j = i; j-- > 0;) {
        if (lines[j].find("<unfinished ...>") != std::string::npos && lines[j].find(syscall + "(") != std::string::npos &&
            (prefix.empty() || lines[j].rfind(prefix, 0) == 0)) {
          result.call = lines[j];
          break;
        }
      }
    }
    // rename and openat name a path; the others a descriptor, which -y prints as fd<path>.
    std::smatch match;
    const bool names_path = syscall == "rename" || syscall == "openat";
    if (names_path ? std::regex_search(result.call, match, first_string) : std::regex_search(result.call, match, fd_path)) {
      result.target = match[1].str();
    }
    break;
  }
  for (std::size_t i = 0; i < lines.size(); ++i) {
    if (i == injected_at || !std::regex_search(lines[i], stdout_write)) continue;
    if (i < injected_at) {
      ++result.writes_before;
    } else {
      ++result.writes_after;
    }
  }
  return result;
}

bool ends_with(const std::string& text, const std::string& suffix) {
  return text.size() >= suffix.size() && text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Files the store derives from the log (rebuilt when damaged or missing) and the lock file's
// informational pid: a failure there need not stop the publisher.
bool derived_target(const std::string& target) {
  // The sparse offset/time indexes, the message index files (src/index: written to a .tmp and
  // renamed at a seal, rebuilt from the log when missing or damaged) and the lock file.
  return ends_with(target, ".offset_index") || ends_with(target, ".time_index") || ends_with(target, ".message_index") ||
         ends_with(target, ".message_index.tmp") || ends_with(target, "msgstore.lock");
}

// A call that is not the store's: the dynamic loader opening ld.so.cache and libraries.
bool outside_store(const std::string& target, const std::filesystem::path& data) {
  if (target.empty() || target.find("pipe:") != std::string::npos) return false;
  return target.rfind(data.string(), 0) != 0;
}

struct FaultCase {
  const char* name;     // test name suffix
  const char* syscall;  // what strace injects into
  const char* error;    // errno name
  std::uint32_t batch;  // --batch of the injected publisher
};

void PrintTo(const FaultCase& fault, std::ostream* out) {
  *out << fault.syscall << ":error=" << fault.error << " --batch " << fault.batch;
}

struct CaseSummary {
  std::uint64_t points = 0;
  std::uint64_t fired = 0;
  std::uint64_t fail_stopped = 0;  // the publisher stopped with an error naming the fault
  std::uint64_t tolerated = 0;     // a derived file failed (the publisher may carry on)
  std::uint64_t tolerated_stopped = 0;  // ... and it stopped anyway, with a proper error
  std::uint64_t outside = 0;       // the loader's calls (libraries), not the store's
  std::vector<std::uint64_t> failed_points;
  std::uint64_t acks_before_fault = 0;
  std::map<std::string, std::uint64_t> error_codes;
  std::map<std::string, std::uint64_t> targets;  // file kind -> count
};

std::string target_kind(const std::string& target, const std::filesystem::path& data) {
  if (target.empty()) return "?";
  if (target.find("pipe:") != std::string::npos) return "stdout";
  const std::string name = std::filesystem::path(target).filename().string();
  if (target.rfind(data.string(), 0) != 0) return name;  // not the store's (the loader's libraries)
  for (const char* suffix : {".log", ".offset_index", ".time_index", ".message_index", ".tmp", ".meta", ".lock"}) {
    if (ends_with(name, suffix)) return suffix;
  }
  if (std::filesystem::is_directory(target)) return "directory";
  return name;
}

class StraceFaultTest : public ::testing::TestWithParam<FaultCase> {
 protected:
  StraceFaultTest() : binary_(binary_from_environment("MSGSTORE_BINARY")) {}

  void SetUp() override {
    strace_ = find_strace();
    if (strace_.empty()) GTEST_SKIP() << "strace is not installed (scripts/install-deps.sh installs it)";
    // ptrace may be forbidden (containers without CAP_SYS_PTRACE, yama ptrace_scope 3).
    ProcessResult probe = run_process({strace_, "-f", "-qq", "-o", "/dev/null", "-e", "trace=getpid", "-e",
                                       "inject=getpid:error=EIO:when=1", "/bin/true"});
    if (probe.exit_code != 0) GTEST_SKIP() << "strace cannot trace here (ptrace not permitted?): " << probe.err;
  }

  // Failures recorded so far in this test (HasFailure() cannot tell a new one from an old one).
  static int failure_count() {
    return ::testing::UnitTest::GetInstance()->current_test_info()->result()->total_part_count();
  }

  void TearDown() override {
    if (HasFailure()) directory_.keep();  // the failing points' directories are the evidence
  }

  std::vector<std::string> strace_command(const FaultCase& fault, const std::filesystem::path& log,
                                          std::optional<std::uint64_t> when) const {
    std::vector<std::string> argv = {strace_, "-f", "-y", "-qq", "-o", log.string(), "-e",
                                     std::string("trace=") + fault.syscall + (std::string(fault.syscall) == "write" ? "" : ",write")};
    if (when) {
      argv.push_back("-e");
      argv.push_back(std::string("inject=") + fault.syscall + ":error=" + fault.error + ":when=" + std::to_string(*when));
    }
    return argv;
  }

  // A fresh store with the stream and `preload_messages` acked messages.
  void prepare(const std::filesystem::path& data, AckLedger& ledger) {
    ProcessResult created = run_process({binary_, "--data", data.string(), "stream", "create", stream_name, "--subjects",
                                         "faults.>", "--partitions", "2", "--fsync", "always", "--segment-bytes", "4KiB"});
    ASSERT_EQ(created.exit_code, 0) << created.err;
    std::vector<std::uint64_t> order;
    const std::string input = ledger.make_input(preload_messages, order);
    ProcessResult preload = run_process({binary_, "--data", data.string(), "publish", "faults.x"}, input);
    ASSERT_EQ(preload.exit_code, 0) << preload.err;
    for (const std::string& line : preload.out_lines()) {
      const std::string problem = ledger.record_ack(line, order);
      ASSERT_TRUE(problem.empty()) << problem;
    }
    ASSERT_EQ(ledger.acked_count(), preload_messages);
  }

  // How many calls of the fault's syscall the busiest thread makes in a clean run.
  std::uint64_t calibrate(const FaultCase& fault) {
    const std::filesystem::path root = directory_.path() / "calibration";
    const std::filesystem::path data = root / "data";
    std::filesystem::create_directories(root);
    AckLedger ledger(stream_name);
    prepare(data, ledger);
    if (HasFatalFailure()) return 0;
    std::vector<std::uint64_t> order;
    const std::string input = ledger.make_input(injected_run_messages, order);
    std::vector<std::string> argv = strace_command(fault, root / "strace.log", std::nullopt);
    for (const std::string& argument : publisher_arguments(data, fault)) argv.push_back(argument);
    ProcessResult run = run_process(argv, input);
    EXPECT_EQ(run.exit_code, 0) << "clean run under strace failed: " << run.err;
    std::map<std::string, std::uint64_t> per_thread;
    static const std::regex call(R"(^(\d+)\s+(\w+)\()");
    for (const std::string& line : lines_of(read_text(root / "strace.log"))) {
      std::smatch match;
      if (std::regex_search(line, match, call) && match[2].str() == fault.syscall) ++per_thread[match[1].str()];
    }
    std::uint64_t most = 0;
    for (const auto& [thread, count] : per_thread) most = std::max(most, count);
    std::filesystem::remove_all(root);
    return most;
  }

  std::vector<std::string> publisher_arguments(const std::filesystem::path& data, const FaultCase& fault) const {
    return {binary_, "--data", data.string(), "publish", "faults.x", "--batch", std::to_string(fault.batch)};
  }

  // One injected run at call number `when`.
  void run_point(const FaultCase& fault, std::uint64_t when, CaseSummary& summary) {
    SCOPED_TRACE(std::string("strace -e inject=") + fault.syscall + ":error=" + fault.error + ":when=" + std::to_string(when) +
                 " --batch " + std::to_string(fault.batch));
    const int failures_at_start = failure_count();
    const std::filesystem::path root = directory_.path() / ("point-" + std::to_string(when));
    const std::filesystem::path data = root / "data";
    std::filesystem::create_directories(root);
    AckLedger ledger(stream_name);
    prepare(data, ledger);
    if (HasFatalFailure()) return;
    const std::uint64_t acked_before = ledger.acked_count();

    std::vector<std::uint64_t> order;
    const std::string input = ledger.make_input(injected_run_messages, order);
    std::vector<std::string> argv = strace_command(fault, root / "strace.log", when);
    for (const std::string& argument : publisher_arguments(data, fault)) argv.push_back(argument);
    ProcessResult run = run_process(argv, input);
    ASSERT_FALSE(run.timed_out) << "the injected publisher hung";
    for (const std::string& line : run.out_lines()) {
      const std::string problem = ledger.record_ack(line, order);
      ASSERT_TRUE(problem.empty()) << problem;
    }
    const Injection injection = parse_strace_log(read_text(root / "strace.log"), fault.syscall);
    ++summary.points;
    const std::string code = cli_error_code(run.err);
    if (!injection.fired) {
      // N is past the last call: a clean run.
      EXPECT_EQ(run.exit_code, 0) << "no fault was injected, yet: " << run.err;
      EXPECT_EQ(ledger.acked_count(), acked_before + injected_run_messages);
    } else {
      ++summary.fired;
      ++summary.targets[target_kind(injection.target, data)];
      summary.acks_before_fault += injection.writes_before;
      if (outside_store(injection.target, data)) {
        ++summary.outside;  // e.g. the loader could not open a library: the binary may not even start
      } else if (derived_target(injection.target) ||
                 (injection.call.find("ENOSPC") != std::string::npos && ends_with(injection.target, "partition.meta.tmp")) ||
                 (injection.call.find("ENOSPC") != std::string::npos && zero_fill_write(injection.call))) {
        // Zeros written ahead of the data (Segment::append's preallocation) that meet a full
        // disk are given up and the batch is written without them: carrying on is correct.
        // A checkpoint that cannot be written for lack of space leaves the older one, which is
        // still true: opening on a full disk must keep working so reads are served.
        ++summary.tolerated;  // a derived file: carrying on is allowed, the end state is checked below
        if (run.exit_code != 0) {
          // Stopping is allowed too, but with an error that names the failure.
          ++summary.tolerated_stopped;
          EXPECT_TRUE(code == "log_failed" || code == "io_error" || code == "no_space")
              << "after " << injection.call << "\nthe error should name the failure (log_failed, io_error or no_space): "
              << run.err;
        }
      } else {
        ++summary.fail_stopped;
        ++summary.error_codes[code.empty() ? "(none)" : code];
        EXPECT_EQ(injection.writes_after, 0u) << injection.writes_after << " ack line(s) printed after the injected failure of "
                                              << injection.call;
        EXPECT_EQ(run.exit_code, 1) << "the publisher did not fail after " << injection.call << "\nstderr: " << run.err;
        EXPECT_EQ(run.signal_number, 0) << "the publisher died of signal " << run.signal_number << "\nstderr: " << run.err;
        if (code == "no_space" && fault.batch == 1) {
          // Refused for lack of space: that message must not be stored, not even in part.
          if (auto index = cli_failed_message(run.err); index && *index < order.size()) ledger.mark_refused(order[*index]);
        }
        if (std::string(fault.error) == "ENOSPC" && ends_with(injection.target, ".log")) {
          EXPECT_EQ(code, "no_space") << "after " << injection.call << "\na full disk must be reported as no_space: " << run.err;
        } else {
          EXPECT_TRUE(code == "log_failed" || code == "io_error" || code == "no_space")
              << "after " << injection.call << "\nthe error should name the failure (log_failed, io_error or no_space): "
              << run.err;
        }
      }
    }

    // A normal restart: the store recovers, every ack is there, and writing resumes.
    std::vector<std::uint64_t> after_order;
    const std::string after_input = ledger.make_input(1, after_order);
    ProcessResult after = run_process({binary_, "--data", data.string(), "publish", "faults.x"}, after_input);
    EXPECT_EQ(after.exit_code, 0) << "publishing after a restart failed: " << after.err;
    for (const std::string& line : after.out_lines()) {
      const std::string problem = ledger.record_ack(line, after_order);
      EXPECT_TRUE(problem.empty()) << problem;
    }
    for (const std::string& problem : ledger.check_read_back(binary_, data.string())) ADD_FAILURE() << problem;
    const std::string verified = verify_problems(binary_, data.string());
    EXPECT_TRUE(verified.empty()) << verified;
    if (failure_count() == failures_at_start) std::filesystem::remove_all(root);  // a failure's is kept as evidence
  }

  std::string binary_;
  std::string strace_;
  ScratchDirectory directory_;
};

TEST_P(StraceFaultTest, NoAckAfterTheFaultAndEveryAckSurvivesARestart) {
  const FaultCase fault = GetParam();
  const std::uint64_t calls = calibrate(fault);
  if (HasFatalFailure()) return;
  ASSERT_GT(calls, 0u) << fault.syscall << " is never called by msgstore publish: the case tests nothing";
  // Every N up to one past the last call (which must be a clean run), or a spread of them.
  std::vector<std::uint64_t> points;
  const std::uint64_t last = calls + 1;
  const std::uint64_t budget = std::max<std::uint64_t>(4, environment_number("STRACE_POINTS", last));
  if (last <= budget) {
    for (std::uint64_t n = 1; n <= last; ++n) points.push_back(n);
  } else {
    const std::uint64_t head = budget / 2, tail = 2;  // open and the first appends; close
    for (std::uint64_t n = 1; n <= head; ++n) points.push_back(n);
    const std::uint64_t middle = budget - head - tail;
    for (std::uint64_t i = 1; i <= middle; ++i) points.push_back(head + i * (last - tail - head) / (middle + 1));
    for (std::uint64_t n = last - tail + 1; n <= last; ++n) points.push_back(n);
    std::sort(points.begin(), points.end());
    points.erase(std::unique(points.begin(), points.end()), points.end());
  }
  CaseSummary summary;
  for (std::uint64_t when : points) {
    const int failures_before = failure_count();
    run_point(fault, when, summary);
    if (failure_count() > failures_before) summary.failed_points.push_back(when);  // its directory is kept
  }
  std::string codes, targets, failed;
  for (const auto& [code, count] : summary.error_codes) codes += " " + code + "=" + std::to_string(count);
  for (const auto& [kind, count] : summary.targets) targets += " " + kind + "=" + std::to_string(count);
  for (std::uint64_t when : summary.failed_points) failed += " " + std::to_string(when);
  std::printf("strace_fault_test: %s:error=%s --batch %u: %llu calls in a clean run, %llu points, %llu faults fired "
              "(targets:%s), %llu fail-stopped (errors:%s), %llu on derived files (%llu of them stopped), %llu outside the store, "
              "%llu acks before faults: %s%s\n",
              fault.syscall, fault.error, fault.batch, static_cast<unsigned long long>(calls),
              static_cast<unsigned long long>(summary.points), static_cast<unsigned long long>(summary.fired),
              targets.c_str(), static_cast<unsigned long long>(summary.fail_stopped), codes.c_str(),
              static_cast<unsigned long long>(summary.tolerated), static_cast<unsigned long long>(summary.tolerated_stopped),
              static_cast<unsigned long long>(summary.outside),
              static_cast<unsigned long long>(summary.acks_before_fault),
              HasFailure() ? "FAILED at when=" : "0 acks after a fault, 0 acked lost, verify clean", failed.c_str());
  if (HasFailure()) {
    std::printf("strace_fault_test: replay one point by hand (the failing points' directories are kept under %s):\n"
                "  msgstore --data D stream create faults --subjects 'faults.>' --partitions 2 --fsync always --segment-bytes 4KiB\n"
                "  (publish %llu lines, then) strace -f -y -e trace=%s,write -e inject=%s:error=%s:when=N msgstore --data D "
                "publish faults.x --batch %u < 60-lines\n",
                directory_.path().c_str(), static_cast<unsigned long long>(preload_messages), fault.syscall, fault.syscall,
                fault.error, fault.batch);
  }
  EXPECT_GT(summary.fired, 0u) << "no injected fault ever fired";
}

INSTANTIATE_TEST_SUITE_P(
    Syscalls, StraceFaultTest,
    ::testing::Values(FaultCase{"fdatasync_EIO", "fdatasync", "EIO", 1}, FaultCase{"fdatasync_EIO_batch8", "fdatasync", "EIO", 8},
                      FaultCase{"pwrite64_EIO", "pwrite64", "EIO", 1}, FaultCase{"pwrite64_ENOSPC", "pwrite64", "ENOSPC", 1},
                      FaultCase{"write_EIO", "write", "EIO", 1}, FaultCase{"rename_EIO", "rename", "EIO", 1},
                      FaultCase{"fsync_EIO", "fsync", "EIO", 1}, FaultCase{"openat_EIO", "openat", "EIO", 1}),
    [](const ::testing::TestParamInfo<FaultCase>& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace msgstore::e2e
