// A server binary run as a child process by a cross-process test, which
// learns the server's address from the file the server writes once it
// serves (the servers' --address_file flag), so tests can listen on port 0
// and never race for a fixed port.
//
// Not thread-safe; one test thread owns each ChildProcess.
#ifndef TANDEM_TESTS_CHILD_PROCESS_H_
#define TANDEM_TESTS_CHILD_PROCESS_H_

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace tandem::testing {

class ChildProcess {
 public:
  // Runs `binary` with `args` plus `--address_file=<a fresh temporary
  // file>`, and waits up to `timeout` for the file to name an address.
  // Internal if the process cannot start; DeadlineExceeded if no address
  // appears in time; Unavailable if the process exits first.
  static absl::StatusOr<std::unique_ptr<ChildProcess>> StartServer(
      const std::string& binary, const std::vector<std::string>& args,
      absl::Duration timeout = absl::Seconds(20));

  // Kills the process (SIGKILL) if it still runs, and reaps it.
  ~ChildProcess();

  // host:port the server listens on.
  const std::string& address() const { return address_; }
  pid_t pid() const { return pid_; }

  // Sends `signal` and waits for the process to end; returns its exit
  // status as waitpid reports it. Internal if it cannot be reaped.
  absl::StatusOr<int> Stop(int signal);

 private:
  ChildProcess(pid_t pid, std::string address_file)
      : pid_(pid), address_file_(std::move(address_file)) {}

  pid_t pid_;
  bool reaped_ = false;
  std::string address_file_;
  std::string address_;
};

}  // namespace tandem::testing

#endif  // TANDEM_TESTS_CHILD_PROCESS_H_
