#include "engine/model_config.h"

#include <charconv>
#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "engine/checkpoint.h"
#include "engine/status_macros.h"
#include "nlohmann/json.hpp"

namespace tandem {
namespace {

using Json = nlohmann::json;

// Sizes and counts beyond this are not a model Tandem can run, and keeping
// them below it keeps every product of two of them inside int64.
constexpr int64_t kMaxSize = int64_t{1} << 24;

struct Architecture {
  const char* name;
  const char* model_type;
};
constexpr Architecture kArchitectures[] = {
    {"LlamaForCausalLM", "llama"},
    {"MistralForCausalLM", "mistral"},
    {"Qwen2ForCausalLM", "qwen2"},
};
constexpr char kQwen2[] = "Qwen2ForCausalLM";

// Reads typed, range-checked fields of one JSON object; every error names
// the source file and the field.
class FieldReader {
 public:
  FieldReader(const Json& object, std::string_view source, std::string prefix)
      : object_(object), source_(source), prefix_(std::move(prefix)) {}

  absl::Status Error(std::string_view key, std::string_view what) const {
    return absl::InvalidArgumentError(absl::StrCat(source_, ": field '",
                                                   prefix_, std::string(key),
                                                   "' ", std::string(what)));
  }

  // The field's value, or null when it is absent or JSON null.
  const Json* Find(std::string_view key) const {
    auto it = object_.find(key);
    if (it == object_.end() || it->is_null()) return nullptr;
    return &*it;
  }

  absl::StatusOr<int64_t> Int(std::string_view key,
                              std::optional<int64_t> fallback, int64_t min,
                              int64_t max) const {
    const Json* value = Find(key);
    if (value == nullptr) {
      if (!fallback.has_value()) return Error(key, "is missing");
      return *fallback;
    }
    TANDEM_ASSIGN_OR_RETURN(int64_t v, AsInt(key, *value));
    if (v < min || v > max) {
      return Error(key, absl::StrCat("must be between ", min, " and ", max,
                                     ", got ", v));
    }
    return v;
  }

  absl::StatusOr<int64_t> AsInt(std::string_view key, const Json& v) const {
    if (v.is_number_unsigned()) {
      uint64_t u = v.get<uint64_t>();
      if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        return Error(key, "is out of range");
      }
      return static_cast<int64_t>(u);
    }
    if (v.is_number_integer()) return v.get<int64_t>();
    return Error(key, absl::StrCat("must be an integer, got ", v.dump()));
  }

  // A finite number in [min, max] (or (min, max] when `min_exclusive`).
  absl::StatusOr<float> Float(std::string_view key,
                              std::optional<double> fallback, double min,
                              bool min_exclusive, double max) const {
    const Json* value = Find(key);
    if (value == nullptr) {
      if (!fallback.has_value()) return Error(key, "is missing");
      return static_cast<float>(*fallback);
    }
    if (!value->is_number()) {
      return Error(key, absl::StrCat("must be a number, got ", value->dump()));
    }
    double v = value->get<double>();
    bool low = min_exclusive ? !(v > min) : !(v >= min);
    if (!std::isfinite(v) || low || v > max) {
      return Error(key,
                   absl::StrCat("must be ", min_exclusive ? "> " : ">= ", min,
                                " and <= ", max, ", got ", value->dump()));
    }
    return static_cast<float>(v);
  }

  absl::StatusOr<bool> Bool(std::string_view key, bool fallback) const {
    const Json* value = Find(key);
    if (value == nullptr) return fallback;
    if (!value->is_boolean()) {
      return Error(key,
                   absl::StrCat("must be true or false, got ", value->dump()));
    }
    return value->get<bool>();
  }

 private:
  const Json& object_;
  std::string source_;
  std::string prefix_;
};

absl::StatusOr<std::string> ReadArchitecture(const FieldReader& r) {
  const char* key = "architectures";
  std::string name;
  if (const Json* list = r.Find(key); list != nullptr) {
    if (!list->is_array() || list->empty() || !(*list)[0].is_string()) {
      return r.Error(key, "must be a non-empty list of strings");
    }
    name = (*list)[0].get<std::string>();
    for (const Architecture& a : kArchitectures) {
      if (name == a.name) return name;
    }
  } else if (const Json* type = r.Find("model_type"); type != nullptr) {
    key = "model_type";
    if (!type->is_string()) return r.Error(key, "must be a string");
    name = type->get<std::string>();
    for (const Architecture& a : kArchitectures) {
      if (name == a.model_type) return std::string(a.name);
    }
  } else {
    return r.Error(key, "is missing");
  }
  return r.Error(key, absl::StrCat("names unsupported architecture '", name,
                                   "' (supported: LlamaForCausalLM, "
                                   "MistralForCausalLM, Qwen2ForCausalLM)"));
}

absl::StatusOr<RopeScaling> ReadRopeScaling(const FieldReader& top,
                                            std::string_view source) {
  RopeScaling scaling;
  const Json* value = top.Find("rope_scaling");
  if (value == nullptr) return scaling;
  if (!value->is_object()) {
    return top.Error("rope_scaling", "must be an object or null");
  }
  FieldReader r(*value, source, "rope_scaling.");
  const Json* rope_type = r.Find("rope_type");
  const Json* type = r.Find("type");
  if (rope_type == nullptr) rope_type = type;
  if (rope_type == nullptr) return r.Error("rope_type", "is missing");
  if (!rope_type->is_string() || (type != nullptr && *type != *rope_type)) {
    return r.Error("rope_type", "must be a string that agrees with 'type'");
  }
  const std::string name = rope_type->get<std::string>();
  if (name == "default") return scaling;
  if (name != "linear" && name != "llama3") {
    return r.Error("rope_type",
                   absl::StrCat("names unsupported rope scaling '", name,
                                "' (supported: linear, llama3)"));
  }
  TANDEM_ASSIGN_OR_RETURN(scaling.factor,
                          r.Float("factor", std::nullopt, 1.0, false, 1e6));
  scaling.type = RopeScaling::Type::kLinear;
  if (name == "linear") return scaling;
  scaling.type = RopeScaling::Type::kLlama3;
  TANDEM_ASSIGN_OR_RETURN(
      scaling.low_freq_factor,
      r.Float("low_freq_factor", std::nullopt, 0.0, true, 1e6));
  TANDEM_ASSIGN_OR_RETURN(
      scaling.high_freq_factor,
      r.Float("high_freq_factor", std::nullopt, 0.0, true, 1e6));
  if (!(scaling.high_freq_factor > scaling.low_freq_factor)) {
    return r.Error("high_freq_factor", "must be > low_freq_factor");
  }
  TANDEM_ASSIGN_OR_RETURN(
      int64_t original,
      r.Int("original_max_position_embeddings", std::nullopt, 1, kMaxSize));
  scaling.original_max_position_embeddings = static_cast<int>(original);
  return scaling;
}

// Reads "eos_token_id": absent, null, an integer or a list of integers.
absl::StatusOr<std::vector<int>> ReadEosTokens(const FieldReader& r,
                                               int vocab_size) {
  constexpr char kKey[] = "eos_token_id";
  std::vector<int> ids;
  const Json* value = r.Find(kKey);
  if (value == nullptr) return ids;
  Json list = value->is_array() ? *value : Json::array({*value});
  for (const Json& item : list) {
    TANDEM_ASSIGN_OR_RETURN(int64_t id, r.AsInt(kKey, item));
    if (id < 0 || id >= vocab_size) {
      return r.Error(
          kKey, absl::StrCat("has token id ", id,
                             " outside the vocabulary [0, ", vocab_size, ")"));
    }
    ids.push_back(static_cast<int>(id));
  }
  return ids;
}

// Reads the attention shape: heads, KV heads and head_dim.
absl::Status ReadHeads(const FieldReader& r, ModelConfig& c) {
  TANDEM_ASSIGN_OR_RETURN(
      int64_t heads, r.Int("num_attention_heads", std::nullopt, 1, kMaxSize));
  TANDEM_ASSIGN_OR_RETURN(int64_t kv_heads,
                          r.Int("num_key_value_heads", heads, 1, kMaxSize));
  if (heads % kv_heads != 0) {
    return r.Error(
        "num_key_value_heads",
        absl::StrCat("(", kv_heads, ") must divide num_attention_heads (",
                     heads, ")"));
  }
  if (r.Find("head_dim") == nullptr && c.hidden_size % heads != 0) {
    return r.Error("num_attention_heads",
                   absl::StrCat("(", heads, ") must divide hidden_size (",
                                c.hidden_size, ") when head_dim is absent"));
  }
  TANDEM_ASSIGN_OR_RETURN(
      int64_t head_dim, r.Int("head_dim", c.hidden_size / heads, 1, kMaxSize));
  if (head_dim % 2 != 0) {
    return r.Error(
        "head_dim",
        absl::StrCat("must be even for rotary positions, got ", head_dim));
  }
  if (heads * head_dim > kMaxSize) {
    return r.Error("head_dim", absl::StrCat("times num_attention_heads must "
                                            "be at most ",
                                            kMaxSize));
  }
  c.num_heads = static_cast<int>(heads);
  c.num_kv_heads = static_cast<int>(kv_heads);
  c.head_dim = static_cast<int>(head_dim);
  return absl::OkStatus();
}

absl::Status ReadSizes(const FieldReader& r, ModelConfig& c) {
  TANDEM_ASSIGN_OR_RETURN(c.vocab_size,
                          r.Int("vocab_size", std::nullopt, 1, kMaxSize));
  TANDEM_ASSIGN_OR_RETURN(c.hidden_size,
                          r.Int("hidden_size", std::nullopt, 1, kMaxSize));
  TANDEM_ASSIGN_OR_RETURN(
      c.intermediate_size,
      r.Int("intermediate_size", std::nullopt, 1, kMaxSize));
  TANDEM_ASSIGN_OR_RETURN(
      c.num_layers, r.Int("num_hidden_layers", std::nullopt, 1, kMaxSize));
  TANDEM_RETURN_IF_ERROR(ReadHeads(r, c));
  TANDEM_ASSIGN_OR_RETURN(
      c.max_position_embeddings,
      r.Int("max_position_embeddings", 2048, 1, int64_t{1} << 30));
  return absl::OkStatus();
}

absl::Status ReadRest(const FieldReader& r, std::string_view source,
                      ModelConfig& c) {
  if (const Json* act = r.Find("hidden_act");
      act != nullptr && *act != Json("silu")) {
    return r.Error("hidden_act", absl::StrCat("names unsupported activation ",
                                              act->dump(), " (need \"silu\")"));
  }
  TANDEM_ASSIGN_OR_RETURN(c.rms_norm_eps,
                          r.Float("rms_norm_eps", 1e-6, 0.0, true, 1.0));
  TANDEM_ASSIGN_OR_RETURN(c.rope_theta,
                          r.Float("rope_theta", 10000.0, 0.0, true, 1e30));
  TANDEM_ASSIGN_OR_RETURN(c.rope_scaling, ReadRopeScaling(r, source));
  TANDEM_ASSIGN_OR_RETURN(c.tie_word_embeddings,
                          r.Bool("tie_word_embeddings", false));
  TANDEM_ASSIGN_OR_RETURN(c.attention_bias, r.Bool("attention_bias", false));
  if (c.architecture == kQwen2) {
    c.attention_bias = true;  // Qwen2 ignores the field; its q, k, v have bias
  } else if (c.attention_bias) {
    return r.Error("attention_bias",
                   absl::StrCat("is true, which for ", c.architecture,
                                " also means an o_proj bias; Tandem does not "
                                "support that"));
  }
  TANDEM_ASSIGN_OR_RETURN(int64_t bos,
                          r.Int("bos_token_id", -1, -1, c.vocab_size - 1));
  c.bos_token_id = static_cast<int>(bos);
  TANDEM_ASSIGN_OR_RETURN(c.eos_token_ids, ReadEosTokens(r, c.vocab_size));
  return absl::OkStatus();
}

// The shortest decimal that reads back as `f`, as a double for JSON.
double ShortestDouble(float f) {
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), f);
  double d = f;
  std::from_chars(buf, end, d);
  return d;
}

}  // namespace

absl::StatusOr<ModelConfig> ParseModelConfig(std::string_view json,
                                             std::string_view source) {
  Json root = Json::parse(json.begin(), json.end(), nullptr,
                          /*allow_exceptions=*/false);
  if (root.is_discarded()) {
    return absl::InvalidArgumentError(
        absl::StrCat(std::string(source), ": not valid JSON"));
  }
  if (!root.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat(std::string(source), ": top level must be a JSON object"));
  }
  FieldReader r(root, source, "");
  ModelConfig c;
  TANDEM_ASSIGN_OR_RETURN(c.architecture, ReadArchitecture(r));
  TANDEM_RETURN_IF_ERROR(ReadSizes(r, c));
  TANDEM_RETURN_IF_ERROR(ReadRest(r, source, c));
  return c;
}

absl::StatusOr<ModelConfig> LoadModelConfig(const std::filesystem::path& path) {
  TANDEM_ASSIGN_OR_RETURN(std::string text, ReadFileBytes(path));
  return ParseModelConfig(text, path.string());
}

std::string ModelConfigToJson(const ModelConfig& c) {
  nlohmann::ordered_json j;
  j["architectures"] = {c.architecture};
  j["hidden_act"] = "silu";
  j["vocab_size"] = c.vocab_size;
  j["hidden_size"] = c.hidden_size;
  j["intermediate_size"] = c.intermediate_size;
  j["num_hidden_layers"] = c.num_layers;
  j["num_attention_heads"] = c.num_heads;
  j["num_key_value_heads"] = c.num_kv_heads;
  j["head_dim"] = c.head_dim;
  j["rms_norm_eps"] = ShortestDouble(c.rms_norm_eps);
  j["rope_theta"] = ShortestDouble(c.rope_theta);
  const RopeScaling& s = c.rope_scaling;
  if (s.type == RopeScaling::Type::kNone) {
    j["rope_scaling"] = nullptr;
  } else {
    nlohmann::ordered_json& o = j["rope_scaling"];
    o["rope_type"] = s.type == RopeScaling::Type::kLinear ? "linear" : "llama3";
    o["factor"] = ShortestDouble(s.factor);
    if (s.type == RopeScaling::Type::kLlama3) {
      o["low_freq_factor"] = ShortestDouble(s.low_freq_factor);
      o["high_freq_factor"] = ShortestDouble(s.high_freq_factor);
      o["original_max_position_embeddings"] =
          s.original_max_position_embeddings;
    }
  }
  j["tie_word_embeddings"] = c.tie_word_embeddings;
  j["attention_bias"] = c.attention_bias;
  j["max_position_embeddings"] = c.max_position_embeddings;
  j["bos_token_id"] = c.bos_token_id < 0
                          ? nlohmann::ordered_json(nullptr)
                          : nlohmann::ordered_json(c.bos_token_id);
  if (c.eos_token_ids.empty()) {
    j["eos_token_id"] = nullptr;
  } else if (c.eos_token_ids.size() == 1) {
    j["eos_token_id"] = c.eos_token_ids[0];
  } else {
    j["eos_token_id"] = c.eos_token_ids;
  }
  return j.dump(2) + "\n";
}

}  // namespace tandem
