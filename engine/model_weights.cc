#include "engine/model_weights.h"

#include <xxhash.h>

#include <cstdint>
#include <cstring>
#include <set>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "engine/checkpoint.h"
#include "engine/safetensors.h"
#include "engine/status_macros.h"

namespace tandem {

struct ModelWeights::Storage {
  // The files that in-place F32 tensors point into.
  std::vector<std::unique_ptr<SafetensorsFile>> files;
  // Tensors converted to F32.
  std::vector<std::unique_ptr<float[]>> buffers;
};

namespace {

namespace fs = std::filesystem;
using Shape = std::vector<int64_t>;

constexpr char kQwen2[] = "Qwen2ForCausalLM";

std::string ShapeText(const Shape& shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

// A tensor as F32: in place in its file's mapping, or converted into `owned`.
struct F32Tensor {
  const float* data = nullptr;
  std::unique_ptr<float[]> owned;
};

// Hands out the checkpoint's tensors as F32, checking each one's shape and
// dtype, and remembers which were used.
class TensorBinder {
 public:
  explicit TensorBinder(CheckpointFiles files) : files_(std::move(files)) {}

  bool Has(const std::string& name) const {
    return files_.tensors.contains(name);
  }

  // The tensor `name`, which must have `shape`; marks it used.
  absl::StatusOr<F32Tensor> Read(const std::string& name, const Shape& shape) {
    auto it = files_.tensors.find(name);
    if (it == files_.tensors.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat(files_.source, ": missing tensor '", name, "'"));
    }
    const SafetensorsTensor& t = *it->second.tensor;
    if (t.shape != shape) {
      return Fault(name, absl::StrCat("has shape ", ShapeText(t.shape),
                                      ", expected ", ShapeText(shape)));
    }
    used_.insert(name);
    F32Tensor out;
    if (t.dtype == SafetensorsDtype::kF32 &&
        reinterpret_cast<uintptr_t>(t.data.data()) % alignof(float) == 0) {
      out.data = reinterpret_cast<const float*>(t.data.data());
      return out;
    }
    if (t.dtype != SafetensorsDtype::kF32 &&
        t.dtype != SafetensorsDtype::kF16 &&
        t.dtype != SafetensorsDtype::kBF16) {
      return Fault(
          name,
          absl::StrCat("has dtype ", std::string(SafetensorsDtypeName(t.dtype)),
                       "; expected F32, F16 or BF16"));
    }
    out.owned = std::make_unique_for_overwrite<float[]>(t.num_elements);
    TANDEM_RETURN_IF_ERROR(
        ConvertToF32(t, absl::MakeSpan(out.owned.get(), t.num_elements)));
    out.data = out.owned.get();
    return out;
  }

  // As Read, keeping the data alive until the weights are released.
  absl::StatusOr<const float*> Take(const std::string& name,
                                    const Shape& shape) {
    TANDEM_ASSIGN_OR_RETURN(F32Tensor t, Read(name, shape));
    if (t.owned != nullptr) {
      buffers_.push_back(std::move(t.owned));
    } else {
      in_place_.insert(files_.tensors.at(name).file);
    }
    return t.data;
  }

  // InvalidArgument naming the first tensor that nothing took.
  absl::Status CheckAllUsed() const {
    for (const auto& [name, located] : files_.tensors) {
      if (used_.contains(name)) continue;
      return Fault(name, "is unexpected: config.json describes no such weight");
    }
    return absl::OkStatus();
  }

  // Ends binding: the converted buffers, and the files that in-place tensors
  // point into (the others are unmapped when the binder goes away).
  std::vector<std::unique_ptr<float[]>> ReleaseBuffers() {
    return std::move(buffers_);
  }
  std::vector<std::unique_ptr<SafetensorsFile>> ReleaseInPlaceFiles() {
    std::vector<std::unique_ptr<SafetensorsFile>> kept;
    for (auto& file : files_.files) {
      if (in_place_.contains(file.get())) kept.push_back(std::move(file));
    }
    return kept;
  }

  // InvalidArgument naming the file that holds tensor `name`, and `name`.
  // REQUIRES: Has(name).
  absl::Status Fault(const std::string& name, const std::string& what) const {
    return absl::InvalidArgumentError(
        absl::StrCat(files_.tensors.at(name).file->path().string(),
                     ": tensor '", name, "' ", what));
  }

 private:
  CheckpointFiles files_;
  std::set<std::string> used_;
  std::set<const SafetensorsFile*> in_place_;
  std::vector<std::unique_ptr<float[]>> buffers_;
};

absl::StatusOr<LayerWeights> BindLayer(TensorBinder& b, const ModelConfig& c,
                                       int layer, bool bias) {
  const std::string p = absl::StrCat("model.layers.", layer, ".");
  const int64_t hidden = c.hidden_size, q = c.q_dim(), kv = c.kv_dim();
  const int64_t ffn = c.intermediate_size;
  LayerWeights w{};
  TANDEM_ASSIGN_OR_RETURN(w.attn_norm,
                          b.Take(p + "input_layernorm.weight", {hidden}));
  TANDEM_ASSIGN_OR_RETURN(w.q_proj,
                          b.Take(p + "self_attn.q_proj.weight", {q, hidden}));
  TANDEM_ASSIGN_OR_RETURN(w.k_proj,
                          b.Take(p + "self_attn.k_proj.weight", {kv, hidden}));
  TANDEM_ASSIGN_OR_RETURN(w.v_proj,
                          b.Take(p + "self_attn.v_proj.weight", {kv, hidden}));
  if (bias) {
    TANDEM_ASSIGN_OR_RETURN(w.q_bias, b.Take(p + "self_attn.q_proj.bias", {q}));
    TANDEM_ASSIGN_OR_RETURN(w.k_bias,
                            b.Take(p + "self_attn.k_proj.bias", {kv}));
    TANDEM_ASSIGN_OR_RETURN(w.v_bias,
                            b.Take(p + "self_attn.v_proj.bias", {kv}));
  }
  TANDEM_ASSIGN_OR_RETURN(w.o_proj,
                          b.Take(p + "self_attn.o_proj.weight", {hidden, q}));
  TANDEM_ASSIGN_OR_RETURN(
      w.mlp_norm, b.Take(p + "post_attention_layernorm.weight", {hidden}));
  TANDEM_ASSIGN_OR_RETURN(w.gate_proj,
                          b.Take(p + "mlp.gate_proj.weight", {ffn, hidden}));
  TANDEM_ASSIGN_OR_RETURN(w.up_proj,
                          b.Take(p + "mlp.up_proj.weight", {ffn, hidden}));
  TANDEM_ASSIGN_OR_RETURN(w.down_proj,
                          b.Take(p + "mlp.down_proj.weight", {hidden, ffn}));
  return w;
}

// Qwen2 checkpoints normally carry q, k and v biases; the tensors decide.
bool HasAttentionBias(const TensorBinder& b, const ModelConfig& c) {
  if (c.architecture != kQwen2) return c.attention_bias;
  for (const char* proj : {"q", "k", "v"}) {
    if (b.Has(absl::StrCat("model.layers.0.self_attn.", proj, "_proj.bias"))) {
      return true;
    }
  }
  return false;
}

// The output projection: lm_head.weight, or the embeddings when tied. A
// tied checkpoint may still carry lm_head.weight, but only as an exact copy.
absl::StatusOr<const float*> BindLmHead(TensorBinder& b, const ModelConfig& c,
                                        const float* embed) {
  const Shape shape = {c.vocab_size, c.hidden_size};
  if (!c.tie_word_embeddings) return b.Take("lm_head.weight", shape);
  if (b.Has("lm_head.weight")) {
    TANDEM_ASSIGN_OR_RETURN(F32Tensor head, b.Read("lm_head.weight", shape));
    const size_t bytes = sizeof(float) * static_cast<size_t>(c.vocab_size) *
                         static_cast<size_t>(c.hidden_size);
    if (std::memcmp(head.data, embed, bytes) != 0) {
      return b.Fault("lm_head.weight",
                     "differs from 'model.embed_tokens.weight' although "
                     "config.json sets tie_word_embeddings");
    }
  }
  return embed;
}

absl::StatusOr<Fingerprint> ComputeFingerprint(
    const std::string& config_text,
    const std::vector<std::unique_ptr<SafetensorsFile>>& files) {
  std::unique_ptr<XXH3_state_t, decltype(&XXH3_freeState)> state(
      XXH3_createState(), &XXH3_freeState);
  if (state == nullptr) {
    return absl::ResourceExhaustedError("cannot allocate a hash state");
  }
  XXH3_128bits_reset(state.get());
  auto add = [&](const void* data, size_t size) {
    uint8_t length[8];
    for (int i = 0; i < 8; ++i) length[i] = (uint64_t{size} >> (8 * i)) & 0xff;
    XXH3_128bits_update(state.get(), length, sizeof(length));
    XXH3_128bits_update(state.get(), data, size);
  };
  add(config_text.data(), config_text.size());
  for (const auto& file : files)
    add(file->bytes().data(), file->bytes().size());
  const XXH128_hash_t digest = XXH3_128bits_digest(state.get());
  Fingerprint fingerprint;
  fingerprint.words = {digest.low64, digest.high64};
  return fingerprint;
}

}  // namespace

ModelWeights::ModelWeights() = default;
ModelWeights::~ModelWeights() = default;

absl::StatusOr<std::unique_ptr<ModelWeights>> ModelWeights::Load(
    const fs::path& dir) {
  const fs::path config_path = dir / kConfigFileName;
  TANDEM_ASSIGN_OR_RETURN(std::string config_text, ReadFileBytes(config_path));
  std::unique_ptr<ModelWeights> w(new ModelWeights());
  TANDEM_ASSIGN_OR_RETURN(w->config_,
                          ParseModelConfig(config_text, config_path.string()));
  TANDEM_ASSIGN_OR_RETURN(CheckpointFiles files, OpenCheckpointFiles(dir));
  TANDEM_ASSIGN_OR_RETURN(w->fingerprint_,
                          ComputeFingerprint(config_text, files.files));
  TensorBinder binder(std::move(files));
  ModelConfig& c = w->config_;
  c.attention_bias = HasAttentionBias(binder, c);
  TANDEM_ASSIGN_OR_RETURN(
      w->embed_tokens_,
      binder.Take("model.embed_tokens.weight", {c.vocab_size, c.hidden_size}));
  for (int i = 0; i < c.num_layers; ++i) {
    TANDEM_ASSIGN_OR_RETURN(LayerWeights layer,
                            BindLayer(binder, c, i, c.attention_bias));
    w->layers_.push_back(layer);
  }
  TANDEM_ASSIGN_OR_RETURN(w->final_norm_,
                          binder.Take("model.norm.weight", {c.hidden_size}));
  TANDEM_ASSIGN_OR_RETURN(w->lm_head_, BindLmHead(binder, c, w->embed_tokens_));
  TANDEM_RETURN_IF_ERROR(binder.CheckAllUsed());
  w->storage_ = std::make_unique<Storage>();
  w->storage_->files = binder.ReleaseInPlaceFiles();
  w->storage_->buffers = binder.ReleaseBuffers();
  return w;
}

}  // namespace tandem
