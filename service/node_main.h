// Process plumbing shared by Tandem's server binaries (router, kvstore,
// prefill_node, decode_node): setting up flags and logging in main(),
// turning the result of a Run... call into an exit code, a worker's default
// model name, and stopping on SIGINT or SIGTERM.
#ifndef TANDEM_SERVICE_NODE_MAIN_H_
#define TANDEM_SERVICE_NODE_MAIN_H_

#include <signal.h>

#include <string>

#include "absl/flags/flag.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace tandem {

// Sets the program's usage message, makes --help and --helpshort list only
// the flags defined in the file whose path ends with `main_file` (e.g.
// "router/main.cc"), parses the command line (a bad flag prints an error
// and exits, as absl does), then starts glog logging to stderr with the
// verbose level read from `verbosity` after parsing.
// REQUIRES: called once, first thing in main(), with main's argc and argv.
void InitServerMain(int argc, char** argv, absl::string_view usage_message,
                    absl::string_view main_file,
                    const absl::Flag<int>& verbosity);

// Returns main()'s exit code for `status`, the result of a binary's Run...
// call: EXIT_SUCCESS if it is OK; otherwise logs "<what> failed status=..."
// at ERROR and returns EXIT_FAILURE.
int ServerExitCode(absl::string_view what, const absl::Status& status);

// The model name a worker reports to the router: `model_name`, or when that
// is empty the last component of `model_dir` (a trailing '/' ignored).
std::string WorkerModelName(const std::string& model_name,
                            const std::string& model_dir);

// Blocks SIGINT and SIGTERM for the calling thread and every thread it
// starts later, and returns the set to pass to WaitForStopSignal.
// REQUIRES: called before any thread that should not see the signals is
// started.
sigset_t BlockStopSignals();

// Waits until one of `signals` arrives and returns its number.
// REQUIRES: `signals` is blocked in every thread (see BlockStopSignals).
int WaitForStopSignal(const sigset_t& signals);

}  // namespace tandem

#endif  // TANDEM_SERVICE_NODE_MAIN_H_
