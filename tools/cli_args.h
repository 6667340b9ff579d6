// Command-line parsing for the `tandem` subcommands.
//
// Flags are ordinary absl flags (ABSL_FLAG) defined in the subcommands'
// source files; this parser sets them from one subcommand's arguments and
// prints their help, so that each subcommand accepts only its own flags and
// a mistake is one clear line instead of an abort. It accepts:
//
//   --name=value   --name value   -name=value (one dash works too)
//   --flag  --flag=false  --noflag  --no-flag   (bool flags)
//   --max-tokens   dashes in a name read as underscores (--max_tokens)
//   --             everything after it is positional
//
// A flag named in `repeatable` may be given several times; every value is
// kept, in order. For other flags the last value wins.
//
// Not thread-safe: it writes absl flags, which are process-wide.
#ifndef TANDEM_TOOLS_CLI_ARGS_H_
#define TANDEM_TOOLS_CLI_ARGS_H_

#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace tandem {

// Which flags a subcommand takes: those defined in the files named here
// (base names, e.g. "generate_command.cc").
struct FlagScope {
  std::vector<std::string_view> files;
  // Flags (underscore spelling) that may be given more than once.
  std::vector<std::string_view> repeatable;
  // If set, the flags are defined as `<prefix><name>` (so that their names
  // cannot clash with other subcommands' flags) and given, listed and
  // reported as --<name>. `repeatable` names them without the prefix.
  std::string_view prefix;
};

struct ParsedArgs {
  std::vector<std::string> positional;
  // Every value given to each repeatable flag that appeared.
  absl::flat_hash_map<std::string, std::vector<std::string>> repeated;
  // --help, -h or --helpfull was given.
  bool help = false;
};

// Parses `args` (the arguments after the subcommand's name) and sets the
// flags they name. InvalidArgument, with a one-line message naming the
// argument, for a flag outside `scope`, a missing or malformed value, or a
// repeated flag that is not repeatable.
absl::StatusOr<ParsedArgs> ParseArgs(absl::Span<char* const> args,
                                     const FlagScope& scope);

// The help text of the flags in `scope`, one entry per flag sorted by name:
// "  --max-tokens=128" then its help text indented on the next line.
std::string FlagsHelp(const FlagScope& scope);

}  // namespace tandem

#endif  // TANDEM_TOOLS_CLI_ARGS_H_
