#include "engine/model.h"

#include <algorithm>
#include <cstring>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "engine/aligned_vector.h"
#include "engine/attention.h"
#include "engine/kernels.h"
#include "engine/status_macros.h"

namespace tandem {

// Activations of one forward pass; every buffer is row-major with one row
// per new token.
struct Model::Workspace {
  AlignedVector<float> x;     // [rows, hidden] residual stream
  AlignedVector<float> xn;    // [rows, hidden] normalised / sublayer output
  AlignedVector<float> q;     // [rows, q_dim]
  AlignedVector<float> k;     // [rows, kv_dim]
  AlignedVector<float> v;     // [rows, kv_dim]
  AlignedVector<float> attn;  // [rows, q_dim]
  AlignedVector<float> gate;  // [rows, intermediate]
  AlignedVector<float> up;    // [rows, intermediate]
  std::vector<float> cos;     // [rows, head_dim / 2]
  std::vector<float> sin;     // [rows, head_dim / 2]
  AlignedVector<float> last;  // [selected rows, hidden]
  std::vector<AttentionSpan> spans;

  void Resize(const ModelConfig& c, int rows) {
    const size_t r = rows;
    x.resize(r * c.hidden_size);
    xn.resize(r * c.hidden_size);
    q.resize(r * c.q_dim());
    k.resize(r * c.kv_dim());
    v.resize(r * c.kv_dim());
    attn.resize(r * c.q_dim());
    gate.resize(r * c.intermediate_size);
    up.resize(r * c.intermediate_size);
    cos.resize(r * c.head_dim / 2);
    sin.resize(r * c.head_dim / 2);
  }
};

absl::StatusOr<std::unique_ptr<Model>> Model::Load(
    const std::filesystem::path& dir, const ModelOptions& options) {
  if (options.threads < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("threads must be >= 0, got ", options.threads));
  }
  if (options.threads > 0) SetEngineThreads(options.threads);
  TANDEM_ASSIGN_OR_RETURN(auto weights, ModelWeights::Load(dir));
  return std::make_unique<Model>(std::move(weights));
}

Model::Model(std::unique_ptr<ModelWeights> weights)
    : weights_(std::move(weights)),
      rope_(weights_->config()),
      work_(std::make_unique<Workspace>()) {}

Model::~Model() = default;

KvLayout Model::kv_layout(int block_size) const {
  const ModelConfig& c = config();
  return KvLayout{c.num_layers, c.num_kv_heads, c.head_dim, block_size};
}

absl::Status Model::Validate(absl::Span<const Chunk> chunks,
                             const PagedKvCache& cache) const {
  const ModelConfig& c = config();
  const KvLayout& layout = cache.layout();
  if (layout.num_layers != c.num_layers ||
      layout.num_kv_heads != c.num_kv_heads || layout.head_dim != c.head_dim) {
    return absl::InvalidArgumentError(
        "KV cache layout does not match the model");
  }
  absl::flat_hash_set<SequenceId> seen;
  for (const Chunk& chunk : chunks) {
    if (!seen.insert(chunk.seq).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("sequence ", chunk.seq, " listed twice in one batch"));
    }
    if (chunk.tokens.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("sequence ", chunk.seq, " has no new tokens"));
    }
    if (!cache.HasSequence(chunk.seq)) {
      return absl::NotFoundError(
          absl::StrCat("sequence ", chunk.seq, " is not in the KV cache"));
    }
    const int slots = cache.NumTokens(chunk.seq);
    if (slots < static_cast<int>(chunk.tokens.size())) {
      return absl::FailedPreconditionError(absl::StrCat(
          "sequence ", chunk.seq, " has ", slots, " cache slots for ",
          chunk.tokens.size(), " new tokens"));
    }
    if (slots > c.max_position_embeddings) {
      return absl::InvalidArgumentError(absl::StrCat(
          "sequence ", chunk.seq, " reaches position ", slots,
          ", beyond max_position_embeddings ", c.max_position_embeddings));
    }
    for (int32_t token : chunk.tokens) {
      if (token < 0 || token >= c.vocab_size) {
        return absl::InvalidArgumentError(
            absl::StrCat("token id ", token, " outside the vocabulary [0, ",
                         c.vocab_size, ")"));
      }
    }
  }
  return absl::OkStatus();
}

absl::Status Model::Prefill(absl::Span<const Chunk> chunks, PagedKvCache& cache,
                            Logits which, std::vector<float>* logits) {
  if (chunks.empty()) return absl::InvalidArgumentError("empty batch");
  TANDEM_RETURN_IF_ERROR(Validate(chunks, cache));
  UseEngineThreads();
  Forward(chunks, cache, which, logits);
  return absl::OkStatus();
}

absl::Status Model::DecodeStep(absl::Span<const SequenceId> seqs,
                               absl::Span<const int32_t> tokens,
                               PagedKvCache& cache,
                               std::vector<float>* logits) {
  if (seqs.size() != tokens.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat(seqs.size(), " sequences but ", tokens.size(), " tokens"));
  }
  std::vector<Chunk> chunks;
  chunks.reserve(seqs.size());
  for (size_t i = 0; i < seqs.size(); ++i) {
    chunks.push_back({seqs[i], tokens.subspan(i, 1)});
  }
  return Prefill(chunks, cache, Logits::kLastPerSequence, logits);
}

void Model::Forward(absl::Span<const Chunk> chunks, PagedKvCache& cache,
                    Logits which, std::vector<float>* logits) {
  const ModelConfig& c = config();
  const int hidden = c.hidden_size;
  Workspace& w = *work_;

  // Lay the new tokens out as rows, chunk after chunk.
  int rows = 0;
  w.spans.clear();
  std::vector<int> positions;
  for (const Chunk& chunk : chunks) {
    const int count = static_cast<int>(chunk.tokens.size());
    const int start = cache.NumTokens(chunk.seq) - count;
    w.spans.push_back({cache.BlockTable(chunk.seq), start, count, rows});
    for (int i = 0; i < count; ++i) positions.push_back(start + i);
    rows += count;
  }
  w.Resize(c, rows);

  // Embedding: x[r, :] = embed_tokens[token_r, :].
  int r = 0;
  for (const Chunk& chunk : chunks) {
    for (int32_t token : chunk.tokens) {
      std::memcpy(w.x.data() + static_cast<long>(r++) * hidden,
                  weights_->embed_tokens() + static_cast<long>(token) * hidden,
                  sizeof(float) * hidden);
    }
  }
  rope_.Tables(positions, w.cos.data(), w.sin.data());

  for (int layer = 0; layer < c.num_layers; ++layer) Layer(layer, rows, cache);

  // Final norm and LM head, only on the rows whose logits are wanted.
  const float* selected = w.x.data();
  int out_rows = rows;
  if (which == Logits::kLastPerSequence) {
    out_rows = static_cast<int>(w.spans.size());
    w.last.resize(static_cast<size_t>(out_rows) * hidden);
    for (int i = 0; i < out_rows; ++i) {
      const AttentionSpan& span = w.spans[i];
      std::memcpy(
          w.last.data() + static_cast<long>(i) * hidden,
          w.x.data() + static_cast<long>(span.row + span.count - 1) * hidden,
          sizeof(float) * hidden);
    }
    selected = w.last.data();
  }
  w.xn.resize(std::max(w.xn.size(), static_cast<size_t>(out_rows) * hidden));
  RmsNorm(selected, weights_->final_norm(), out_rows, hidden, c.rms_norm_eps,
          w.xn.data());
  logits->resize(static_cast<size_t>(out_rows) * c.vocab_size);
  Linear(w.xn.data(), hidden, weights_->lm_head(), nullptr, out_rows, hidden,
         c.vocab_size, logits->data(), c.vocab_size);
}

void Model::Layer(int index, int rows, PagedKvCache& cache) {
  const ModelConfig& c = config();
  const LayerWeights& lw = weights_->layers()[index];
  Workspace& w = *work_;
  const int hidden = c.hidden_size;
  const int q_dim = c.q_dim();
  const int kv_dim = c.kv_dim();
  const int inter = c.intermediate_size;

  // Attention block: x += o_proj(attend(rope(q), rope(k), v)).
  RmsNorm(w.x.data(), lw.attn_norm, rows, hidden, c.rms_norm_eps, w.xn.data());
  Linear(w.xn.data(), hidden, lw.q_proj, lw.q_bias, rows, hidden, q_dim,
         w.q.data(), q_dim);
  Linear(w.xn.data(), hidden, lw.k_proj, lw.k_bias, rows, hidden, kv_dim,
         w.k.data(), kv_dim);
  Linear(w.xn.data(), hidden, lw.v_proj, lw.v_bias, rows, hidden, kv_dim,
         w.v.data(), kv_dim);
  rope_.Apply(w.q.data(), rows, q_dim, c.num_heads, w.cos.data(), w.sin.data());
  rope_.Apply(w.k.data(), rows, kv_dim, c.num_kv_heads, w.cos.data(),
              w.sin.data());
  WriteKv(cache, index, w.spans, w.k.data(), w.v.data());
  const AttentionShape shape{c.num_heads, c.num_kv_heads, c.head_dim};
  Attend(cache, index, shape, w.spans, w.q.data(), w.attn.data());
  Linear(w.attn.data(), q_dim, lw.o_proj, nullptr, rows, q_dim, hidden,
         w.xn.data(), hidden);
  AddInPlace(w.x.data(), w.xn.data(), static_cast<long>(rows) * hidden);

  // MLP block: x += down(silu(gate(xn)) * up(xn)).
  RmsNorm(w.x.data(), lw.mlp_norm, rows, hidden, c.rms_norm_eps, w.xn.data());
  Linear(w.xn.data(), hidden, lw.gate_proj, nullptr, rows, hidden, inter,
         w.gate.data(), inter);
  Linear(w.xn.data(), hidden, lw.up_proj, nullptr, rows, hidden, inter,
         w.up.data(), inter);
  SiluMul(w.gate.data(), w.up.data(), static_cast<long>(rows) * inter,
          w.gate.data());
  Linear(w.gate.data(), inter, lw.down_proj, nullptr, rows, inter, hidden,
         w.xn.data(), hidden);
  AddInPlace(w.x.data(), w.xn.data(), static_cast<long>(rows) * hidden);
}

}  // namespace tandem
