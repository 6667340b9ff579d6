// Test-only: tiny checkpoints written tensor by tensor, with values that a
// test can predict exactly, for the model loading tests.
#ifndef TANDEM_ENGINE_TEST_CHECKPOINT_H_
#define TANDEM_ENGINE_TEST_CHECKPOINT_H_

#include <cstdint>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "engine/model_config.h"
#include "engine/safetensors_writer.h"
#include "engine/weights_test_util.h"
#include "nlohmann/json.hpp"

namespace tandem::testing {

// A two-layer Llama with grouped-query attention, small enough to check
// every value.
inline ModelConfig TinyConfig() {
  ModelConfig c;
  c.architecture = "LlamaForCausalLM";
  c.vocab_size = 11;
  c.hidden_size = 8;
  c.intermediate_size = 12;
  c.num_layers = 2;
  c.num_heads = 2;
  c.num_kv_heads = 1;
  c.head_dim = 4;
  c.bos_token_id = 1;
  c.eos_token_ids = {2};
  return c;
}

// Value `i` of the tensor with id `id`: multiples of 1/4 in [-7.5, 7.5], so
// exact in F16 and BF16 as well as F32.
inline float ExpectedValue(int id, int64_t i) {
  return static_cast<float>((i + 7 * id) % 61 - 30) * 0.25f;
}

// Every tensor of a model with `c`'s shape, in a fixed order, with ids.
struct TensorPlan {
  SafetensorsEntry entry;
  int id;
};

inline std::vector<TensorPlan> PlanTensors(const ModelConfig& c, bool bias) {
  const int64_t h = c.hidden_size, q = c.q_dim(), kv = c.kv_dim();
  const int64_t f = c.intermediate_size;
  std::vector<std::pair<std::string, std::vector<int64_t>>> named = {
      {"model.embed_tokens.weight", {c.vocab_size, h}}};
  for (int l = 0; l < c.num_layers; ++l) {
    const std::string p = absl::StrCat("model.layers.", l, ".");
    named.push_back({p + "input_layernorm.weight", {h}});
    named.push_back({p + "self_attn.q_proj.weight", {q, h}});
    named.push_back({p + "self_attn.k_proj.weight", {kv, h}});
    named.push_back({p + "self_attn.v_proj.weight", {kv, h}});
    if (bias) {
      named.push_back({p + "self_attn.q_proj.bias", {q}});
      named.push_back({p + "self_attn.k_proj.bias", {kv}});
      named.push_back({p + "self_attn.v_proj.bias", {kv}});
    }
    named.push_back({p + "self_attn.o_proj.weight", {h, q}});
    named.push_back({p + "post_attention_layernorm.weight", {h}});
    named.push_back({p + "mlp.gate_proj.weight", {f, h}});
    named.push_back({p + "mlp.up_proj.weight", {f, h}});
    named.push_back({p + "mlp.down_proj.weight", {h, f}});
  }
  named.push_back({"model.norm.weight", {h}});
  if (!c.tie_word_embeddings) {
    named.push_back({"lm_head.weight", {c.vocab_size, h}});
  }
  std::vector<TensorPlan> plan;
  for (auto& [name, shape] : named) {
    plan.push_back(
        {{name, SafetensorsDtype::kF32, shape}, static_cast<int>(plan.size())});
  }
  return plan;
}

inline int64_t NumElements(const SafetensorsEntry& e) {
  int64_t n = 1;
  for (int64_t d : e.shape) n *= d;
  return n;
}

inline SafetensorsTensorBytes Materialize(const TensorPlan& t) {
  std::vector<float> values(NumElements(t.entry));
  for (size_t i = 0; i < values.size(); ++i) values[i] = ExpectedValue(t.id, i);
  return {t.entry, EncodeFloats(values, t.entry.dtype)};
}

// Writes config.json and the tensors of `plan`, in one file or in `shards`
// files with an index.
inline void WriteModel(const std::filesystem::path& dir, const ModelConfig& c,
                       const std::vector<TensorPlan>& plan, int shards = 1) {
  WriteFile(dir / "config.json", ModelConfigToJson(c));
  if (shards == 1) {
    std::vector<SafetensorsTensorBytes> tensors;
    for (const TensorPlan& t : plan) tensors.push_back(Materialize(t));
    WriteFile(dir / "model.safetensors", EncodeSafetensors(tensors));
    return;
  }
  nlohmann::json index = {{"metadata", {{"total_size", 0}}}};
  std::vector<std::vector<SafetensorsTensorBytes>> files(shards);
  for (size_t i = 0; i < plan.size(); ++i) {
    const int shard = static_cast<int>(i % shards);
    files[shard].push_back(Materialize(plan[i]));
    index["weight_map"][plan[i].entry.name] = absl::StrCat(
        "model-0000", shard + 1, "-of-0000", shards, ".safetensors");
  }
  for (int s = 0; s < shards; ++s) {
    WriteFile(dir / absl::StrCat("model-0000", s + 1, "-of-0000", shards,
                                 ".safetensors"),
              EncodeSafetensors(files[s]));
  }
  WriteFile(dir / "model.safetensors.index.json", index.dump());
}

}  // namespace tandem::testing

#endif  // TANDEM_ENGINE_TEST_CHECKPOINT_H_
