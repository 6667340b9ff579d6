#include "engine/sampler.h"

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

// log(sum_i exp(row[i])) in double precision.
// REQUIRES: row is sanitized and holds a finite value.
double LogSumExp(absl::Span<const float> row) {
  const float max = row[Argmax(row)];
  double sum = 0.0;
  for (float x : row) sum += std::exp(x - max);
  return static_cast<double>(max) + std::log(sum);
}

// The `n` largest logits of `row` as logprobs (logit - lse), largest first,
// ties to the lower id. A single pass keeping a sorted list of n.
std::vector<TokenLogprob> TopLogprobs(absl::Span<const float> row, size_t n,
                                      double lse) {
  std::vector<int32_t> best;
  best.reserve(n + 1);
  // Strict order: a before b if a's logit is larger, or equal with lower id.
  auto before = [row](int32_t a, int32_t b) {
    return row[a] > row[b] || (row[a] == row[b] && a < b);
  };
  for (size_t i = 0; i < row.size() && n > 0; ++i) {
    const auto id = static_cast<int32_t>(i);
    if (best.size() == n && !before(id, best.back())) continue;
    best.insert(std::upper_bound(best.begin(), best.end(), id, before), id);
    if (best.size() > n) best.pop_back();
  }
  std::vector<TokenLogprob> out;
  out.reserve(best.size());
  for (int32_t id : best) {
    out.push_back({id, static_cast<float>(row[id] - lse)});
  }
  return out;
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
  return params_.repetition_penalty != 1.0f ||
         params_.presence_penalty != 0.0f || params_.frequency_penalty != 0.0f;
}

absl::StatusOr<std::vector<SampledToken>> Sampler::Sample(
    absl::Span<float> logits, int vocab_size,
    absl::Span<SequenceSamplingState* const> rows) {
  if (vocab_size < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("vocab_size must be positive, got ", vocab_size));
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
  std::vector<SampledToken> out;
  out.reserve(rows.size());
  for (size_t r = 0; r < rows.size(); ++r) {
    out.push_back(SampleRow(logits.subspan(r * vocab, vocab), *rows[r]));
  }
  return out;
}

SampledToken Sampler::SampleRow(absl::Span<float> row,
                                SequenceSamplingState& state) {
  const SamplingParams& params = state.params_;
  SampledToken result;
  const double lse = LogSumExp(row);
  const size_t n_top = std::min<size_t>(params.num_logprobs, row.size());
  result.top_logprobs = TopLogprobs(row, n_top, lse);

  // Penalties, saving the raw logits they overwrite for the logprob.
  saved_raw_.clear();
  if (state.HasPenalties()) {
    for (const auto& [id, history] : state.history_) {
      float x = row[id];
      if (x == kNegInf) continue;  // A masked token stays masked.
      saved_raw_.emplace_back(id, x);
      if (params.repetition_penalty != 1.0f) {
        x = x > 0.0f ? x / params.repetition_penalty
                     : x * params.repetition_penalty;
      }
      if (history.generated > 0) {
        x -= params.frequency_penalty * static_cast<float>(history.generated);
        x -= params.presence_penalty;
      }
      // A finite logit stays finite, so every row keeps a candidate.
      row[id] = std::clamp(x, -kFloatMax, kFloatMax);
    }
  }

  const double u = state.rng_.NextDouble();
  result.token = params.temperature < kGreedyTemperature
                     ? Argmax(row)
                     : DrawFiltered(row, params, u);
  float raw = row[result.token];
  for (const auto& [id, x] : saved_raw_) {
    if (id == result.token) raw = x;
  }
  result.logprob = static_cast<float>(raw - lse);
  return result;
}

int32_t Sampler::DrawFiltered(absl::Span<const float> row,
                              const SamplingParams& params, double u) {
  // Temperature and min-p: weights_[i] = p_i / p_max, or 0 if filtered out.
  // Subtracting the max before dividing keeps the scaled values <= 0.
  const float max = row[Argmax(row)];
  const float temperature = params.temperature;
  const float min_p = params.min_p;
  weights_.resize(row.size());
  double total = 0.0;
  for (size_t i = 0; i < row.size(); ++i) {
    float w = std::exp((row[i] - max) / temperature);
    if (w < min_p) w = 0.0f;
    weights_[i] = w;
    total += w;
  }
  const bool top_k_on =
      params.top_k > 0 && static_cast<size_t>(params.top_k) < row.size();
  const bool top_p_on = params.top_p < 1.0f;

  // Fast path: no sorting filter, draw in token order.
  if (!top_k_on && !top_p_on) {
    const double target = u * total;
    double acc = 0.0;
    int32_t last = 0;
    for (size_t i = 0; i < row.size(); ++i) {
      if (weights_[i] == 0.0f) continue;
      acc += weights_[i];
      last = static_cast<int32_t>(i);
      if (acc > target) return last;
    }
    return last;  // Only reached through rounding.
  }

  candidates_.clear();
  for (size_t i = 0; i < row.size(); ++i) {
    if (weights_[i] > 0.0f) candidates_.push_back(static_cast<int32_t>(i));
  }
  const float* w = weights_.data();
  auto before = [w](int32_t a, int32_t b) {
    return w[a] > w[b] || (w[a] == w[b] && a < b);
  };
  size_t kept = candidates_.size();
  bool sorted = false;
  if (top_k_on && static_cast<size_t>(params.top_k) < kept) {
    kept = static_cast<size_t>(params.top_k);
    std::nth_element(candidates_.begin(), candidates_.begin() + kept,
                     candidates_.end(), before);
    candidates_.resize(kept);
    std::sort(candidates_.begin(), candidates_.end(), before);
    sorted = true;
    total = 0.0;
    for (int32_t id : candidates_) total += w[id];
  }
  if (top_p_on) kept = TopPPrefix(params.top_p * total, sorted);

  // Draw among the kept prefix, in its (canonical) order.
  double mass = 0.0;
  for (size_t i = 0; i < kept; ++i) mass += w[candidates_[i]];
  const double target = u * mass;
  double acc = 0.0;
  for (size_t i = 0; i < kept; ++i) {
    acc += w[candidates_[i]];
    if (acc > target) return candidates_[i];
  }
  return candidates_[kept - 1];  // Only reached through rounding.
}

size_t Sampler::TopPPrefix(double target, bool sorted) {
  const float* w = weights_.data();
  auto before = [w](int32_t a, int32_t b) {
    return w[a] > w[b] || (w[a] == w[b] && a < b);
  };
  const size_t n = candidates_.size();
  const auto begin = candidates_.begin();
  double acc = 0.0;
  size_t done = 0;  // candidates_[0, done) are sorted and summed.
  size_t chunk = 64;
  while (done < n) {
    const size_t end = sorted ? n : std::min(n, done + chunk);
    if (!sorted) {
      // Bring the best (end - done) of the rest to the front, then sort them.
      if (end < n)
        std::nth_element(begin + done, begin + end, begin + n, before);
      std::sort(begin + done, begin + end, before);
    }
    for (size_t i = done; i < end; ++i) {
      acc += w[candidates_[i]];
      if (acc >= target) return i + 1;
    }
    done = end;
    chunk *= 2;
  }
  return n;
}

}  // namespace tandem
