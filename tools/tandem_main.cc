// tandem: Tandem's command line. `tandem SUBCOMMAND [flags]`; see
// docs/cli.md and `tandem SUBCOMMAND --help`.
#include <csignal>
#include <cstdio>
#include <string_view>

#include "absl/strings/str_cat.h"
#include "absl/types/span.h"
#include "tools/cli_common.h"
#include "tools/commands.h"

namespace tandem {
namespace {

constexpr Command kCommands[] = {
    {"bench", "a serving benchmark against a running cluster's router",
     RunBenchCommand},
    {"generate", "stream a continuation of a prompt (here or via --router)",
     RunGenerateCommand},
    {"health", "a server's gRPC health (router, worker, store)",
     RunHealthCommand},
    {"score", "bits per byte of a text file under a model", RunScoreCommand},
    {"tokenize", "text to token ids (JSON) or, with --decode, back",
     RunTokenizeCommand},
};

std::string Usage() {
  std::string out = "Usage: tandem SUBCOMMAND [flags]\n\nSubcommands:\n";
  for (const Command& command : kCommands) {
    absl::StrAppend(&out, "  ", std::string(command.name),
                    std::string(10 - command.name.size(), ' '),
                    std::string(command.summary), "\n");
  }
  absl::StrAppend(&out,
                  "\n`tandem SUBCOMMAND --help` lists a subcommand's flags. "
                  "Exit codes: 0 success,\n1 runtime error, 2 usage error.\n");
  return out;
}

int RunTandem(int argc, char** argv) {
  // A closed stdout becomes a write error with a message, not a signal.
  std::signal(SIGPIPE, SIG_IGN);
  const absl::Span<char* const> args(argv + 1, argc > 0 ? argc - 1 : 0);
  if (args.empty()) {
    std::fputs(Usage().c_str(), stderr);
    return kExitUsageError;
  }
  const std::string_view name = args[0];
  if (name == "--help" || name == "-h" || name == "help" ||
      name == "--helpfull") {
    std::fputs(Usage().c_str(), stdout);
    return 0;
  }
  for (const Command& command : kCommands) {
    if (command.name == name) return command.run(args.subspan(1));
  }
  std::fprintf(stderr,
               "tandem: unknown subcommand '%s' (expected bench, generate, "
               "health, score or tokenize; see tandem --help)\n",
               argv[1]);
  return kExitUsageError;
}

}  // namespace
}  // namespace tandem

int main(int argc, char** argv) { return tandem::RunTandem(argc, argv); }
