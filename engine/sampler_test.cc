#include "engine/sampler.h"

#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "engine/random.h"
#include "engine/sampler_test_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tandem::sampler_test {
namespace {

using ::testing::Each;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr float kFloatMax = std::numeric_limits<float>::max();

// log_softmax(logits)[token] in double, skipping NaN and -inf logits.
double LogSoftmax(const std::vector<float>& logits, int32_t token) {
  double max = -std::numeric_limits<double>::infinity();
  for (float x : logits) {
    if (!std::isnan(x)) max = std::max<double>(max, x);
  }
  double sum = 0.0;
  for (float x : logits) {
    if (!std::isnan(x)) sum += std::exp(x - max);
  }
  return logits[token] - max - std::log(sum);
}

TEST(SamplerTest, GreedyPicksTheArgmax) {
  for (int32_t token : DrawTokens(kLogits, {.temperature = 0.0f}, 5)) {
    EXPECT_EQ(token, 1);
  }
}

TEST(SamplerTest, GreedyBreaksTiesTowardTheLowestId) {
  const std::vector<float> logits = {0.0f, 3.0f, 1.0f, 3.0f};
  EXPECT_THAT(DrawTokens(logits, {.temperature = 0.0f, .seed = 5}, 3),
              ::testing::Each(1));
}

TEST(SamplerTest, TinyTemperatureIsGreedyAndStillTakesADraw) {
  Sampler sampler;
  SequenceSamplingState state = MakeState({.temperature = 1e-6f});
  EXPECT_EQ(SampleOne(sampler, kLogits, state).token, 1);
  EXPECT_EQ(state.next_draw(), 1u);
}

TEST(SamplerTest, TopKOfZeroMeansOff) {
  EXPECT_EQ(DrawTokens(kLogits, {.top_k = 0, .seed = 12}, 200),
            DrawTokens(kLogits, {.top_k = -1, .seed = 12}, 200));
  EXPECT_EQ(DrawTokens(kLogits, {.top_k = 1000, .seed = 12}, 200),
            DrawTokens(kLogits, {.top_k = -1, .seed = 12}, 200));
}

TEST(SamplerTest, SameSeedGivesSameDraws) {
  const SamplingParams params = {.top_p = 0.9f, .top_k = 8, .seed = 99};
  EXPECT_EQ(DrawTokens(kLogits, params, 500), DrawTokens(kLogits, params, 500));
}

TEST(SamplerTest, DifferentSeedsGiveDifferentDraws) {
  EXPECT_NE(DrawTokens(kLogits, {.seed = 1}, 100),
            DrawTokens(kLogits, {.seed = 2}, 100));
}

TEST(SamplerTest, ResumingAtADrawContinuesTheSameTokens) {
  const SamplingParams params = {.temperature = 1.3f, .seed = 77};
  const std::vector<int32_t> all = DrawTokens(kLogits, params, 40);
  Sampler sampler;
  SequenceSamplingState resumed = MakeState(params);
  resumed.set_next_draw(25);
  for (int i = 25; i < 40; ++i) {
    EXPECT_EQ(SampleOne(sampler, kLogits, resumed).token, all[i]);
  }
}

TEST(SamplerTest, RowsAreIndependentOfTheirBatch) {
  const SamplingParams params = {.temperature = 0.9f,
                                 .top_p = 0.95f,
                                 .frequency_penalty = 0.3f,
                                 .seed = 5};
  Sampler alone_sampler;
  Sampler batch_sampler;
  SequenceSamplingState alone = MakeState(params);
  SequenceSamplingState in_batch = MakeState(params);
  SequenceSamplingState before = MakeState({.top_k = 3, .seed = 5});
  SequenceSamplingState after = MakeState({.temperature = 0.0f});
  for (int step = 0; step < 50; ++step) {
    const int32_t expected = SampleOne(alone_sampler, kLogits, alone).token;
    std::vector<float> batch(3 * kLogits.size());
    for (size_t i = 0; i < kLogits.size(); ++i) {
      batch[i] = -kLogits[i];  // Rows 0 and 2 see other logits.
      batch[kLogits.size() + i] = kLogits[i];
      batch[2 * kLogits.size() + i] = 0.1f * i;
    }
    SequenceSamplingState* rows[] = {&before, &in_batch, &after};
    absl::StatusOr<std::vector<SampledToken>> out =
        batch_sampler.Sample(absl::MakeSpan(batch), kLogits.size(), rows);
    ASSERT_TRUE(out.ok()) << out.status();
    ASSERT_EQ(out->size(), 3u);
    EXPECT_EQ((*out)[1].token, expected) << "step " << step;
    EXPECT_EQ((*out)[2].token, 9);
    ASSERT_TRUE(alone.RecordGeneratedToken(expected).ok());
    ASSERT_TRUE(in_batch.RecordGeneratedToken((*out)[1].token).ok());
  }
}

TEST(SamplerTest, ParallelBatchMatchesRowsSampledAlone) {
  constexpr int kRows = 24;
  constexpr int kVocab = 1000;
  std::vector<float> logits(kRows * kVocab);
  CounterRng rng(31);
  for (float& x : logits) x = static_cast<float>(6.0 * rng.NextDouble());
  std::vector<SequenceSamplingState> batch_states;
  std::vector<SequenceSamplingState> alone_states;
  for (int r = 0; r < kRows; ++r) {
    const SamplingParams params = {.temperature = 0.5f + 0.1f * (r % 4),
                                   .top_p = r % 3 == 0 ? 0.8f : 1.0f,
                                   .top_k = r % 2 == 0 ? 20 : -1,
                                   .seed = static_cast<uint64_t>(r)};
    batch_states.push_back(MakeState(params));
    alone_states.push_back(MakeState(params));
  }
  std::vector<SequenceSamplingState*> rows;
  for (SequenceSamplingState& state : batch_states) rows.push_back(&state);
  Sampler batch_sampler;
  Sampler alone_sampler;
  for (int step = 0; step < 5; ++step) {
    std::vector<float> batch = logits;
    absl::StatusOr<std::vector<SampledToken>> out =
        batch_sampler.Sample(absl::MakeSpan(batch), kVocab, rows);
    ASSERT_TRUE(out.ok()) << out.status();
    for (int r = 0; r < kRows; ++r) {
      const std::vector<float> row(logits.begin() + r * kVocab,
                                   logits.begin() + (r + 1) * kVocab);
      const SampledToken alone = SampleOne(alone_sampler, row, alone_states[r]);
      EXPECT_EQ((*out)[r].token, alone.token) << "row " << r;
      EXPECT_EQ((*out)[r].logprob, alone.logprob) << "row " << r;
    }
  }
}

// Samples kLogits once with the penalty history used below (prompt {1, 2, 3},
// generated 3, 5, 5) and returns the logits as Sample leaves them.
std::vector<float> PenalizedLogits(const SamplingParams& params) {
  Sampler sampler;
  SequenceSamplingState state = MakeState(params);
  const int32_t prompt[] = {1, 2, 3};
  EXPECT_TRUE(state.RecordPromptTokens(prompt).ok());
  for (int32_t token : {3, 5, 5}) {
    EXPECT_TRUE(state.RecordGeneratedToken(token).ok());
  }
  EXPECT_EQ(state.generated_count(5), 2);
  EXPECT_TRUE(state.in_prompt(2));
  EXPECT_FALSE(state.in_prompt(5));
  std::vector<float> logits = kLogits;
  SequenceSamplingState* rows[] = {&state};
  EXPECT_TRUE(sampler.Sample(absl::MakeSpan(logits), logits.size(), rows).ok());
  return logits;
}

// kLogits with the given tokens' logits replaced.
std::vector<float> With(std::vector<std::pair<int, float>> changes) {
  std::vector<float> logits = kLogits;
  for (auto [token, value] : changes) logits[token] = value;
  return logits;
}

TEST(SamplerPenaltyTest, RepetitionDividesPositiveAndMultipliesNegative) {
  // Prompt and generated tokens both count.
  EXPECT_THAT(PenalizedLogits({.repetition_penalty = 2.0f}),
              ::testing::Pointwise(
                  ::testing::FloatEq(),
                  With({{1, 1.0f}, {2, -2.0f}, {3, 0.6f}, {5, 0.75f}})));
}

TEST(SamplerPenaltyTest, PresenceSubtractsOncePerGeneratedToken) {
  // Prompt-only tokens 1 and 2 are not penalized.
  EXPECT_THAT(PenalizedLogits({.presence_penalty = 0.5f}),
              ::testing::Pointwise(::testing::FloatEq(),
                                   With({{3, 1.2f - 0.5f}, {5, 1.5f - 0.5f}})));
}

TEST(SamplerPenaltyTest, FrequencySubtractsOncePerOccurrence) {
  EXPECT_THAT(
      PenalizedLogits({.frequency_penalty = 0.25f}),
      ::testing::Pointwise(::testing::FloatEq(),
                           With({{3, 1.2f - 0.25f}, {5, 1.5f - 0.5f}})));
}

TEST(SamplerPenaltyTest, PenaltiesCombineRepetitionFirst) {
  EXPECT_THAT(PenalizedLogits({.repetition_penalty = 2.0f,
                               .presence_penalty = 0.5f,
                               .frequency_penalty = 0.25f}),
              ::testing::Pointwise(::testing::FloatEq(),
                                   With({{1, 1.0f},
                                         {2, -2.0f},
                                         {3, 0.6f - 0.25f - 0.5f},
                                         {5, 0.75f - 0.5f - 0.5f}})));
}

TEST(SamplerPenaltyTest, NegativePenaltiesEncourageRepeats) {
  EXPECT_THAT(
      PenalizedLogits({.repetition_penalty = 0.5f, .presence_penalty = -1.0f}),
      ::testing::Pointwise(
          ::testing::FloatEq(),
          With({{1, 4.0f}, {2, -0.5f}, {3, 2.4f + 1.0f}, {5, 3.0f + 1.0f}})));
}

TEST(SamplerPenaltyTest, MaskedTokensStayMaskedAndFiniteOnesStayFinite) {
  Sampler sampler;
  SequenceSamplingState state = MakeState({.repetition_penalty = 0.5f});
  const int32_t prompt[] = {0, 1};
  ASSERT_TRUE(state.RecordPromptTokens(prompt).ok());
  std::vector<float> logits = {-kInf, 3e38f, 1.0f};
  SequenceSamplingState* rows[] = {&state};
  ASSERT_TRUE(sampler.Sample(absl::MakeSpan(logits), 3, rows).ok());
  EXPECT_EQ(logits[0], -kInf);
  EXPECT_EQ(logits[1], kFloatMax);
}

TEST(SamplerPenaltyTest, FrequencyPenaltyChangesTheGreedyChoice) {
  Sampler sampler;
  SequenceSamplingState state =
      MakeState({.temperature = 0.0f, .frequency_penalty = 0.3f});
  EXPECT_EQ(SampleOne(sampler, kLogits, state).token, 1);
  ASSERT_TRUE(state.RecordGeneratedToken(1).ok());
  EXPECT_EQ(SampleOne(sampler, kLogits, state).token, 1);  // 1.7 > 1.5
  ASSERT_TRUE(state.RecordGeneratedToken(1).ok());
  EXPECT_EQ(SampleOne(sampler, kLogits, state).token, 5);  // 1.4 < 1.5
}

TEST(SamplerLogprobTest, LogprobsComeFromTheRawLogits) {
  Sampler sampler;
  SequenceSamplingState state = MakeState({.temperature = 0.5f,
                                           .top_k = 3,
                                           .repetition_penalty = 1.3f,
                                           .presence_penalty = 0.4f,
                                           .seed = 3,
                                           .num_logprobs = 4});
  ASSERT_TRUE(state.RecordGeneratedToken(1).ok());
  ASSERT_TRUE(state.RecordGeneratedToken(5).ok());
  for (int i = 0; i < 50; ++i) {
    const SampledToken out = SampleOne(sampler, kLogits, state);
    EXPECT_NEAR(out.logprob, LogSoftmax(kLogits, out.token), 1e-5);
    ASSERT_EQ(out.top_logprobs.size(), 4u);
    const int32_t top[] = {1, 5, 3, 8};
    for (int j = 0; j < 4; ++j) {
      EXPECT_EQ(out.top_logprobs[j].token, top[j]);
      EXPECT_NEAR(out.top_logprobs[j].logprob, LogSoftmax(kLogits, top[j]),
                  1e-5);
    }
  }
}

TEST(SamplerLogprobTest, TopLogprobsAreCappedAtTheVocabAndTiesGoToLowerIds) {
  Sampler sampler;
  SequenceSamplingState state = MakeState({.num_logprobs = kMaxLogprobs});
  const std::vector<float> logits = {0.0f, 1.0f, 0.0f, 1.0f};
  const SampledToken out = SampleOne(sampler, logits, state);
  std::vector<int32_t> tokens;
  for (const TokenLogprob& t : out.top_logprobs) tokens.push_back(t.token);
  EXPECT_THAT(tokens, ElementsAre(1, 3, 0, 2));
  EXPECT_NEAR(out.top_logprobs[0].logprob, LogSoftmax(logits, 1), 1e-6);
  EXPECT_NEAR(out.top_logprobs[3].logprob, LogSoftmax(logits, 2), 1e-6);
}

TEST(SamplerLogprobTest, NoAlternativesUnlessRequested) {
  Sampler sampler;
  SequenceSamplingState state = MakeState({.temperature = 0.0f});
  const SampledToken out = SampleOne(sampler, kLogits, state);
  EXPECT_TRUE(out.top_logprobs.empty());
  EXPECT_NEAR(out.logprob, LogSoftmax(kLogits, 1), 1e-5);
}

TEST(SamplerNaNTest, NaNLogitsAreNeverDrawnAndCountAsZeroProbability) {
  std::vector<float> logits = kLogits;
  logits[1] = kNaN;
  logits[4] = kNaN;
  Sampler sampler;
  SequenceSamplingState state = MakeState({.seed = 4});
  for (int i = 0; i < 2000; ++i) {
    const SampledToken out = SampleOne(sampler, logits, state);
    ASSERT_NE(out.token, 1);
    ASSERT_NE(out.token, 4);
    EXPECT_NEAR(out.logprob, LogSoftmax(logits, out.token), 1e-5);
  }
  EXPECT_THAT(DrawTokens(logits, {.temperature = 0.0f}, 1), ElementsAre(5));
}

TEST(SamplerNaNTest, PositiveInfinityTakesAllTheMass) {
  const std::vector<float> one = {0.0f, kInf, 1.0f};
  EXPECT_THAT(DrawTokens(one, {.seed = 1}, 200), Each(1));
  EXPECT_THAT(DrawTokens(one, {.temperature = 0.0f}, 1), ElementsAre(1));
  const std::vector<float> two = {kInf, 5.0f, kInf};
  const std::vector<int32_t> drawn =
      DrawTokens(two, {.temperature = 0.3f, .seed = 1}, 200);
  EXPECT_THAT(drawn, Each(::testing::AnyOf(0, 2)));
  EXPECT_THAT(drawn, ::testing::Contains(0));
  EXPECT_THAT(drawn, ::testing::Contains(2));
}

TEST(SamplerErrorTest, RowWithoutFiniteLogitIsRejectedAndNoStateAdvances) {
  Sampler sampler;
  SequenceSamplingState good = MakeState({});
  SequenceSamplingState bad = MakeState({});
  std::vector<float> logits = {1.0f, 2.0f, kNaN, -kInf};
  SequenceSamplingState* rows[] = {&good, &bad};
  absl::StatusOr<std::vector<SampledToken>> out =
      sampler.Sample(absl::MakeSpan(logits), 2, rows);
  EXPECT_EQ(out.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(out.status().message(), HasSubstr("row 1"));
  EXPECT_EQ(good.next_draw(), 0u);
  EXPECT_EQ(bad.next_draw(), 0u);
}

TEST(SamplerErrorTest, MalformedBatchesAreRejected) {
  Sampler sampler;
  SequenceSamplingState state = MakeState({});
  std::vector<float> logits = {1.0f, 2.0f, 3.0f};
  SequenceSamplingState* rows[] = {&state};
  SequenceSamplingState* null_rows[] = {nullptr};
  const auto code = [&](int vocab, absl::Span<SequenceSamplingState* const> r) {
    return sampler.Sample(absl::MakeSpan(logits), vocab, r).status().code();
  };
  EXPECT_EQ(code(0, {}), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(code(2, rows), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(code(3, null_rows), absl::StatusCode::kInvalidArgument);
  ASSERT_TRUE(state.RecordGeneratedToken(3).ok());
  EXPECT_EQ(code(3, rows), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(state.next_draw(), 0u);
  std::vector<float> empty;
  EXPECT_TRUE(sampler.Sample(absl::MakeSpan(empty), 3, {}).ok());
}

TEST(SamplerErrorTest, NegativeTokenIdsAreNotRecorded) {
  SequenceSamplingState state = MakeState({});
  const int32_t prompt[] = {4, -1};
  EXPECT_EQ(state.RecordPromptTokens(prompt).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(state.in_prompt(4));
  EXPECT_EQ(state.RecordGeneratedToken(-7).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(state.max_recorded_token(), -1);
}

struct InvalidCase {
  std::string name;
  std::function<void(SamplingParams&)> set;
};

TEST(SamplingParamsTest, EveryOutOfRangeFieldIsNamed) {
  const std::vector<InvalidCase> cases = {
      {"temperature", [](auto& p) { p.temperature = -0.1f; }},
      {"temperature", [](auto& p) { p.temperature = kNaN; }},
      {"temperature", [](auto& p) { p.temperature = kInf; }},
      {"top_p", [](auto& p) { p.top_p = 0.0f; }},
      {"top_p", [](auto& p) { p.top_p = 1.01f; }},
      {"top_p", [](auto& p) { p.top_p = kNaN; }},
      {"top_k", [](auto& p) { p.top_k = -2; }},
      {"min_p", [](auto& p) { p.min_p = -0.01f; }},
      {"min_p", [](auto& p) { p.min_p = 1.5f; }},
      {"min_p", [](auto& p) { p.min_p = kNaN; }},
      {"repetition_penalty", [](auto& p) { p.repetition_penalty = 0.0f; }},
      {"repetition_penalty", [](auto& p) { p.repetition_penalty = -1.0f; }},
      {"repetition_penalty", [](auto& p) { p.repetition_penalty = kNaN; }},
      {"repetition_penalty", [](auto& p) { p.repetition_penalty = kInf; }},
      {"presence_penalty", [](auto& p) { p.presence_penalty = 2.5f; }},
      {"presence_penalty", [](auto& p) { p.presence_penalty = -2.5f; }},
      {"presence_penalty", [](auto& p) { p.presence_penalty = kNaN; }},
      {"frequency_penalty", [](auto& p) { p.frequency_penalty = 2.01f; }},
      {"frequency_penalty", [](auto& p) { p.frequency_penalty = -kInf; }},
      {"frequency_penalty", [](auto& p) { p.frequency_penalty = kNaN; }},
      {"num_logprobs", [](auto& p) { p.num_logprobs = -1; }},
      {"num_logprobs", [](auto& p) { p.num_logprobs = kMaxLogprobs + 1; }},
  };
  for (const InvalidCase& c : cases) {
    SamplingParams params;
    c.set(params);
    const absl::Status status = ValidateSamplingParams(params);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << c.name;
    EXPECT_THAT(status.message(), HasSubstr(c.name));
    EXPECT_EQ(SequenceSamplingState::Create(params).status().code(),
              absl::StatusCode::kInvalidArgument)
        << c.name;
  }
}

TEST(SamplingParamsTest, RangeEndsAreAccepted) {
  EXPECT_TRUE(ValidateSamplingParams({}).ok());
  EXPECT_TRUE(ValidateSamplingParams({.temperature = 0.0f,
                                      .top_p = 1.0f,
                                      .top_k = 0,
                                      .min_p = 1.0f,
                                      .repetition_penalty = 1e-3f,
                                      .presence_penalty = -2.0f,
                                      .frequency_penalty = 2.0f,
                                      .num_logprobs = kMaxLogprobs})
                  .ok());
  EXPECT_TRUE(ValidateSamplingParams({.temperature = 100.0f,
                                      .top_p = 1e-6f,
                                      .top_k = -1,
                                      .min_p = 0.0f,
                                      .repetition_penalty = 1e6f,
                                      .presence_penalty = 2.0f,
                                      .frequency_penalty = -2.0f,
                                      .num_logprobs = 0})
                  .ok());
}

}  // namespace
}  // namespace tandem::sampler_test
