#include "e2e/process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

extern char** environ;

namespace msgstore::e2e {
namespace {

std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> lines;
  std::size_t start = 0;
  while (start < text.size()) {
    std::size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    lines.push_back(text.substr(start, end - start));
    start = end + 1;
  }
  return lines;
}

void make_pipe(int fds[2]) {
  if (::pipe2(fds, O_CLOEXEC) != 0) throw std::runtime_error(std::string("pipe2: ") + std::strerror(errno));
}

// Everything the child needs, built before fork so the child only calls async-signal-safe
// functions (dup2, execve, _exit).
struct ExecPlan {
  std::vector<std::string> argv_storage;
  std::vector<std::string> environment_storage;
  std::vector<char*> argv;
  std::vector<char*> environment;

  ExecPlan(const std::vector<std::string>& arguments, const std::map<std::string, std::string>& overrides)
      : argv_storage(arguments) {
    for (char** variable = environ; *variable != nullptr; ++variable) {
      const std::string entry = *variable;
      const std::string name = entry.substr(0, entry.find('='));
      if (!overrides.count(name)) environment_storage.push_back(entry);
    }
    for (const auto& [name, value] : overrides) environment_storage.push_back(name + "=" + value);
    for (std::string& argument : argv_storage) argv.push_back(argument.data());
    argv.push_back(nullptr);
    for (std::string& entry : environment_storage) environment.push_back(entry.data());
    environment.push_back(nullptr);
  }
};

[[noreturn]] void exec_child(const ExecPlan& plan, int stdin_fd, int stdout_fd, int stderr_fd) {
  if (::dup2(stdin_fd, STDIN_FILENO) < 0 || ::dup2(stdout_fd, STDOUT_FILENO) < 0) ::_exit(126);
  if (stderr_fd >= 0 && ::dup2(stderr_fd, STDERR_FILENO) < 0) ::_exit(126);
  // Start from default signal dispositions and an empty mask, as a shell would.
  sigset_t empty;
  sigemptyset(&empty);
  ::sigprocmask(SIG_SETMASK, &empty, nullptr);
  ::signal(SIGPIPE, SIG_DFL);
  ::execve(plan.argv[0], plan.argv.data(), plan.environment.data());
  ::_exit(127);
}

}  // namespace

std::string binary_from_environment(const char* name) {
  const char* value = std::getenv(name);
  if (value == nullptr || *value == '\0') {
    throw std::runtime_error(std::string("environment variable ") + name +
                             " is not set (run the test through ctest, which sets it)");
  }
  return value;
}

std::vector<std::string> ProcessResult::out_lines() const { return split_lines(out); }
std::vector<std::string> ProcessResult::err_lines() const { return split_lines(err); }

ProcessResult run_process(const std::vector<std::string>& argv, const std::string& input,
                          const std::map<std::string, std::string>& environment, std::chrono::milliseconds timeout) {
  ::signal(SIGPIPE, SIG_IGN);  // a child that exits early must not kill the test
  ExecPlan plan(argv, environment);
  int in[2], out[2], err[2];
  make_pipe(in);
  make_pipe(out);
  make_pipe(err);
  const pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error(std::string("fork: ") + std::strerror(errno));
  if (pid == 0) exec_child(plan, in[0], out[1], err[1]);
  ::close(in[0]);
  ::close(out[1]);
  ::close(err[1]);
  ::fcntl(in[1], F_SETFL, O_NONBLOCK);

  ProcessResult result;
  std::size_t written = 0;
  int input_fd = in[1];
  if (input.empty()) {
    ::close(input_fd);
    input_fd = -1;
  }
  bool out_open = true, err_open = true;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (out_open || err_open) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      result.timed_out = true;
      ::kill(pid, SIGKILL);
      break;
    }
    pollfd fds[3];
    int count = 0;
    if (out_open) fds[count++] = {out[0], POLLIN, 0};
    if (err_open) fds[count++] = {err[0], POLLIN, 0};
    if (input_fd >= 0) fds[count++] = {input_fd, POLLOUT, 0};
    const int ready = ::poll(fds, static_cast<nfds_t>(count), static_cast<int>(std::min<long>(left.count(), 1000)));
    if (ready < 0 && errno != EINTR) throw std::runtime_error(std::string("poll: ") + std::strerror(errno));
    for (int i = 0; i < count && ready > 0; ++i) {
      if (fds[i].revents == 0) continue;
      if (fds[i].fd == input_fd) {
        const ssize_t n = ::write(input_fd, input.data() + written, input.size() - written);
        if (n > 0) written += static_cast<std::size_t>(n);
        if (n < 0 && errno != EAGAIN && errno != EINTR) written = input.size();  // the child closed stdin
        if (written == input.size()) {
          ::close(input_fd);
          input_fd = -1;
        }
        continue;
      }
      char chunk[65536];
      const ssize_t n = ::read(fds[i].fd, chunk, sizeof chunk);
      if (n > 0) {
        (fds[i].fd == out[0] ? result.out : result.err).append(chunk, static_cast<std::size_t>(n));
      } else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
        (fds[i].fd == out[0] ? out_open : err_open) = false;
      }
    }
  }
  if (input_fd >= 0) ::close(input_fd);
  ::close(out[0]);
  ::close(err[0]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(status)) result.exit_code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) result.signal_number = WTERMSIG(status);
  return result;
}

// ---------------------------------------------------------------------------------------------
ChildProcess::ChildProcess(const std::vector<std::string>& argv) {
  ::signal(SIGPIPE, SIG_IGN);
  ExecPlan plan(argv, {});
  int in[2], out[2];
  make_pipe(in);
  make_pipe(out);
  pid_ = ::fork();
  if (pid_ < 0) throw std::runtime_error(std::string("fork: ") + std::strerror(errno));
  if (pid_ == 0) exec_child(plan, in[0], out[1], -1);
  ::close(in[0]);
  ::close(out[1]);
  input_fd_ = in[1];
  output_fd_ = out[0];
  ::fcntl(output_fd_, F_SETFL, O_NONBLOCK);
}

ChildProcess::~ChildProcess() {
  if (!reaped_) {
    ::kill(pid_, SIGKILL);
    (void)wait();
  }
  close_input();
  if (output_fd_ >= 0) ::close(output_fd_);
}

bool ChildProcess::write_input(const std::string& data) {
  std::size_t written = 0;
  while (written < data.size()) {
    const ssize_t n = ::write(input_fd_, data.data() + written, data.size() - written);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    written += static_cast<std::size_t>(n);
  }
  return true;
}

void ChildProcess::close_input() {
  if (input_fd_ >= 0) ::close(input_fd_);
  input_fd_ = -1;
}

bool ChildProcess::fill(std::chrono::milliseconds timeout) {
  if (output_closed_) return false;
  pollfd descriptor{output_fd_, POLLIN, 0};
  const int ready = ::poll(&descriptor, 1, static_cast<int>(timeout.count()));
  if (ready <= 0) return false;
  char chunk[65536];
  const ssize_t n = ::read(output_fd_, chunk, sizeof chunk);
  if (n > 0) {
    buffer_.append(chunk, static_cast<std::size_t>(n));
    return true;
  }
  if (n == 0 || (errno != EAGAIN && errno != EINTR)) output_closed_ = true;
  return false;
}

std::optional<std::string> ChildProcess::read_line(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    const std::size_t newline = buffer_.find('\n');
    if (newline != std::string::npos) {
      std::string line = buffer_.substr(0, newline);
      buffer_.erase(0, newline + 1);
      return line;
    }
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0 || output_closed_) return std::nullopt;
    fill(left);
  }
}

std::vector<std::string> ChildProcess::read_available_lines() {
  while (fill(std::chrono::milliseconds(0))) {
  }
  std::vector<std::string> lines;
  std::size_t newline;
  while ((newline = buffer_.find('\n')) != std::string::npos) {
    lines.push_back(buffer_.substr(0, newline));
    buffer_.erase(0, newline + 1);
  }
  return lines;
}

void ChildProcess::send_signal(int signal_number) { ::kill(pid_, signal_number); }

int ChildProcess::wait() {
  int status = 0;
  while (::waitpid(pid_, &status, 0) < 0) {
    if (errno != EINTR) return -1;
  }
  reaped_ = true;
  return status;
}

std::vector<std::string> ChildProcess::drain_lines(std::string* partial_tail) {
  // The child is gone, so the pipe ends once its buffered bytes are read.
  while (!output_closed_) fill(std::chrono::milliseconds(1000));
  std::vector<std::string> lines = read_available_lines();
  if (partial_tail != nullptr) *partial_tail = buffer_;
  buffer_.clear();
  return lines;
}

}  // namespace msgstore::e2e
