// The subcommands of the `tandem` binary. Each takes the arguments after
// its name, parses its own flags (tools/cli_args.h), prints its help for
// --help, and returns the process exit code (tools/cli_common.h): errors
// are reported as one line on stderr.
//
// Not thread-safe: they set process-wide flags and write stdout.
#ifndef TANDEM_TOOLS_COMMANDS_H_
#define TANDEM_TOOLS_COMMANDS_H_

#include <string_view>

#include "absl/types/span.h"

namespace tandem {

struct Command {
  std::string_view name;
  std::string_view summary;  // one line for `tandem --help`
  int (*run)(absl::Span<char* const> args);
};

// `tandem bench --router HOST:PORT`: a serving benchmark against a cluster.
int RunBenchCommand(absl::Span<char* const> args);

// `tandem generate`: streams a continuation of --prompt to stdout.
int RunGenerateCommand(absl::Span<char* const> args);

// `tandem score FILE`: bits per byte of a text under a model.
int RunScoreCommand(absl::Span<char* const> args);

// `tandem health HOST:PORT`: a server's gRPC health; exit 0 if SERVING.
int RunHealthCommand(absl::Span<char* const> args);

// `tandem tokenize`: text on stdin to token ids, or ids back to text.
int RunTokenizeCommand(absl::Span<char* const> args);

}  // namespace tandem

#endif  // TANDEM_TOOLS_COMMANDS_H_
