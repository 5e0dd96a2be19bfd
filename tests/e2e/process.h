// Running the real binaries from end-to-end tests: fork/exec with pipes, no shell.
//
// Binaries are found through environment variables that tests/e2e/CMakeLists.txt sets with
// $<TARGET_FILE:...> (MSGSTORE_BINARY, ORDER_EVENTS_BINARY), so the tests run exactly what
// the build produced.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace msgstore::e2e {

// The path in environment variable `name`; fails the test (throws) if it is not set.
std::string binary_from_environment(const char* name);

struct ProcessResult {
  int exit_code = -1;     // exit status if the process exited
  int signal_number = 0;  // the signal that killed it, else 0
  std::string out;        // everything it wrote to stdout
  std::string err;        // everything it wrote to stderr
  bool timed_out = false;
  std::vector<std::string> out_lines() const;
  std::vector<std::string> err_lines() const;
};

// Runs `argv` (argv[0] is the executable path) to completion, feeding `input` on stdin.
// `environment` adds or overrides variables; the process is killed after `timeout`.
ProcessResult run_process(const std::vector<std::string>& argv, const std::string& input = {},
                          const std::map<std::string, std::string>& environment = {},
                          std::chrono::milliseconds timeout = std::chrono::seconds(60));

// A running child with a writable stdin pipe and a readable stdout pipe (stderr is inherited,
// so whatever the child reports lands in the test log).
class ChildProcess {
 public:
  explicit ChildProcess(const std::vector<std::string>& argv);
  ~ChildProcess();  // kills (SIGKILL) and reaps the child if it is still running
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  pid_t pid() const { return pid_; }
  // Writes all of `data` to the child's stdin; false if the pipe is closed (the child died).
  bool write_input(const std::string& data);
  void close_input();
  // Returns the next complete stdout line if one arrives within `timeout`; nullopt on timeout
  // or end of output.
  std::optional<std::string> read_line(std::chrono::milliseconds timeout);
  // Reads whatever stdout holds now without waiting; returns complete lines.
  std::vector<std::string> read_available_lines();
  void send_signal(int signal_number);
  // Waits for the child to end; returns the raw waitpid status.
  int wait();
  // After the child ended: everything left in the stdout pipe, as complete lines (a final
  // partial line is returned too, flagged by `partial_tail`).
  std::vector<std::string> drain_lines(std::string* partial_tail = nullptr);

 private:
  bool fill(std::chrono::milliseconds timeout);  // reads more stdout; false on timeout/EOF
  pid_t pid_ = -1;
  int input_fd_ = -1;
  int output_fd_ = -1;
  bool output_closed_ = false;
  bool reaped_ = false;
  std::string buffer_;
};

}  // namespace msgstore::e2e
