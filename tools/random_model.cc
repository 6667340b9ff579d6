#include "tools/random_model.h"

#include <stdlib.h>
#include <xxhash.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <fstream>
#include <system_error>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "engine/status_macros.h"
#include "nlohmann/json.hpp"

namespace tandem {
namespace {

namespace fs = std::filesystem;

constexpr char kQwen2[] = "Qwen2ForCausalLM";

template <typename... Parts>
absl::Status Bad(const Parts&... parts) {
  return absl::InvalidArgumentError(absl::StrCat(parts...));
}

// splitmix64: a small, well-mixed generator whose output is the same on
// every platform.
uint64_t SplitMix64(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

absl::StatusOr<SafetensorsDtype> ParseDtype(const std::string& name) {
  if (name == "f32") return SafetensorsDtype::kF32;
  if (name == "f16") return SafetensorsDtype::kF16;
  if (name == "bf16") return SafetensorsDtype::kBF16;
  return Bad("--dtype=", name, " must be f32, f16 or bf16");
}

absl::Status CheckSizes(const RandomModelFlags& f) {
  const std::pair<const char*, int> sizes[] = {
      {"--hidden_size", f.hidden_size},
      {"--intermediate_size", f.intermediate_size},
      {"--num_layers", f.num_layers},
      {"--num_heads", f.num_heads},
      {"--vocab_size", f.vocab_size},
      {"--max_position_embeddings", f.max_position_embeddings},
      {"--shards", f.shards}};
  for (const auto& [flag, value] : sizes) {
    if (value < 1) return Bad(flag, "=", value, " must be at least 1");
  }
  if (f.num_kv_heads < 0 || f.head_dim < 0) {
    return Bad("--num_kv_heads and --head_dim must not be negative");
  }
  if (!(f.rms_norm_eps > 0) || !std::isfinite(f.rms_norm_eps)) {
    return Bad("--rms_norm_eps=", f.rms_norm_eps, " must be positive");
  }
  if (!(f.rope_theta > 0) || !std::isfinite(f.rope_theta)) {
    return Bad("--rope_theta=", f.rope_theta, " must be positive");
  }
  return absl::OkStatus();
}

absl::Status SetHeads(const RandomModelFlags& f, ModelConfig& c) {
  c.num_heads = f.num_heads;
  c.num_kv_heads = f.num_kv_heads == 0 ? f.num_heads : f.num_kv_heads;
  if (c.num_heads % c.num_kv_heads != 0) {
    return Bad("--num_kv_heads=", c.num_kv_heads,
               " must divide --num_heads=", c.num_heads);
  }
  if (f.head_dim == 0 && f.hidden_size % f.num_heads != 0) {
    return Bad("--num_heads=", f.num_heads,
               " must divide --hidden_size=", f.hidden_size,
               " unless --head_dim is set");
  }
  c.head_dim = f.head_dim == 0 ? f.hidden_size / f.num_heads : f.head_dim;
  if (c.head_dim % 2 != 0) {
    return Bad("--head_dim=", c.head_dim, " must be even");
  }
  return absl::OkStatus();
}

absl::Status SetRopeScaling(const RandomModelFlags& f, RopeScaling& s) {
  if (f.rope_scaling == "none") return absl::OkStatus();
  if (f.rope_scaling != "linear" && f.rope_scaling != "llama3") {
    return Bad("--rope_scaling=", f.rope_scaling,
               " must be none, linear or llama3");
  }
  if (!(f.rope_factor >= 1) || !std::isfinite(f.rope_factor)) {
    return Bad("--rope_factor=", f.rope_factor, " must be at least 1");
  }
  s.type = RopeScaling::Type::kLinear;
  s.factor = static_cast<float>(f.rope_factor);
  if (f.rope_scaling == "linear") return absl::OkStatus();
  s.type = RopeScaling::Type::kLlama3;
  if (!(f.rope_low_freq_factor > 0) ||
      !(f.rope_high_freq_factor > f.rope_low_freq_factor)) {
    return Bad("--rope_low_freq_factor=", f.rope_low_freq_factor,
               " and --rope_high_freq_factor=", f.rope_high_freq_factor,
               " must satisfy 0 < low < high");
  }
  if (f.rope_original_max_position_embeddings < 1) {
    return Bad("--rope_original_max_position_embeddings must be at least 1");
  }
  s.low_freq_factor = static_cast<float>(f.rope_low_freq_factor);
  s.high_freq_factor = static_cast<float>(f.rope_high_freq_factor);
  s.original_max_position_embeddings = f.rope_original_max_position_embeddings;
  return absl::OkStatus();
}

absl::Status SetTokens(const RandomModelFlags& f, ModelConfig& c) {
  if (f.bos_token_id < -1 || f.bos_token_id >= f.vocab_size) {
    return Bad("--bos_token_id=", f.bos_token_id, " must be -1 or below ",
               "--vocab_size=", f.vocab_size);
  }
  c.bos_token_id = f.bos_token_id;
  if (f.eos_token_id.empty()) return absl::OkStatus();
  for (absl::string_view part : absl::StrSplit(f.eos_token_id, ',')) {
    int id;
    if (!absl::SimpleAtoi(part, &id) || id < 0 || id >= f.vocab_size) {
      return Bad("--eos_token_id=", f.eos_token_id,
                 " must be a comma-separated list of ids below --vocab_size=",
                 f.vocab_size);
    }
    c.eos_token_ids.push_back(id);
  }
  return absl::OkStatus();
}

absl::StatusOr<ModelConfig> ConfigFromFlags(const RandomModelFlags& f) {
  TANDEM_RETURN_IF_ERROR(CheckSizes(f));
  ModelConfig c;
  c.architecture = f.architecture;
  if (f.architecture != "LlamaForCausalLM" &&
      f.architecture != "MistralForCausalLM" && f.architecture != kQwen2) {
    return Bad("--architecture=", f.architecture,
               " must be LlamaForCausalLM, MistralForCausalLM or ", kQwen2);
  }
  if (f.attention_bias && f.architecture != kQwen2) {
    return Bad("--attention_bias needs --architecture=", kQwen2);
  }
  c.vocab_size = f.vocab_size;
  c.hidden_size = f.hidden_size;
  c.intermediate_size = f.intermediate_size;
  c.num_layers = f.num_layers;
  TANDEM_RETURN_IF_ERROR(SetHeads(f, c));
  c.rms_norm_eps = static_cast<float>(f.rms_norm_eps);
  c.rope_theta = static_cast<float>(f.rope_theta);
  TANDEM_RETURN_IF_ERROR(SetRopeScaling(f, c.rope_scaling));
  c.tie_word_embeddings = f.tie_word_embeddings;
  c.attention_bias = f.attention_bias;
  c.max_position_embeddings = f.max_position_embeddings;
  TANDEM_RETURN_IF_ERROR(SetTokens(f, c));
  // Whatever the flag checks missed, the loader's own checks catch here.
  absl::Status parsed = ParseModelConfig(ModelConfigToJson(c), "").status();
  if (!parsed.ok()) return Bad("invalid model", parsed.message());
  return c;
}

// Which shard each tensor goes to: contiguous runs of roughly equal bytes,
// every shard non-empty. REQUIRES: 1 <= shards <= entries.size().
std::vector<int> AssignShards(const std::vector<SafetensorsEntry>& entries,
                              int shards) {
  uint64_t total = 0;
  for (const SafetensorsEntry& e : entries) total += e.ByteSize();
  const int count = static_cast<int>(entries.size());
  std::vector<int> shard(count);
  uint64_t before = 0;
  int previous = 0;
  for (int i = 0; i < count; ++i) {
    const int by_bytes =
        total == 0 ? 0 : static_cast<int>(before * shards / total);
    const int needed = shards - (count - i);  // leave one per later shard
    previous = std::min(previous + (i > 0 ? 1 : 0),
                        std::max({previous, by_bytes, needed}));
    shard[i] = previous;
    before += entries[i].ByteSize();
  }
  return shard;
}

absl::Status WriteShard(const fs::path& path,
                        const std::vector<SafetensorsEntry>& entries,
                        uint64_t seed) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out)
    return absl::ErrnoToStatus(errno, path.string() + ": cannot create");
  out << EncodeSafetensorsHeader(entries);
  for (const SafetensorsEntry& e : entries) {
    out << EncodeFloats(RandomTensorValues(e, seed), e.dtype);
  }
  out.close();
  if (!out) return absl::ErrnoToStatus(errno, path.string() + ": write failed");
  return absl::OkStatus();
}

absl::Status WriteText(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  out.close();
  if (!out) return absl::ErrnoToStatus(errno, path.string() + ": write failed");
  return absl::OkStatus();
}

// Writes every file of the model into the existing directory `dir`.
absl::Status WriteFiles(const RandomModelOptions& options,
                        const fs::path& dir) {
  TANDEM_RETURN_IF_ERROR(
      WriteText(dir / "config.json", ModelConfigToJson(options.config)));
  const auto entries = RandomModelTensors(options.config, options.dtype);
  if (options.shards == 1) {
    return WriteShard(dir / "model.safetensors", entries, options.seed);
  }
  const std::vector<int> shard_of = AssignShards(entries, options.shards);
  nlohmann::ordered_json index;
  uint64_t total = 0;
  for (const SafetensorsEntry& e : entries) total += e.ByteSize();
  index["metadata"]["total_size"] = total;
  for (int s = 0; s < options.shards; ++s) {
    const std::string name = absl::StrFormat("model-%05d-of-%05d.safetensors",
                                             s + 1, options.shards);
    std::vector<SafetensorsEntry> mine;
    for (size_t i = 0; i < entries.size(); ++i) {
      if (shard_of[i] != s) continue;
      mine.push_back(entries[i]);
      index["weight_map"][entries[i].name] = name;
    }
    TANDEM_RETURN_IF_ERROR(WriteShard(dir / name, mine, options.seed));
  }
  return WriteText(dir / "model.safetensors.index.json", index.dump(2) + "\n");
}

// Checks options that did not come from RandomModelOptionsFromFlags.
absl::Status CheckOptions(const RandomModelOptions& options) {
  if (options.dtype != SafetensorsDtype::kF32 &&
      options.dtype != SafetensorsDtype::kF16 &&
      options.dtype != SafetensorsDtype::kBF16) {
    return Bad("dtype must be F32, F16 or BF16");
  }
  absl::Status parsed =
      ParseModelConfig(ModelConfigToJson(options.config), "").status();
  if (!parsed.ok()) return Bad("invalid model", parsed.message());
  const size_t tensors =
      RandomModelTensors(options.config, options.dtype).size();
  if (options.shards < 1 || static_cast<size_t>(options.shards) > tensors) {
    return Bad("shards=", options.shards, " must be between 1 and the model's ",
               tensors, " tensors");
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<RandomModelOptions> RandomModelOptionsFromFlags(
    const RandomModelFlags& flags) {
  if (flags.out.empty()) return Bad("--out is required");
  RandomModelOptions options;
  TANDEM_ASSIGN_OR_RETURN(options.dtype, ParseDtype(flags.dtype));
  TANDEM_ASSIGN_OR_RETURN(options.config, ConfigFromFlags(flags));
  options.seed = flags.seed;
  options.shards = flags.shards;
  const size_t tensors =
      RandomModelTensors(options.config, options.dtype).size();
  if (static_cast<size_t>(flags.shards) > tensors) {
    return Bad("--shards=", flags.shards, " exceeds the model's ", tensors,
               " tensors");
  }
  return options;
}

std::vector<SafetensorsEntry> RandomModelTensors(const ModelConfig& c,
                                                 SafetensorsDtype dtype) {
  const int64_t h = c.hidden_size, q = c.q_dim(), kv = c.kv_dim();
  const int64_t ffn = c.intermediate_size;
  std::vector<SafetensorsEntry> out;
  auto add = [&](std::string name, std::vector<int64_t> shape) {
    out.push_back({std::move(name), dtype, std::move(shape)});
  };
  add("model.embed_tokens.weight", {c.vocab_size, h});
  for (int l = 0; l < c.num_layers; ++l) {
    const std::string p = absl::StrCat("model.layers.", l, ".");
    add(p + "input_layernorm.weight", {h});
    add(p + "self_attn.q_proj.weight", {q, h});
    add(p + "self_attn.k_proj.weight", {kv, h});
    add(p + "self_attn.v_proj.weight", {kv, h});
    if (c.attention_bias) {
      add(p + "self_attn.q_proj.bias", {q});
      add(p + "self_attn.k_proj.bias", {kv});
      add(p + "self_attn.v_proj.bias", {kv});
    }
    add(p + "self_attn.o_proj.weight", {h, q});
    add(p + "post_attention_layernorm.weight", {h});
    add(p + "mlp.gate_proj.weight", {ffn, h});
    add(p + "mlp.up_proj.weight", {ffn, h});
    add(p + "mlp.down_proj.weight", {h, ffn});
  }
  add("model.norm.weight", {h});
  if (!c.tie_word_embeddings) add("lm_head.weight", {c.vocab_size, h});
  return out;
}

std::vector<float> RandomTensorValues(const SafetensorsEntry& entry,
                                      uint64_t seed) {
  uint64_t state = seed ^ XXH3_64bits(entry.name.data(), entry.name.size());
  SplitMix64(state);  // decorrelate nearby seeds
  const bool is_norm = entry.name.ends_with("norm.weight");
  const bool is_bias = entry.name.ends_with(".bias");
  const int64_t fan_in = entry.shape.empty() ? 1 : entry.shape.back();
  // Uniform on [-a, a] has standard deviation a / sqrt(3).
  const float scale = std::sqrt(3.0f / static_cast<float>(fan_in));
  int64_t n = 1;
  for (int64_t d : entry.shape) n *= d;
  std::vector<float> values(n);
  for (float& v : values) {
    // 24 random bits: uniform on [-1, 1).
    const float u =
        static_cast<float>(SplitMix64(state) >> 40) * 0x1p-23f - 1.0f;
    v = is_norm ? 1.0f + 0.1f * u : is_bias ? 0.1f * u : scale * u;
  }
  return values;
}

absl::Status WriteRandomModel(const RandomModelOptions& options,
                              const fs::path& out_arg) {
  TANDEM_RETURN_IF_ERROR(CheckOptions(options));
  fs::path out = out_arg.lexically_normal();
  if (out.filename().empty()) out = out.parent_path();
  std::error_code ec;
  if (fs::exists(out, ec) &&
      (!fs::is_directory(out, ec) || !fs::is_empty(out, ec))) {
    return Bad(out.string(), ": exists and is not an empty directory");
  }
  const fs::path parent = out.has_parent_path() ? out.parent_path() : ".";
  fs::create_directories(parent, ec);
  std::string tmp =
      (parent / absl::StrCat(".", out.filename().string(), ".tmp-XXXXXX"))
          .string();
  if (mkdtemp(tmp.data()) == nullptr) {
    return absl::ErrnoToStatus(errno, tmp + ": cannot create");
  }
  absl::Status status = WriteFiles(options, tmp);
  if (status.ok()) {
    using fs::perms;
    fs::permissions(tmp,
                    perms::owner_all | perms::group_read | perms::group_exec |
                        perms::others_read | perms::others_exec,
                    ec);
    if (rename(tmp.c_str(), out.c_str()) != 0) {
      status = absl::ErrnoToStatus(
          errno, absl::StrCat("cannot rename ", tmp, " to ", out.string()));
    }
  }
  if (!status.ok()) fs::remove_all(tmp, ec);
  return status;
}

}  // namespace tandem
