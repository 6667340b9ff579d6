// The figures engine_bench reports, how they are measured, and how they are
// turned into fractions of the machine's limits.
#ifndef TANDEM_BENCH_ENGINE_FIGURES_H_
#define TANDEM_BENCH_ENGINE_FIGURES_H_

#include <vector>

#include "absl/status/statusor.h"
#include "engine/model.h"
#include "engine/model_config.h"
#include "nlohmann/json.hpp"

namespace tandem::bench {

// Hidden 768, 12 layers, 12 heads, 4 KV heads, intermediate 2048, vocab
// 32000, untied embeddings: about 125M parameters.
ModelConfig BenchmarkModelConfig();

struct BenchSettings {
  int prompt_tokens = 512;
  int context = 128;
  int decode_steps = 8;
  int repetitions = 3;
  int threads = 2;
  std::vector<int> batches = {1, 16, 32};
};

struct DecodeFigure {
  int batch = 0;
  double tokens_per_second = 0;
};

struct EngineFigures {
  BenchSettings settings;
  double parameters = 0;  // all weights, embedding included
  double prefill_tokens_per_second = 0;
  double prefill_flops = 0;           // per prefill of settings.prompt_tokens
  double decode_bytes_per_token = 0;  // weights read by one batch-1 step
  std::vector<DecodeFigure> decode;
  // Machine limits, measured in the same run.
  double sgemm_gflops = 0;
  double read_bandwidth_gbs = 0;
};

// Times prefill (logits of the last position only) and decode steps at each
// batch size. Returns the model's errors, or ResourceExhausted if the KV
// cache it sizes cannot be allocated.
absl::StatusOr<EngineFigures> MeasureEngine(Model& model,
                                            const BenchSettings& settings);

// Prefill GFLOP/s over the sgemm rate.
double PrefillFraction(const EngineFigures& f);
// Batch-1 decode tokens/s over the bandwidth bound (bandwidth / bytes).
double DecodeFraction(const EngineFigures& f);
// Decode tokens/s at `batch` over batch 1; 0 if either was not measured.
double DecodeSpeedup(const EngineFigures& f, int batch);

nlohmann::json FiguresToJson(const EngineFigures& f);
void PrintFigures(const EngineFigures& f);

}  // namespace tandem::bench

#endif  // TANDEM_BENCH_ENGINE_FIGURES_H_
