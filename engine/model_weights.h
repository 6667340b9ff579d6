// The weights of a Llama-family model, loaded from a Hugging Face model
// directory: `config.json` plus `model.safetensors` or shards listed in
// `model.safetensors.index.json`.
//
// Every matrix is row-major F32 in Hugging Face's orientation: a linear layer
// with `in` inputs and `out` outputs is stored [out, in], so y = W x.
//
// Memory: an F32 tensor whose bytes are 4-byte aligned in its file is used
// in place, inside a read-only memory map of the file (no copy); other F32
// tensors and every F16 or BF16 tensor are converted into owned buffers.
// A loaded ModelWeights is immutable, so any number of threads may read it.
#ifndef TANDEM_ENGINE_MODEL_WEIGHTS_H_
#define TANDEM_ENGINE_MODEL_WEIGHTS_H_

#include <array>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/model_config.h"

namespace tandem {

// A 128-bit digest of a model's config and weights. Two models with the same
// fingerprint compute the same KV cache for the same tokens.
//
// It is XXH3-128 over, in order: the config.json bytes, then each weight
// file's bytes in file-name order, each of these preceded by its length as
// 8 little-endian bytes. words[0] holds the low 64 bits.
struct Fingerprint {
  std::array<uint64_t, 2> words{};
  friend bool operator==(const Fingerprint&, const Fingerprint&) = default;
};

struct LayerWeights {
  const float* attn_norm;  // [hidden]
  const float* q_proj;     // [num_heads * head_dim, hidden]
  const float* k_proj;     // [num_kv_heads * head_dim, hidden]
  const float* v_proj;     // [num_kv_heads * head_dim, hidden]
  const float* q_bias;     // [num_heads * head_dim] or null
  const float* k_bias;     // [num_kv_heads * head_dim] or null
  const float* v_bias;     // [num_kv_heads * head_dim] or null
  const float* o_proj;     // [hidden, num_heads * head_dim]
  const float* mlp_norm;   // [hidden]
  const float* gate_proj;  // [intermediate, hidden]
  const float* up_proj;    // [intermediate, hidden]
  const float* down_proj;  // [hidden, intermediate]
};

class ModelWeights {
 public:
  // Loads the model directory `dir`. F32 tensors are memory-mapped; F16 and
  // BF16 tensors are converted to F32. Errors name the file and the fault:
  // NotFound for a missing file, InvalidArgument for a malformed config,
  // header or index, a wrong shape or dtype, or a missing or unexpected
  // tensor. `*.rotary_emb.inv_freq` buffers are ignored.
  //
  // Qwen2: config().attention_bias tells whether the checkpoint has the q, k
  // and v biases (all layers must agree). Tied embeddings: lm_head.weight
  // may be present anyway only if it equals model.embed_tokens.weight.
  static absl::StatusOr<std::unique_ptr<ModelWeights>> Load(
      const std::filesystem::path& dir);

  ModelWeights(const ModelWeights&) = delete;
  ModelWeights& operator=(const ModelWeights&) = delete;
  ~ModelWeights();

  const ModelConfig& config() const { return config_; }
  const Fingerprint& fingerprint() const { return fingerprint_; }

  const float* embed_tokens() const {
    return embed_tokens_;
  }  // [vocab, hidden]
  const std::vector<LayerWeights>& layers() const { return layers_; }
  const float* final_norm() const { return final_norm_; }  // [hidden]
  // [vocab, hidden]; equals embed_tokens() when the embeddings are tied.
  const float* lm_head() const { return lm_head_; }

 private:
  struct Storage;  // mapped files and converted buffers
  ModelWeights();

  ModelConfig config_;
  Fingerprint fingerprint_;
  const float* embed_tokens_ = nullptr;
  std::vector<LayerWeights> layers_;
  const float* final_norm_ = nullptr;
  const float* lm_head_ = nullptr;
  std::unique_ptr<Storage> storage_;
};

}  // namespace tandem

#endif  // TANDEM_ENGINE_MODEL_WEIGHTS_H_
