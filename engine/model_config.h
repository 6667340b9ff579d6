// The architecture of a Llama-family model, read from a Hugging Face
// `config.json` (LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM).
//
// Parsing validates every field it reads, so a ModelConfig that came from
// ParseModelConfig has positive sizes, heads divisible by KV heads, an even
// head_dim and token ids inside the vocabulary. Plain structs: no locking
// needed, copy freely.
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

  friend bool operator==(const RopeScaling&, const RopeScaling&) = default;
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
  // Bias on the q, k and v projections (never on o_proj). Qwen2 checkpoints
  // carry these biases: ParseModelConfig sets this for Qwen2ForCausalLM, and
  // ModelWeights::Load then sets it from whether the bias tensors exist.
  // Llama and Mistral configs with "attention_bias": true are rejected,
  // because there it also means an o_proj bias, which Tandem lacks.
  bool attention_bias = false;
  int max_position_embeddings = 2048;
  int bos_token_id = -1;  // -1: none
  std::vector<int> eos_token_ids;

  int q_dim() const { return num_heads * head_dim; }
  int kv_dim() const { return num_kv_heads * head_dim; }

  friend bool operator==(const ModelConfig&, const ModelConfig&) = default;
};

// Parses the text of a config.json. `source` names the file in errors.
// Returns InvalidArgument, naming `source` and the field, for malformed JSON,
// a missing or mistyped field, a value out of range, or an unsupported
// architecture, activation or rope scaling.
//
// Defaults for absent fields: num_key_value_heads = num_attention_heads,
// head_dim = hidden_size / num_attention_heads, rms_norm_eps 1e-6,
// rope_theta 10000, no rope scaling, untied embeddings, no attention bias
// (Qwen2: bias), max_position_embeddings 2048, no bos or eos token.
// "architectures" may be replaced by "model_type" (llama, mistral, qwen2).
// A rope_scaling whose type is "default" means no scaling.
absl::StatusOr<ModelConfig> ParseModelConfig(std::string_view json,
                                             std::string_view source);

// Reads and parses `path`. NotFound if the file does not exist; otherwise
// as ParseModelConfig, with the path as the source.
absl::StatusOr<ModelConfig> LoadModelConfig(const std::filesystem::path& path);

// Writes `config` as config.json text that ParseModelConfig reads back to an
// equal ModelConfig. REQUIRES: `config` is valid (as ParseModelConfig would
// return it).
std::string ModelConfigToJson(const ModelConfig& config);

}  // namespace tandem

#endif  // TANDEM_ENGINE_MODEL_CONFIG_H_
