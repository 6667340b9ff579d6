// Drawing one token from one row of logits: temperature, min-p, top-k,
// top-p and the multinomial draw (steps 5-8 of the sampler, see sampler.h).
//
// The probabilities are held as fixed-point integers, so that every sum is
// exact and no result depends on the order in which values are added. That
// lets top-p find its nucleus by linear-time selection instead of a sort,
// and keeps draws identical across machines and standard libraries:
//
//   w_i = exp((z_i - z_max) / temperature)          float, in [0, 1]
//   w_i = 0 if w_i < min_p                          (min-p, p_i / p_max)
//   q_i = floor(w_i * 2^kWeightFractionBits)        uint64
//
// Tokens are ranked by q descending, ties to the lower id. top-k keeps the
// first k ranked tokens with q > 0; top-p keeps the shortest ranked prefix of
// those whose mass reaches ceil(top_p * mass). The draw maps 64 random bits
// r to t = floor(r * mass / 2^64) and returns the kept token, in token id
// order, whose cumulative mass interval contains t.
//
// A token less probable than 2^-40 times the most probable one has q = 0 and
// is never drawn; together such tokens hold under V * 2^-40 of the mass
// (1.4e-7 for a 152k vocabulary).
#ifndef TANDEM_ENGINE_TOKEN_DRAW_H_
#define TANDEM_ENGINE_TOKEN_DRAW_H_

#include <cstdint>
#include <vector>

#include "absl/types/span.h"

namespace tandem {

// Fraction bits of the fixed-point weights.
inline constexpr int kWeightFractionBits = 40;

// The largest row DrawToken accepts: with every w <= 1 a row's total weight
// then stays below 2^64.
inline constexpr int kMaxVocabSize = 1 << 23;

// The filters of one draw, with SamplingParams' meanings and ranges.
struct TokenFilter {
  float temperature = 1.0f;
  float min_p = 0.0f;
  int32_t top_k = -1;
  float top_p = 1.0f;
};

// Buffers reused from row to row to avoid allocating per token. Contents are
// meaningless between calls.
struct DrawScratch {
  std::vector<uint64_t> weights;
  std::vector<int32_t> candidates;
};

// Returns the token drawn from `row` under `filter` with the random bits
// `random`.
//
// If `exp_sum` is not null, stores sum_i exp(row[i] - max_j row[j]),
// accumulated in double in token order: at temperature 1 the weights pass
// computes it anyway, and it is the caller's log-sum-exp.
//
// REQUIRES: row has 1 to kMaxVocabSize entries, holds no NaN or +inf and at
// least one finite value; filter.temperature is finite and at least 1e-5
// (smaller ones are the caller's greedy case); the other fields are within
// SamplingParams' ranges; exp_sum is null unless temperature is 1.
int32_t DrawToken(absl::Span<const float> row, const TokenFilter& filter,
                  uint64_t random, DrawScratch& scratch, double* exp_sum);

}  // namespace tandem

#endif  // TANDEM_ENGINE_TOKEN_DRAW_H_
