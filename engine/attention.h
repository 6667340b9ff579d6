// Causal grouped-query attention over a paged KV cache.
//
// New tokens' K and V rows are first written into their sequences' blocks
// (WriteKv); Attend then lets each new token's query attend to every cached
// position of its own sequence up to and including its own.
#ifndef TANDEM_ENGINE_ATTENTION_H_
#define TANDEM_ENGINE_ATTENTION_H_

#include <vector>

#include "absl/types/span.h"
#include "engine/paged_kv_cache.h"

namespace tandem {

// The new tokens of one sequence inside a batch of activation rows.
struct AttentionSpan {
  absl::Span<const BlockId> blocks;  // the sequence's block table
  int start = 0;                     // position of the first new token
  int count = 0;                     // new tokens
  int row = 0;                       // activation row of the first new token
};

struct AttentionShape {
  int num_heads = 0;
  int num_kv_heads = 0;
  int head_dim = 0;
};

// Copies k and v, each [rows, num_kv_heads * head_dim], into the cache
// slots of each span's new positions for `layer`.
// REQUIRES: each span's blocks cover positions [0, start + count).
void WriteKv(PagedKvCache& cache, int layer,
             absl::Span<const AttentionSpan> spans, const float* k,
             const float* v);

// out[r, h * head_dim ...] = softmax(q_h k^T / sqrt(head_dim)) v for every
// new row r and query head h, over positions [0, start + i] of the row's
// sequence. q and out: [rows, num_heads * head_dim].
// REQUIRES: WriteKv has stored this layer's K and V for the new positions.
void Attend(const PagedKvCache& cache, int layer, const AttentionShape& shape,
            absl::Span<const AttentionSpan> spans, const float* q, float* out);

}  // namespace tandem

#endif  // TANDEM_ENGINE_ATTENTION_H_
