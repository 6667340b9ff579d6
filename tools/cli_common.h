// What the `tandem` subcommands share: exit codes, error reporting, the
// --model and --threads flags and loading a model directory.
//
// Exit codes: 0 success; 1 a runtime error (a missing or malformed file, a
// failed model or tokenizer load, unreadable input, a failed write); 2 a
// usage error (unknown subcommand or flag, a malformed or out-of-range flag
// value, a missing argument, a request that does not fit the model).
#ifndef TANDEM_TOOLS_CLI_COMMON_H_
#define TANDEM_TOOLS_CLI_COMMON_H_

#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "absl/flags/declare.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "engine/model.h"
#include "engine/tokenizer.h"
#include "tools/cli_args.h"

ABSL_DECLARE_FLAG(std::string, model);
ABSL_DECLARE_FLAG(int, threads);

namespace tandem {

inline constexpr int kExitRuntimeError = 1;
inline constexpr int kExitUsageError = 2;

// The file that defines --model and --threads, for FlagScope.
inline constexpr std::string_view kModelFlagsFile = "cli_common.cc";

// Prints "tandem <command>: <message>" as one line on stderr (newlines in
// the message become spaces) and returns `exit_code`.
int ReportError(std::string_view command, const absl::Status& status,
                int exit_code);

// The start of every subcommand: parses `args` for the flags in `scope`
// (ParseArgs). Returns the parsed arguments when the subcommand should go
// on. Otherwise returns nullopt and sets `*exit_code` to what the
// subcommand returns at once: 0 after printing `usage` and the flags' help
// to stdout for --help, or kExitUsageError after reporting a parse error
// for `command` (ReportError).
std::optional<ParsedArgs> ParseCommandArgs(absl::Span<char* const> args,
                                           const FlagScope& scope,
                                           std::string_view command,
                                           std::string_view usage,
                                           int* exit_code);

// Writes `text` to stdout and flushes it. Unavailable with the system's
// reason if the write fails (e.g. a closed pipe).
absl::Status WriteStdout(std::string_view text);

// Reads all of `path` ("-" for stdin). NotFound if the file does not
// exist; Unavailable with the system's reason for another read failure.
absl::StatusOr<std::string> ReadInput(const std::string& path);

// The most engine threads --threads accepts.
inline constexpr int kMaxThreads = 1024;

// InvalidArgument naming --threads unless `threads` is in [0, kMaxThreads].
absl::Status CheckThreadsFlag(int threads);

struct LoadedModel {
  std::unique_ptr<Model> model;
  std::unique_ptr<Tokenizer> tokenizer;
};

// Loads the model directory `dir` and its tokenizer with `threads` engine
// threads (0: the default). NotFound naming `dir` if it does not exist or
// lacks a file the model needs; InvalidArgument as CheckThreadsFlag; other
// errors as Model::Load and LoadTokenizer.
absl::StatusOr<LoadedModel> LoadModelDir(const std::string& dir, int threads);

}  // namespace tandem

#endif  // TANDEM_TOOLS_CLI_COMMON_H_
