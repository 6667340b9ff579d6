// The forward pass of a Llama-family model over a paged KV cache: prefill
// (the prompt tokens of one or several sequences) and the decode step (one
// new token for each sequence of a batch, each at its own position).
//
// Computation is F32. Matrix products go through kernels.h (OpenBLAS sgemv
// for one row, a register-blocked kernel for small batches, sgemm for many
// rows); everything runs on the engine's one OpenMP pool.
#ifndef TANDEM_ENGINE_MODEL_H_
#define TANDEM_ENGINE_MODEL_H_

#include <cstdint>
#include <filesystem>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "engine/kv_layout.h"
#include "engine/model_weights.h"
#include "engine/paged_kv_cache.h"
#include "engine/rope.h"

namespace tandem {

struct ModelOptions {
  // Threads of the engine's pool; 0 keeps the current setting (by default,
  // one per core, or OMP_NUM_THREADS).
  int threads = 0;
};

// Not thread-safe: one caller at a time (it owns reusable scratch buffers).
class Model {
 public:
  // Loads a model directory (see ModelWeights::Load for its errors).
  static absl::StatusOr<std::unique_ptr<Model>> Load(
      const std::filesystem::path& dir, const ModelOptions& options = {});

  explicit Model(std::unique_ptr<ModelWeights> weights);
  ~Model();

  const ModelConfig& config() const { return weights_->config(); }
  const ModelWeights& weights() const { return *weights_; }
  const Fingerprint& fingerprint() const { return weights_->fingerprint(); }

  // The layout of this model's KV blocks of `block_size` tokens.
  KvLayout kv_layout(int block_size = 16) const;

  // New tokens of one sequence. They occupy the sequence's last
  // tokens.size() cache slots: the caller appends the slots to the cache
  // (PagedKvCache::Append) before the call.
  struct Chunk {
    SequenceId seq;
    absl::Span<const int32_t> tokens;
  };

  enum class Logits {
    kLastPerSequence,  // [chunks, vocab]: the last new token of each chunk
    kAllPositions,     // [total new tokens, vocab], chunk after chunk
  };

  // Runs the chunks' tokens through the model, writing their K and V into
  // the cache and the requested logits into `logits` (resized). Returns
  // InvalidArgument for an empty chunk, a token id outside the vocabulary,
  // a position beyond max_position_embeddings, a sequence listed twice, or
  // a cache whose layout does not match this model; NotFound for a sequence
  // the cache does not know; FailedPrecondition if a sequence has fewer
  // cache slots than new tokens. On error the cache contents are unchanged.
  absl::Status Prefill(absl::Span<const Chunk> chunks, PagedKvCache& cache,
                       Logits which, std::vector<float>* logits);

  // One decode step: token i is the newest token of seqs[i], whose slot the
  // caller has appended. Writes logits [seqs.size(), vocab]. Errors as for
  // Prefill.
  absl::Status DecodeStep(absl::Span<const SequenceId> seqs,
                          absl::Span<const int32_t> tokens, PagedKvCache& cache,
                          std::vector<float>* logits);

 private:
  absl::Status Validate(absl::Span<const Chunk> chunks,
                        const PagedKvCache& cache) const;
  void Forward(absl::Span<const Chunk> chunks, PagedKvCache& cache,
               Logits which, std::vector<float>* logits);
  void Layer(int index, int rows, PagedKvCache& cache);

  std::unique_ptr<ModelWeights> weights_;
  Rope rope_;

  // Scratch for one forward pass over `rows` tokens.
  struct Workspace;
  std::unique_ptr<Workspace> work_;
};

}  // namespace tandem

#endif  // TANDEM_ENGINE_MODEL_H_
