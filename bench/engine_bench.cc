// engine_bench: prefill and decode speed of the engine, reported as fractions
// of the machine's own sgemm rate and memory bandwidth measured in the same
// run.
//
// By default it writes a random checkpoint of the 125M-parameter benchmark
// shape (hidden 768, 12 layers, 12 heads, 4 KV heads, intermediate 2048,
// vocab 32000) into a temporary directory and loads it like any other.
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "bench/engine_figures.h"
#include "bench/machine_limits.h"
#include "engine/kernels.h"
#include "engine/model.h"
#include "engine/status_macros.h"
#include "nlohmann/json.hpp"
#include "tools/random_model.h"

ABSL_FLAG(std::string, model, "",
          "model directory; empty writes a random 125M-parameter checkpoint");
ABSL_FLAG(int, threads, 2, "engine threads");
ABSL_FLAG(int, prompt_tokens, 512, "prefill prompt length");
ABSL_FLAG(int, context, 128, "context length of each decoding sequence");
ABSL_FLAG(std::string, batches, "1,16,32", "decode batch sizes");
ABSL_FLAG(int, decode_steps, 8, "timed decode steps per batch size");
ABSL_FLAG(int, repetitions, 3, "repetitions of each measurement (best kept)");
ABSL_FLAG(double, bandwidth_gib, 4.0, "GiB read to measure memory bandwidth");
ABSL_FLAG(bool, json, false, "print one JSON object instead of a table");

namespace tandem::bench {
namespace {

absl::StatusOr<std::filesystem::path> PrepareModel(
    std::filesystem::path* temp_dir) {
  if (!absl::GetFlag(FLAGS_model).empty()) return absl::GetFlag(FLAGS_model);
  *temp_dir = std::filesystem::temp_directory_path() /
              ("tandem_bench_" + std::to_string(::getpid()));
  RandomModelOptions options;
  options.config = BenchmarkModelConfig();
  options.seed = 1;
  TANDEM_RETURN_IF_ERROR(WriteRandomModel(options, *temp_dir));
  return *temp_dir;
}

absl::StatusOr<std::vector<int>> ParseBatches(const std::string& text) {
  std::vector<int> batches;
  for (absl::string_view part : absl::StrSplit(text, ',')) {
    int b = 0;
    if (!absl::SimpleAtoi(part, &b) || b < 1) {
      return absl::InvalidArgumentError(
          "--batches must be a comma-separated list of positive integers");
    }
    batches.push_back(b);
  }
  return batches;
}

absl::Status Run() {
  const int threads = absl::GetFlag(FLAGS_threads);
  if (threads < 1) return absl::InvalidArgumentError("--threads must be >= 1");
  TANDEM_ASSIGN_OR_RETURN(std::vector<int> batches,
                          ParseBatches(absl::GetFlag(FLAGS_batches)));
  SetEngineThreads(threads);

  std::filesystem::path temp_dir;
  auto dir = PrepareModel(&temp_dir);
  if (!dir.ok()) return dir.status();
  auto model = Model::Load(*dir);
  if (!temp_dir.empty()) std::filesystem::remove_all(temp_dir);
  if (!model.ok()) return model.status();

  BenchSettings settings;
  settings.prompt_tokens = absl::GetFlag(FLAGS_prompt_tokens);
  settings.context = absl::GetFlag(FLAGS_context);
  settings.decode_steps = absl::GetFlag(FLAGS_decode_steps);
  settings.repetitions = absl::GetFlag(FLAGS_repetitions);
  settings.batches = batches;
  settings.threads = threads;
  TANDEM_ASSIGN_OR_RETURN(EngineFigures figures,
                          MeasureEngine(**model, settings));

  const ModelConfig& c = (*model)->config();
  figures.sgemm_gflops =
      MeasureSgemmGflops(settings.prompt_tokens, c.hidden_size,
                         c.intermediate_size, settings.repetitions);
  figures.read_bandwidth_gbs = MeasureReadBandwidth(
      static_cast<size_t>(absl::GetFlag(FLAGS_bandwidth_gib) * (1ull << 30)),
      settings.repetitions);
  if (absl::GetFlag(FLAGS_json)) {
    std::printf("%s\n", FiguresToJson(figures).dump().c_str());
  } else {
    PrintFigures(figures);
  }
  return absl::OkStatus();
}

}  // namespace
}  // namespace tandem::bench

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Measures prefill and decode speed against the machine's sgemm rate "
      "and memory bandwidth.\nUsage: engine_bench [--json] [--model DIR]");
  absl::ParseCommandLine(argc, argv);
  const absl::Status status = tandem::bench::Run();
  if (!status.ok()) {
    std::fprintf(stderr, "engine_bench: %s\n", status.ToString().c_str());
    return 1;
  }
  return 0;
}
