// The architecture of a Llama-family model, read from a Hugging Face
// `config.json` (LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM).
#ifndef TANDEM_ENGINE_MODEL_CONFIG_H_
#define TANDEM_ENGINE_MODEL_CONFIG_H_

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace tandem {

// How rotary frequencies are rescaled for contexts longer than training.
struct RopeScaling {
  enum class Type { kNone, kLinear, kLlama3 };
  Type type = Type::kNone;
  float factor = 1.0f;
  // Llama 3 only.
  float low_freq_factor = 1.0f;
  float high_freq_factor = 4.0f;
  int original_max_position_embeddings = 8192;
};

struct ModelConfig {
  std::string architecture;  // e.g. "LlamaForCausalLM"
  int vocab_size = 0;
  int hidden_size = 0;
  int intermediate_size = 0;
  int num_layers = 0;
  int num_heads = 0;
  int num_kv_heads = 0;
  int head_dim = 0;  // hidden_size / num_heads unless config says otherwise
  float rms_norm_eps = 1e-6f;
  float rope_theta = 10000.0f;
  RopeScaling rope_scaling;
  bool tie_word_embeddings = false;
  bool attention_bias = false;  // bias on q, k and v projections (Qwen2)
  int max_position_embeddings = 2048;
  int bos_token_id = -1;  // -1: none
  std::vector<int> eos_token_ids;

  int q_dim() const { return num_heads * head_dim; }
  int kv_dim() const { return num_kv_heads * head_dim; }
};

// Parses the text of a config.json. `source` names the file in errors.
// Returns InvalidArgument for malformed JSON, a missing or mistyped field, a
// value out of range, or an unsupported architecture or rope scaling.
absl::StatusOr<ModelConfig> ParseModelConfig(std::string_view json,
                                             std::string_view source);

// Reads and parses `path`. NotFound if the file does not exist.
absl::StatusOr<ModelConfig> LoadModelConfig(const std::filesystem::path& path);

}  // namespace tandem

#endif  // TANDEM_ENGINE_MODEL_CONFIG_H_
