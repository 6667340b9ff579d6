// Writing Llama-family checkpoints with random weights, for tests and
// benchmarks that need a model of a given shape but not a trained one.
//
// The weights are a pure function of the seed and each tensor's name (a
// splitmix64 stream per tensor), so the same seed gives the same values
// whatever the dtype or the number of shards. They are scaled to keep
// activations sane: linear layers and embeddings uniform with standard
// deviation 1/sqrt(fan_in), norm weights uniform in [0.9, 1.1], biases
// uniform in [-0.1, 0.1]. All functions are thread-compatible.
#ifndef TANDEM_TOOLS_RANDOM_MODEL_H_
#define TANDEM_TOOLS_RANDOM_MODEL_H_

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "engine/model_config.h"
#include "engine/safetensors.h"
#include "engine/safetensors_writer.h"

namespace tandem {

// The command line of make_random_model, as plain values.
struct RandomModelFlags {
  std::string out;
  uint64_t seed = 0;
  std::string dtype = "f32";  // f32, f16 or bf16
  int shards = 1;
  std::string architecture = "LlamaForCausalLM";
  int hidden_size = 64;
  int intermediate_size = 128;
  int num_layers = 2;
  int num_heads = 4;
  int num_kv_heads = 0;  // 0: num_heads
  int head_dim = 0;      // 0: hidden_size / num_heads
  int vocab_size = 256;
  double rms_norm_eps = 1e-5;
  double rope_theta = 10000.0;
  std::string rope_scaling = "none";  // none, linear or llama3
  double rope_factor = 8.0;
  double rope_low_freq_factor = 1.0;
  double rope_high_freq_factor = 4.0;
  int rope_original_max_position_embeddings = 8192;
  bool tie_word_embeddings = false;
  bool attention_bias = false;
  int max_position_embeddings = 2048;
  int bos_token_id = 1;            // -1: none
  std::string eos_token_id = "2";  // comma-separated; empty: none
};

// What to write.
struct RandomModelOptions {
  ModelConfig config;
  uint64_t seed = 0;
  SafetensorsDtype dtype = SafetensorsDtype::kF32;
  int shards = 1;
};

// Checks `flags` and turns them into options. InvalidArgument naming the
// flag (e.g. "--num_kv_heads=3 must divide --num_heads=4") for any bad
// value, including --attention_bias with an architecture other than
// Qwen2ForCausalLM and more shards than tensors.
absl::StatusOr<RandomModelOptions> RandomModelOptionsFromFlags(
    const RandomModelFlags& flags);

// The tensors of a checkpoint for `config` (with q, k, v biases when
// config.attention_bias), in the order they are written, all in `dtype`.
std::vector<SafetensorsEntry> RandomModelTensors(const ModelConfig& config,
                                                 SafetensorsDtype dtype);

// The values of tensor `entry` for `seed`, as F32 before any rounding to
// the file's dtype.
std::vector<float> RandomTensorValues(const SafetensorsEntry& entry,
                                      uint64_t seed);

// Writes config.json and model.safetensors (or, for several shards,
// model-0000i-of-0000N.safetensors and model.safetensors.index.json) into
// directory `out`. Everything is written into a temporary sibling directory
// first and renamed to `out` at the end, so `out` is complete or absent.
// Returns InvalidArgument if `out` exists and is not an empty directory, or
// the options are invalid; the errno-derived status of a failed write, in
// which case nothing is left behind.
absl::Status WriteRandomModel(const RandomModelOptions& options,
                              const std::filesystem::path& out);

}  // namespace tandem

#endif  // TANDEM_TOOLS_RANDOM_MODEL_H_
