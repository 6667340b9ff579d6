// The sampler: turns a batch of next-token logits into tokens.
//
// Each row of a batch belongs to one sequence and is sampled with that
// sequence's own parameters, token history and random stream, so a sequence
// draws the same tokens whichever batch or row it sits in. One decode step
// for one row runs:
//
//   1. sanitize   NaN logits become -inf, +inf logits become the largest
//                 finite float. A row with no finite logit is rejected.
//   2. logprobs   log-softmax of the sanitized raw logits (the model's own
//                 distribution) gives the reported log-probabilities.
//   3. penalties  repetition, then presence and frequency (see
//                 SamplingParams), written back into the logits.
//   4. greedy     if temperature < kGreedyTemperature: argmax, ties to the
//                 lowest token id, and stop here.
//   5. temperature  p_i = softmax(z / temperature)_i.
//   6. min-p      keep tokens with p_i >= min_p * max_j p_j.
//   7. top-k, top-p  among the survivors sorted by probability (ties: lower
//                 id first), keep the first top_k, then the shortest prefix
//                 of those whose renormalized mass reaches top_p.
//   8. draw       the next 64 bits r of the sequence's stream pick the kept
//                 token, in token id order, whose cumulative probability
//                 interval holds r / 2^64. Every row takes one draw per
//                 step, greedy rows included.
//
// Steps 5-8 compute with probabilities relative to the most probable token,
// in fixed point (multiples of 2^-40): tokens below that are never drawn.
//
// For a vocabulary of 32k-152k tokens the cost is a few linear passes per
// row: top-k selects with nth_element, top-p finds its nucleus by a weighted
// quickselect (expected linear time, no sort of the vocabulary), and with no
// filter active the draw scans the weights directly. Rows are sampled in
// parallel on the OpenMP threads. Steps 5-8 live in token_draw.h, which
// documents the fixed-point arithmetic that makes every sum exact.
//
// Reproducibility: the same seed, parameters, token history and logits give
// the same token on every run and machine, whatever the batch, row or thread
// count, given the same libm (the weights come from expf). Logprobs are sums
// in double in a fixed order.
#ifndef TANDEM_ENGINE_SAMPLER_H_
#define TANDEM_ENGINE_SAMPLER_H_

#include <cstdint>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "engine/random.h"
#include "engine/token_draw.h"

namespace tandem {

// The most top alternatives a request may ask log-probabilities for (the
// OpenAI API's limit).
inline constexpr int kMaxLogprobs = 20;

// Temperatures below this (0 included) select greedy decoding: dividing by
// them would overflow and the distribution is one token anyway.
inline constexpr float kGreedyTemperature = 1e-5f;

// How to choose the next token for one sequence. The defaults sample from
// the model's distribution unchanged. Validate with ValidateSamplingParams.
struct SamplingParams {
  // Divides the logits before the softmax. Range [0, inf); values below
  // kGreedyTemperature mean greedy argmax decoding.
  float temperature = 1.0f;
  // Nucleus sampling: keep the most probable tokens whose mass reaches
  // top_p. Range (0, 1]; 1 is off.
  float top_p = 1.0f;
  // Keep only the top_k most probable tokens. -1 and 0 both mean off (0 is
  // accepted because some clients send it for "no limit"); values above the
  // vocabulary size keep everything. Range [-1, INT32_MAX].
  int32_t top_k = -1;
  // Keep tokens with p >= min_p * p_max, on the temperature-scaled
  // distribution. Range [0, 1]; 0 is off, 1 keeps only the most probable
  // token(s).
  float min_p = 0.0f;
  // Hugging Face / CTRL repetition penalty over every token that appeared in
  // the prompt or the generated text (as vLLM does): a positive logit is
  // divided by it, a negative one multiplied. Range (0, inf); 1 is off,
  // above 1 discourages repetition, below 1 encourages it.
  float repetition_penalty = 1.0f;
  // Subtracted once from the logit of every distinct token generated so far
  // (prompt tokens do not count, as in the OpenAI API). Range [-2, 2].
  float presence_penalty = 0.0f;
  // Subtracted count times from the logit of every token generated so far,
  // count being its number of occurrences (prompt tokens do not count).
  // Range [-2, 2].
  float frequency_penalty = 0.0f;
  // Selects the random stream; equal seeds give equal draws. Callers that
  // want fresh randomness per request pick a random seed themselves.
  uint64_t seed = 0;
  // How many most probable alternatives to report with their
  // log-probabilities, besides the chosen token. Range [0, kMaxLogprobs].
  int32_t num_logprobs = 0;
};

// Returns OK if every field of `params` is within its documented range, and
// otherwise InvalidArgument naming the first offending field and its value.
// NaN and infinite values are rejected for every float field.
absl::Status ValidateSamplingParams(const SamplingParams& params);

// A token with its log-probability under the model's distribution.
struct TokenLogprob {
  int32_t token = 0;
  float logprob = 0.0f;
};

// One row's result.
struct SampledToken {
  int32_t token = 0;
  // log p(token) under log_softmax of the row's raw logits: the model's own
  // distribution, before penalties, temperature and filters (what vLLM and
  // the OpenAI API report). Always filled.
  float logprob = 0.0f;
  // The params.num_logprobs (capped at the vocabulary size) most probable
  // tokens under the same distribution, most probable first, ties to the
  // lower id. May or may not include `token`. A token whose logit was NaN
  // or -inf has logprob -inf; it is listed only when fewer tokens than
  // asked have a finite logit.
  std::vector<TokenLogprob> top_logprobs;
};

// Everything the sampler keeps for one sequence: its parameters, its random
// stream and its token history for the penalties.
//
// Thread-compatible: one thread at a time per state. Movable and copyable; a
// copy continues the same stream independently.
class SequenceSamplingState {
 public:
  // Returns a state for `params` at the start of its seed's stream, or
  // InvalidArgument if ValidateSamplingParams rejects `params`.
  static absl::StatusOr<SequenceSamplingState> Create(
      const SamplingParams& params);

  // Adds prompt tokens to the history; they count for the repetition
  // penalty only. May be called more than once (e.g. block by block).
  // Returns InvalidArgument, recording nothing, if a token id is negative.
  absl::Status RecordPromptTokens(absl::Span<const int32_t> tokens);

  // Adds one accepted generated token to the history; it counts for every
  // penalty. Call it for each token the sequence keeps, in order. Returns
  // InvalidArgument, recording nothing, if `token` is negative.
  absl::Status RecordGeneratedToken(int32_t token);

  // Number of times `token` was generated (prompt not included).
  int32_t generated_count(int32_t token) const;
  // Whether `token` appeared in the prompt.
  bool in_prompt(int32_t token) const;
  // The largest token id recorded, or -1 if none.
  int32_t max_recorded_token() const { return max_recorded_token_; }

  const SamplingParams& params() const { return params_; }

  // Index of the next draw in this sequence's random stream, which equals
  // the number of times the sequence has been sampled. Every Sampler::Sample
  // call takes exactly one draw per row, greedy rows included.
  uint64_t next_draw() const { return rng_.position(); }
  // Resumes the stream at `draw`. A worker that takes over a sequence after
  // n tokens were sampled elsewhere sets n here (and records the prompt and
  // the n tokens) to continue exactly as one worker would have.
  void set_next_draw(uint64_t draw) { rng_.set_position(draw); }

 private:
  friend class Sampler;

  // What the history says about one token id.
  struct TokenHistory {
    bool in_prompt = false;
    int32_t generated = 0;
  };

  explicit SequenceSamplingState(const SamplingParams& params)
      : params_(params), rng_(params.seed) {}

  // Whether any penalty can change a logit: one is set and the history is
  // not empty.
  bool HasPenalties() const;

  // Step 3: applies the penalties to `row` in place, appending to `saved`
  // the raw value of each logit it changes. Logits at -inf stay there and
  // finite ones stay finite (clamped to the float range).
  // REQUIRES: max_recorded_token() < row.size().
  void ApplyPenalties(absl::Span<float> row,
                      std::vector<std::pair<int32_t, float>>& saved) const;

  SamplingParams params_;
  CounterRng rng_;
  absl::flat_hash_map<int32_t, TokenHistory> history_;
  int32_t max_recorded_token_ = -1;
};

// Samples one token per row of a logits batch.
//
// Thread-compatible: a Sampler keeps scratch buffers sized to the
// vocabulary, so call Sample from one thread at a time (it parallelizes
// over rows itself, with OpenMP); distinct Samplers may run concurrently on
// distinct states.
class Sampler {
 public:
  Sampler() = default;

  // Samples one token for each row.
  //
  // `logits` is row-major [rows.size(), vocab_size]: row r holds the
  // next-token logits of the sequence whose state is rows[r]. The logits
  // are modified in place: on success row r holds its sanitized logits with
  // rows[r]'s penalties applied (temperature and filters are not written
  // back). Each state's stream advances by one draw (next_draw() + 1);
  // histories are not changed, so record the tokens the caller accepts.
  //
  // Returns InvalidArgument, with no state advanced (the logits may already
  // be sanitized), if vocab_size is not in [1, kMaxVocabSize], logits.size() !=
  // rows.size() * vocab_size, a row pointer is null, a row's history holds
  // a token id >= vocab_size, or a row has no finite logit (all NaN or
  // -inf). The message names the row.
  //
  // REQUIRES: the states outlive the call and are not used by other threads
  // during it; a state appears at most once in `rows`.
  absl::StatusOr<std::vector<SampledToken>> Sample(
      absl::Span<float> logits, int vocab_size,
      absl::Span<SequenceSamplingState* const> rows);

 private:
  // Buffers one thread reuses from row to row.
  struct RowScratch {
    DrawScratch draw;
    // Raw logits of the tokens the penalties changed, for the logprob.
    std::vector<std::pair<int32_t, float>> saved_raw;
  };

  // Steps 2-8 for one sanitized, checked row.
  static SampledToken SampleRow(absl::Span<float> row,
                                SequenceSamplingState& state,
                                RowScratch& scratch);

  // One per OpenMP thread.
  std::vector<RowScratch> scratch_;
};

}  // namespace tandem

#endif  // TANDEM_ENGINE_SAMPLER_H_
