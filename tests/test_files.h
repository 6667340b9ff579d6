// Files and shell commands for tests that read the source tree or run
// Tandem's binaries: where the sources are, whole-file reads and writes,
// and a command line's exit code and output.
#ifndef TANDEM_TESTS_TEST_FILES_H_
#define TANDEM_TESTS_TEST_FILES_H_

#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"

namespace tandem::testing {

// The source tree's root: $TANDEM_SOURCE_DIR, which ctest sets, else the
// working directory.
inline std::filesystem::path SourceDir() {
  const char* root = std::getenv("TANDEM_SOURCE_DIR");
  return root == nullptr ? std::filesystem::path(".")
                         : std::filesystem::path(root);
}

// The whole file; empty if it cannot be read.
inline std::string ReadFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// Replaces the file's contents with `text`.
inline void WriteFile(const std::filesystem::path& path,
                      const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
}

// `arg` as one word of a POSIX shell command line.
inline std::string ShellQuote(const std::string& arg) {
  return absl::StrCat("'", absl::StrReplaceAll(arg, {{"'", "'\\''"}}), "'");
}

// How a command ended and what it printed.
struct CommandOutcome {
  int exit_code = -1;  // 128 if it did not exit normally
  std::string out;
  std::string err;
};

// Runs the shell command line `command` with `input` on its stdin, its
// stdout and stderr captured through files in `scratch_dir` (which must
// exist; the files are overwritten by the next call).
inline CommandOutcome RunCommand(const std::string& command,
                                 const std::filesystem::path& scratch_dir,
                                 const std::string& input = "") {
  const std::filesystem::path in = scratch_dir / "stdin",
                              out = scratch_dir / "stdout",
                              err = scratch_dir / "stderr";
  WriteFile(in, input);
  const std::string line =
      absl::StrCat("{ ", command, "; } <", ShellQuote(in.string()), " >",
                   ShellQuote(out.string()), " 2>", ShellQuote(err.string()));
  const int status = std::system(line.c_str());
  CommandOutcome outcome;
  outcome.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128;
  outcome.out = ReadFile(out);
  outcome.err = ReadFile(err);
  return outcome;
}

}  // namespace tandem::testing

#endif  // TANDEM_TESTS_TEST_FILES_H_
