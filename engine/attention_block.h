// Decode attention over one KV block, for one new token's query heads that
// share a KV head: the scores against the block's keys and the
// probability-weighted sum of its values. Internal to attention.cc, which
// uses these on processors with AVX-512 and calls BLAS otherwise; a block
// is too small (16 x head_dim) for a library call's set-up to pay off.
#ifndef TANDEM_ENGINE_ATTENTION_BLOCK_H_
#define TANDEM_ENGINE_ATTENTION_BLOCK_H_

namespace tandem::internal {

// Whether this processor runs the kernels below.
bool HasBlockAttentionAvx512();

// scores[h * ld_scores + t] = scale * dot(q[h * head_dim ..],
// k[t * head_dim ..]) for h < group and t < n. q: [group, head_dim]; k:
// [n, head_dim]. REQUIRES: head_dim is a positive multiple of 16.
void BlockScoresAvx512(const float* q, int group, int head_dim, const float* k,
                       int n, float scale, float* scores, int ld_scores);

// out[h * head_dim + d] += sum over t < n of p[h * ld_p + t] *
// v[t * head_dim + d], for h < group. v: [n, head_dim]; out: [group,
// head_dim]. REQUIRES: head_dim is a positive multiple of 16, at most 256.
void BlockMixAvx512(const float* p, int ld_p, int group, const float* v, int n,
                    int head_dim, float* out);

}  // namespace tandem::internal

#endif  // TANDEM_ENGINE_ATTENTION_BLOCK_H_
