// `tandem health HOST:PORT`: the standard gRPC health check of any Tandem
// server (router, workers, store nodes), for scripts and operators.
#include <cstdio>
#include <optional>
#include <string>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "router/router_client.h"
#include "tools/cli_args.h"
#include "tools/cli_common.h"
#include "tools/commands.h"

ABSL_FLAG(std::string, service, "",
          "the service to ask about; empty: the server as a whole. A "
          "router's tandem.v1.Router is SERVING only while it has a prefill "
          "and a decode worker, or a colocated worker");
ABSL_FLAG(absl::Duration, timeout, absl::Seconds(2), "deadline of one check");
ABSL_FLAG(absl::Duration, wait, absl::ZeroDuration(),
          "keep checking (every 100ms) until SERVING or this long has "
          "passed; 0: check once");

namespace tandem {
namespace {

constexpr std::string_view kCommand = "health";

constexpr char kUsage[] =
    "Usage: tandem health HOST:PORT [--service NAME] [--wait 30s]\n\n"
    "Prints the server's gRPC health (SERVING, NOT_SERVING, ...) and exits 0\n"
    "only if it is SERVING.\n\nFlags:\n";

const FlagScope& Scope() {
  static const FlagScope* scope = new FlagScope{{"health_command.cc"}, {}};
  return *scope;
}

int Check(const std::string& address) {
  const absl::Duration timeout = absl::GetFlag(FLAGS_timeout);
  const absl::Duration wait = absl::GetFlag(FLAGS_wait);
  if (timeout <= absl::ZeroDuration() || wait < absl::ZeroDuration()) {
    return ReportError(
        kCommand,
        absl::InvalidArgumentError("--timeout must be positive and --wait "
                                   "not negative"),
        kExitUsageError);
  }
  const absl::Time give_up = absl::Now() + wait;
  for (;;) {
    absl::StatusOr<HealthState> state =
        CheckHealth(address, absl::GetFlag(FLAGS_service), timeout);
    if (state.ok() && *state == HealthState::kServing) {
      std::printf("%s\n", HealthStateName(*state));
      return 0;
    }
    if (absl::Now() >= give_up) {
      if (state.ok()) {
        std::printf("%s\n", HealthStateName(*state));
        return kExitRuntimeError;
      }
      return ReportError(
          kCommand,
          absl::Status(state.status().code(),
                       absl::StrCat(address, ": ", state.status().message())),
          kExitRuntimeError);
    }
    absl::SleepFor(absl::Milliseconds(100));
  }
}

}  // namespace

int RunHealthCommand(absl::Span<char* const> args) {
  int exit_code = 0;
  std::optional<ParsedArgs> parsed =
      ParseCommandArgs(args, Scope(), kCommand, kUsage, &exit_code);
  if (!parsed.has_value()) return exit_code;
  if (parsed->positional.size() != 1) {
    return ReportError(
        kCommand, absl::InvalidArgumentError("expected one HOST:PORT argument"),
        kExitUsageError);
  }
  return Check(parsed->positional[0]);
}

}  // namespace tandem
