#include "tests/child_process.h"

#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

extern char** environ;

namespace tandem::testing {
namespace {

// A fresh path in the temporary directory that nothing exists at.
std::string FreshTemporaryPath() {
  const char* dir = std::getenv("TMPDIR");
  std::string path_template =
      absl::StrCat(dir != nullptr ? dir : "/tmp", "/tandem-address-XXXXXX");
  const int fd = mkstemp(path_template.data());
  if (fd >= 0) {
    close(fd);
    unlink(path_template.c_str());
  }
  return path_template;
}

std::string ReadAddress(const std::string& path) {
  std::ifstream file(path);
  std::stringstream text;
  text << file.rdbuf();
  return std::string(absl::StripAsciiWhitespace(text.str()));
}

}  // namespace

absl::StatusOr<std::unique_ptr<ChildProcess>> ChildProcess::StartServer(
    const std::string& binary, const std::vector<std::string>& args,
    absl::Duration timeout) {
  const std::string address_file = FreshTemporaryPath();
  std::vector<std::string> argv_strings = {binary};
  argv_strings.insert(argv_strings.end(), args.begin(), args.end());
  argv_strings.push_back(absl::StrCat("--address_file=", address_file));
  std::vector<char*> argv;
  for (std::string& arg : argv_strings) argv.push_back(arg.data());
  argv.push_back(nullptr);

  pid_t pid = 0;
  const int error =
      posix_spawn(&pid, binary.c_str(), nullptr, nullptr, argv.data(), environ);
  if (error != 0) {
    return absl::InternalError(
        absl::StrCat("cannot start ", binary, ": ", std::strerror(error)));
  }
  std::unique_ptr<ChildProcess> child(new ChildProcess(pid, address_file));
  const absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    child->address_ = ReadAddress(address_file);
    if (!child->address_.empty()) return child;
    int status = 0;
    if (waitpid(pid, &status, WNOHANG) == pid) {
      child->reaped_ = true;
      return absl::UnavailableError(
          absl::StrCat(binary, " exited before serving, status ", status));
    }
    absl::SleepFor(absl::Milliseconds(5));
  }
  return absl::DeadlineExceededError(absl::StrCat(
      binary, " wrote no address within ", absl::FormatDuration(timeout)));
}

ChildProcess::~ChildProcess() {
  if (!reaped_) {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
  unlink(address_file_.c_str());
}

absl::StatusOr<int> ChildProcess::Stop(int signal) {
  if (reaped_) return absl::InternalError("process already reaped");
  kill(pid_, signal);
  int status = 0;
  if (waitpid(pid_, &status, 0) != pid_) {
    return absl::InternalError(
        absl::StrCat("cannot reap ", pid_, ": ", std::strerror(errno)));
  }
  reaped_ = true;
  return status;
}

}  // namespace tandem::testing
