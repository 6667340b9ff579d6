#include "service/node_main.h"

#include <cstdlib>
#include <filesystem>
#include <string>

#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/strings/match.h"
#include "glog/logging.h"

namespace tandem {

void InitServerMain(int argc, char** argv, absl::string_view usage_message,
                    absl::string_view main_file,
                    const absl::Flag<int>& verbosity) {
  absl::SetProgramUsageMessage(usage_message);
  absl::FlagsUsageConfig usage;
  usage.contains_help_flags =
      [file = std::string(main_file)](absl::string_view path) {
        return absl::EndsWith(path, file);
      };
  usage.contains_helpshort_flags = usage.contains_help_flags;
  absl::SetFlagsUsageConfig(usage);
  absl::ParseCommandLine(argc, argv);
  FLAGS_logtostderr = true;
  FLAGS_v = absl::GetFlag(verbosity);
  google::InitGoogleLogging(argv[0]);
}

int ServerExitCode(absl::string_view what, const absl::Status& status) {
  if (status.ok()) return EXIT_SUCCESS;
  LOG(ERROR) << what << " failed status=" << status;
  return EXIT_FAILURE;
}

std::string WorkerModelName(const std::string& model_name,
                            const std::string& model_dir) {
  if (!model_name.empty()) return model_name;
  std::filesystem::path dir(model_dir);
  if (!dir.has_filename()) dir = dir.parent_path();
  return dir.filename().string();
}

sigset_t BlockStopSignals() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  return signals;
}

int WaitForStopSignal(const sigset_t& signals) {
  int signal_number = 0;
  sigwait(&signals, &signal_number);
  return signal_number;
}

}  // namespace tandem
