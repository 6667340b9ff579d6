// Helpers shared by the sampler's tests: a small vocabulary and shortcuts to
// sample one row many times.
#ifndef TANDEM_ENGINE_SAMPLER_TEST_UTIL_H_
#define TANDEM_ENGINE_SAMPLER_TEST_UTIL_H_

#include <cstdint>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/sampler.h"
#include "gtest/gtest.h"

namespace tandem::sampler_test {

// A small vocabulary whose most probable token is not id 0. By probability:
// 1, 5, 3, 8, 7, 0, 4, 9, 2, 6.
inline const std::vector<float> kLogits = {0.3f, 2.0f,  -1.0f, 1.2f, 0.0f,
                                           1.5f, -2.0f, 0.5f,  1.0f, -0.5f};

// Returns a state for valid `params` (a test failure otherwise).
inline SequenceSamplingState MakeState(const SamplingParams& params) {
  absl::StatusOr<SequenceSamplingState> state =
      SequenceSamplingState::Create(params);
  EXPECT_TRUE(state.ok()) << state.status();
  return *std::move(state);
}

// Samples one row holding `logits` (a copy) with `state`.
inline SampledToken SampleOne(Sampler& sampler, std::vector<float> logits,
                              SequenceSamplingState& state) {
  SequenceSamplingState* rows[] = {&state};
  absl::StatusOr<std::vector<SampledToken>> out =
      sampler.Sample(absl::MakeSpan(logits), logits.size(), rows);
  EXPECT_TRUE(out.ok()) << out.status();
  return out.ok() ? (*out)[0] : SampledToken{-1, 0.0f, {}};
}

// Draws `n` tokens in a row from a fresh state for `params`, recording none.
inline std::vector<int32_t> DrawTokens(const std::vector<float>& logits,
                                       const SamplingParams& params, int n) {
  Sampler sampler;
  SequenceSamplingState state = MakeState(params);
  std::vector<int32_t> tokens;
  for (int i = 0; i < n; ++i) {
    tokens.push_back(SampleOne(sampler, logits, state).token);
  }
  return tokens;
}

}  // namespace tandem::sampler_test

#endif  // TANDEM_ENGINE_SAMPLER_TEST_UTIL_H_
