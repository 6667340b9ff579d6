#include "engine/sampler.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace tandem {
namespace {

constexpr float kFloatMax = std::numeric_limits<float>::max();
constexpr float kNegInf = -std::numeric_limits<float>::infinity();

absl::Status OutOfRange(absl::string_view name, double value,
                        absl::string_view range) {
  return absl::InvalidArgumentError(absl::StrCat(
      "sampling parameter ", name, " must be in ", range, ", got ", value));
}

// Replaces NaN by -inf and +inf by the largest finite float. Returns whether
// any logit is finite afterwards.
bool SanitizeRow(absl::Span<float> row) {
  bool any_finite = false;
  for (float& x : row) {
    if (std::isnan(x)) {
      x = kNegInf;
    } else if (x > kFloatMax) {
      x = kFloatMax;
    }
    any_finite |= x != kNegInf;
  }
  return any_finite;
}

// Index of the largest value, the lowest index on ties.
// REQUIRES: row is non-empty and holds no NaN.
int32_t Argmax(absl::Span<const float> row) {
  int32_t best = 0;
  for (size_t i = 1; i < row.size(); ++i) {
    if (row[i] > row[best]) best = static_cast<int32_t>(i);
  }
  return best;
}

// sum_i exp(row[i] - max) in double, in token order.
double ExpSum(absl::Span<const float> row, float max) {
  double sum = 0.0;
  for (float x : row) sum += std::exp(x - max);
  return sum;
}

// The `n` largest logits of `row` with their raw values in `logprob`,
// largest first, ties to the lower id. One pass keeping a sorted list.
std::vector<TokenLogprob> TopLogits(absl::Span<const float> row, size_t n) {
  std::vector<TokenLogprob> best;
  if (n == 0) return best;
  best.reserve(n + 1);
  // Strict order: a before b if its logit is larger, or equal with lower id.
  auto before = [](const TokenLogprob& a, const TokenLogprob& b) {
    return a.logprob > b.logprob ||
           (a.logprob == b.logprob && a.token < b.token);
  };
  for (size_t i = 0; i < row.size(); ++i) {
    const TokenLogprob entry = {static_cast<int32_t>(i), row[i]};
    if (best.size() == n && !before(entry, best.back())) continue;
    best.insert(std::upper_bound(best.begin(), best.end(), entry, before),
                entry);
    if (best.size() > n) best.pop_back();
  }
  return best;
}

}  // namespace

absl::Status ValidateSamplingParams(const SamplingParams& p) {
  // Each test is written so that NaN fails it.
  if (!(p.temperature >= 0.0f && std::isfinite(p.temperature))) {
    return OutOfRange("temperature", p.temperature, "[0, inf)");
  }
  if (!(p.top_p > 0.0f && p.top_p <= 1.0f)) {
    return OutOfRange("top_p", p.top_p, "(0, 1]");
  }
  if (p.top_k < -1) {
    return OutOfRange("top_k", p.top_k, "[-1, 2147483647] (-1 and 0: off)");
  }
  if (!(p.min_p >= 0.0f && p.min_p <= 1.0f)) {
    return OutOfRange("min_p", p.min_p, "[0, 1]");
  }
  if (!(p.repetition_penalty > 0.0f && std::isfinite(p.repetition_penalty))) {
    return OutOfRange("repetition_penalty", p.repetition_penalty, "(0, inf)");
  }
  if (!(p.presence_penalty >= -2.0f && p.presence_penalty <= 2.0f)) {
    return OutOfRange("presence_penalty", p.presence_penalty, "[-2, 2]");
  }
  if (!(p.frequency_penalty >= -2.0f && p.frequency_penalty <= 2.0f)) {
    return OutOfRange("frequency_penalty", p.frequency_penalty, "[-2, 2]");
  }
  if (p.num_logprobs < 0 || p.num_logprobs > kMaxLogprobs) {
    return OutOfRange("num_logprobs", p.num_logprobs,
                      absl::StrCat("[0, ", kMaxLogprobs, "]"));
  }
  return absl::OkStatus();
}

absl::StatusOr<SequenceSamplingState> SequenceSamplingState::Create(
    const SamplingParams& params) {
  if (absl::Status s = ValidateSamplingParams(params); !s.ok()) return s;
  return SequenceSamplingState(params);
}

absl::Status SequenceSamplingState::RecordPromptTokens(
    absl::Span<const int32_t> tokens) {
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (tokens[i] < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("prompt token ", i, " has negative id ", tokens[i]));
    }
  }
  for (int32_t token : tokens) {
    history_[token].in_prompt = true;
    max_recorded_token_ = std::max(max_recorded_token_, token);
  }
  return absl::OkStatus();
}

absl::Status SequenceSamplingState::RecordGeneratedToken(int32_t token) {
  if (token < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("generated token has negative id ", token));
  }
  ++history_[token].generated;
  max_recorded_token_ = std::max(max_recorded_token_, token);
  return absl::OkStatus();
}

int32_t SequenceSamplingState::generated_count(int32_t token) const {
  auto it = history_.find(token);
  return it == history_.end() ? 0 : it->second.generated;
}

bool SequenceSamplingState::in_prompt(int32_t token) const {
  auto it = history_.find(token);
  return it != history_.end() && it->second.in_prompt;
}

bool SequenceSamplingState::HasPenalties() const {
  return !history_.empty() && (params_.repetition_penalty != 1.0f ||
                               params_.presence_penalty != 0.0f ||
                               params_.frequency_penalty != 0.0f);
}

void SequenceSamplingState::ApplyPenalties(
    absl::Span<float> row,
    std::vector<std::pair<int32_t, float>>& saved) const {
  const float repetition = params_.repetition_penalty;
  for (const auto& [id, history] : history_) {
    float x = row[id];
    if (x == kNegInf) continue;  // A masked token stays masked.
    saved.emplace_back(id, x);
    if (repetition != 1.0f) x = x > 0.0f ? x / repetition : x * repetition;
    if (history.generated > 0) {
      x -= params_.frequency_penalty * static_cast<float>(history.generated);
      x -= params_.presence_penalty;
    }
    // A finite logit stays finite, so every row keeps a candidate.
    row[id] = std::clamp(x, -kFloatMax, kFloatMax);
  }
}

absl::StatusOr<std::vector<SampledToken>> Sampler::Sample(
    absl::Span<float> logits, int vocab_size,
    absl::Span<SequenceSamplingState* const> rows) {
  if (vocab_size < 1 || vocab_size > kMaxVocabSize) {
    return absl::InvalidArgumentError(absl::StrCat(
        "vocab_size must be in [1, ", kMaxVocabSize, "], got ", vocab_size));
  }
  const auto vocab = static_cast<size_t>(vocab_size);
  if (logits.size() != rows.size() * vocab) {
    return absl::InvalidArgumentError(
        absl::StrCat("logits hold ", logits.size(), " values, expected ",
                     rows.size(), " rows x ", vocab_size, " vocab"));
  }
  // Check every row before any state advances, so that an error leaves the
  // batch's streams untouched.
  for (size_t r = 0; r < rows.size(); ++r) {
    if (rows[r] == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat("row ", r, " is null"));
    }
    if (rows[r]->max_recorded_token() >= vocab_size) {
      return absl::InvalidArgumentError(absl::StrCat(
          "row ", r, ": token history holds id ", rows[r]->max_recorded_token(),
          ", outside the vocabulary of ", vocab_size));
    }
    if (!SanitizeRow(logits.subspan(r * vocab, vocab))) {
      return absl::InvalidArgumentError(
          absl::StrCat("row ", r, ": no finite logit (all NaN or -inf)"));
    }
  }
  std::vector<SampledToken> out(rows.size());
  scratch_.resize(std::max(1, omp_get_max_threads()));
  const auto n = static_cast<int64_t>(rows.size());
  // Rows share nothing but the output vector, each slot written once.
#pragma omp parallel for schedule(dynamic) if (n > 1)
  for (int64_t r = 0; r < n; ++r) {
    RowScratch& scratch = scratch_[omp_get_thread_num()];
    out[r] = SampleRow(logits.subspan(r * vocab, vocab), *rows[r], scratch);
  }
  return out;
}

SampledToken Sampler::SampleRow(absl::Span<float> row,
                                SequenceSamplingState& state,
                                RowScratch& scratch) {
  const SamplingParams& params = state.params_;
  const bool greedy = params.temperature < kGreedyTemperature;
  const bool penalize = state.HasPenalties();
  SampledToken result;
  result.top_logprobs =
      TopLogits(row, std::min<size_t>(params.num_logprobs, row.size()));
  // The log-sum-exp of the raw row. Unpenalized at temperature 1 the draw's
  // weights pass computes the very same sum, so it is not done twice.
  const float raw_max = row[Argmax(row)];
  const bool sum_in_draw = !greedy && !penalize && params.temperature == 1.0f;
  double exp_sum = sum_in_draw ? 0.0 : ExpSum(row, raw_max);

  scratch.saved_raw.clear();
  if (penalize) state.ApplyPenalties(row, scratch.saved_raw);
  const uint64_t random = state.rng_.NextU64();
  if (greedy) {
    result.token = Argmax(row);
  } else {
    const TokenFilter filter = {.temperature = params.temperature,
                                .min_p = params.min_p,
                                .top_k = params.top_k,
                                .top_p = params.top_p};
    result.token = DrawToken(row, filter, random, scratch.draw,
                             sum_in_draw ? &exp_sum : nullptr);
  }

  const double lse = static_cast<double>(raw_max) + std::log(exp_sum);
  float raw = row[result.token];
  for (const auto& [id, x] : scratch.saved_raw) {
    if (id == result.token) raw = x;
  }
  result.logprob = static_cast<float>(raw - lse);
  for (TokenLogprob& top : result.top_logprobs) {
    top.logprob = static_cast<float>(top.logprob - lse);
  }
  return result;
}

}  // namespace tandem
