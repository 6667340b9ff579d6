// Checks the sampler's draws against distributions computed here directly
// from the definitions: their frequencies with chi-square goodness-of-fit
// tests, and single draws against the random number that made them.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <vector>

#include "engine/random.h"
#include "engine/sampler.h"
#include "engine/sampler_test_util.h"
#include "gtest/gtest.h"

namespace tandem::sampler_test {
namespace {

// The distribution the parameters define, computed in double straight from
// the definitions: softmax(z / T); keep p >= min_p * p_max; sort by p (ties
// to the lower id); keep the first top_k; keep the shortest prefix whose
// renormalized mass reaches top_p; renormalize.
std::vector<double> ExpectedDistribution(const std::vector<float>& logits,
                                         const SamplingParams& params) {
  const size_t n = logits.size();
  std::vector<double> p(n);
  const double max = *std::max_element(logits.begin(), logits.end());
  for (size_t i = 0; i < n; ++i) {
    p[i] = std::exp((logits[i] - max) / params.temperature);
  }
  const double p_max = 1.0;  // p is relative to the maximum.
  std::vector<int> kept;
  for (size_t i = 0; i < n; ++i) {
    if (p[i] >= params.min_p * p_max) kept.push_back(i);
  }
  std::stable_sort(kept.begin(), kept.end(),
                   [&](int a, int b) { return p[a] > p[b]; });
  if (params.top_k > 0 && static_cast<size_t>(params.top_k) < kept.size()) {
    kept.resize(params.top_k);
  }
  double mass = 0.0;
  for (int i : kept) mass += p[i];
  double cumulative = 0.0;
  size_t prefix = 0;
  while (prefix < kept.size() && cumulative < params.top_p * mass) {
    cumulative += p[kept[prefix++]];
  }
  std::vector<double> expected(n, 0.0);
  for (size_t j = 0; j < prefix; ++j) expected[kept[j]] = p[kept[j]];
  const double total = std::accumulate(expected.begin(), expected.end(), 0.0);
  for (double& e : expected) e /= total;
  return expected;
}

// Chi-square critical values at significance 0.001, by degrees of freedom.
double ChiSquareCritical(int df) {
  static const double kTable[] = {0,      10.828, 13.816, 16.266, 18.467,
                                  20.515, 22.458, 24.322, 26.124, 27.877,
                                  29.588, 31.264, 32.909, 34.528, 36.123};
  return kTable[df];
}

// Draws 20,000 seeded tokens and checks them against `expected` with a
// chi-square goodness-of-fit test; impossible tokens must never be drawn.
void ExpectDrawsMatch(const std::vector<float>& logits,
                      const SamplingParams& params,
                      const std::vector<double>& expected) {
  constexpr int kDraws = 20000;
  std::vector<int> counts(logits.size(), 0);
  for (int32_t token : DrawTokens(logits, params, kDraws)) ++counts[token];
  double chi2 = 0.0;
  int bins = 0;
  for (size_t i = 0; i < logits.size(); ++i) {
    if (expected[i] == 0.0) {
      EXPECT_EQ(counts[i], 0) << "token " << i << " should be filtered out";
      continue;
    }
    const double e = expected[i] * kDraws;
    chi2 += (counts[i] - e) * (counts[i] - e) / e;
    ++bins;
  }
  ASSERT_GE(bins, 2);
  EXPECT_LT(chi2, ChiSquareCritical(bins - 1)) << "bins=" << bins;
}

void ExpectDrawsMatchDefinition(const SamplingParams& params,
                                int expected_support) {
  const std::vector<double> expected = ExpectedDistribution(kLogits, params);
  EXPECT_EQ(std::count_if(expected.begin(), expected.end(),
                          [](double e) { return e > 0.0; }),
            expected_support);
  ExpectDrawsMatch(kLogits, params, expected);
}

TEST(SamplerDistributionTest, UnfilteredDrawsFollowSoftmax) {
  ExpectDrawsMatchDefinition({.seed = 1}, 10);
}

TEST(SamplerDistributionTest, TemperatureScalesLogits) {
  ExpectDrawsMatchDefinition({.temperature = 0.7f, .seed = 2}, 10);
  ExpectDrawsMatchDefinition({.temperature = 2.5f, .seed = 3}, 10);
}

TEST(SamplerDistributionTest, MinPKeepsTokensNearTheMaximum) {
  ExpectDrawsMatchDefinition({.min_p = 0.2f, .seed = 4}, 5);
}

TEST(SamplerDistributionTest, MinPAppliesToTheTemperatureScaledDistribution) {
  ExpectDrawsMatchDefinition({.temperature = 0.5f, .min_p = 0.3f, .seed = 5},
                             2);
}

TEST(SamplerDistributionTest, TopKKeepsTheKMostProbable) {
  ExpectDrawsMatchDefinition({.top_k = 4, .seed = 6}, 4);
}

TEST(SamplerDistributionTest, TopPKeepsTheShortestPrefixReachingP) {
  ExpectDrawsMatchDefinition({.top_p = 0.6f, .seed = 7}, 3);
}

TEST(SamplerDistributionTest, AllFiltersCombineInOrder) {
  // min-p drops 2 tokens, top-k 2 more, top-p 2 more.
  ExpectDrawsMatchDefinition({.temperature = 1.5f,
                              .top_p = 0.75f,
                              .top_k = 6,
                              .min_p = 0.15f,
                              .seed = 8},
                             4);
}

TEST(SamplerDistributionTest, TopKBreaksTiesTowardLowerIds) {
  const std::vector<float> logits = {1.0f, 0.0f, 1.0f, 1.0f, 0.5f};
  ExpectDrawsMatch(logits, {.top_k = 2, .seed = 9}, {0.5, 0, 0.5, 0, 0});
}

TEST(SamplerDistributionTest, MinPOfOneKeepsEveryMaximum) {
  const std::vector<float> logits = {1.0f, 3.0f, 2.9f, 3.0f};
  ExpectDrawsMatch(logits, {.min_p = 1.0f, .seed = 10}, {0, 0.5, 0, 0.5});
}

TEST(SamplerDistributionTest, PenalizedLogitsDefineTheDistribution) {
  // Token 1 (logit 2.0) generated twice with frequency 0.5: logit 1.0.
  std::vector<float> penalized = kLogits;
  penalized[1] = 1.0f;
  const std::vector<double> expected =
      ExpectedDistribution(penalized, SamplingParams{});
  Sampler sampler;
  SequenceSamplingState state =
      MakeState({.frequency_penalty = 0.5f, .seed = 11});
  ASSERT_TRUE(state.RecordGeneratedToken(1).ok());
  ASSERT_TRUE(state.RecordGeneratedToken(1).ok());
  constexpr int kDraws = 20000;
  std::vector<int> counts(kLogits.size(), 0);
  for (int i = 0; i < kDraws; ++i) {
    ++counts[SampleOne(sampler, kLogits, state).token];
  }
  double chi2 = 0.0;
  for (size_t i = 0; i < kLogits.size(); ++i) {
    const double e = expected[i] * kDraws;
    chi2 += (counts[i] - e) * (counts[i] - e) / e;
  }
  EXPECT_LT(chi2, ChiSquareCritical(9));
}

TEST(SamplerDistributionTest, LightTokensCountWhenHeavyOnesFallShort) {
  // One token holds 83% of the mass; 1000 others, each 2e-4 as probable,
  // hold the rest. Top-k and top-p must look past the probable token.
  std::vector<float> logits(1001, -8.517f);
  logits[0] = 0.0f;
  const SamplingParams cases[] = {
      {.top_p = 0.9f, .seed = 14},
      {.top_k = 100, .seed = 15},
      {.top_p = 0.9f, .top_k = 800, .seed = 16},
  };
  for (const SamplingParams& params : cases) {
    const std::vector<double> expected = ExpectedDistribution(logits, params);
    constexpr int kDraws = 2000;
    int first = 0;
    for (int32_t token : DrawTokens(logits, params, kDraws)) {
      ASSERT_GT(expected[token], 0.0) << "token " << token;
      first += token == 0;
    }
    // Chi-square on two bins, token 0 and the rest (1 degree of freedom).
    const double e0 = expected[0] * kDraws;
    const double e1 = kDraws - e0;
    const double chi2 =
        (first - e0) * (first - e0) / e0 + (first - e0) * (first - e0) / e1;
    EXPECT_LT(chi2, ChiSquareCritical(1)) << "top_k=" << params.top_k;
  }
}

// Draws from `n` equal logits with top_p 0.5: exactly the first n / 2 (by
// id) hold half the mass and must be the tokens drawn.
void ExpectTopPOfHalfKeepsTheFirstHalf(size_t n) {
  const std::vector<float> logits(n, 0.25f);
  const SamplingParams params = {.top_p = 0.5f, .seed = 13};
  const std::vector<double> expected = ExpectedDistribution(logits, params);
  std::vector<int> counts(n, 0);
  for (int32_t token : DrawTokens(logits, params, 2000)) ++counts[token];
  for (size_t i = 0; i < n; ++i) {
    EXPECT_EQ(expected[i] > 0.0, i < n / 2);
    EXPECT_EQ(counts[i] > 0, i < n / 2) << "token " << i << " of " << n;
  }
}

TEST(SamplerDistributionTest, TopPStopsWhereTheMassExactlyReachesP) {
  ExpectTopPOfHalfKeepsTheFirstHalf(4);
  ExpectTopPOfHalfKeepsTheFirstHalf(128);  // Through the quickselect.
}

// Checks each draw exactly: the token drawn with random bits r must be the
// kept token, in token id order, whose cumulative probability interval holds
// r / 2^64.
void ExpectDrawsFollowTokenOrder(const std::vector<float>& logits,
                                 const SamplingParams& params, int n) {
  const std::vector<double> expected = ExpectedDistribution(logits, params);
  const std::vector<int32_t> drawn = DrawTokens(logits, params, n);
  for (int i = 0; i < n; ++i) {
    const double u =
        std::ldexp(static_cast<double>(CounterRng::At(params.seed, i)), -64);
    double cumulative = 0.0;
    int32_t want = -1;
    for (size_t t = 0; t < expected.size() && cumulative <= u; ++t) {
      if (expected[t] == 0.0) continue;
      cumulative += expected[t];
      want = static_cast<int32_t>(t);
    }
    EXPECT_EQ(drawn[i], want) << "draw " << i << ", u=" << u;
  }
}

TEST(SamplerDrawTest, DrawsFollowTokenOrderUnfiltered) {
  ExpectDrawsFollowTokenOrder(kLogits, {.temperature = 0.8f, .seed = 21}, 500);
}

TEST(SamplerDrawTest, DrawsFollowTokenOrderAmongFewKeptTokens) {
  // 4 of 64 kept: the kept ids are sorted back into token order.
  std::vector<float> logits(64);
  for (size_t i = 0; i < logits.size(); ++i) logits[i] = 0.05f * (i % 13);
  ExpectDrawsFollowTokenOrder(logits, {.top_k = 4, .seed = 22}, 500);
  ExpectDrawsFollowTokenOrder(logits, {.top_p = 0.05f, .seed = 23}, 500);
}

TEST(SamplerDrawTest, DrawsFollowTokenOrderAmongManyKeptTokens) {
  // Most of 64 kept: the draw walks the vocabulary, testing membership.
  std::vector<float> logits(64);
  for (size_t i = 0; i < logits.size(); ++i) logits[i] = 0.05f * (i % 13);
  ExpectDrawsFollowTokenOrder(logits, {.top_p = 0.9f, .seed = 24}, 500);
  ExpectDrawsFollowTokenOrder(
      logits, {.temperature = 0.5f, .top_k = 40, .min_p = 0.5f, .seed = 25},
      500);
}

TEST(SamplerDistributionTest, LargeVocabDrawsStayInsideTheFilteredSupport) {
  constexpr int kVocab = 152064;
  std::vector<float> logits(kVocab);
  CounterRng rng(2024);
  for (float& x : logits) x = static_cast<float>(8.0 * rng.NextDouble() - 4.0);
  const SamplingParams cases[] = {
      {.temperature = 0.7f, .top_k = 40, .seed = 1},
      {.top_p = 0.5f, .seed = 2},
      {.temperature = 1.2f,
       .top_p = 0.3f,
       .top_k = 5000,
       .min_p = 0.01f,
       .seed = 3},
  };
  for (const SamplingParams& params : cases) {
    const std::vector<double> expected = ExpectedDistribution(logits, params);
    for (int32_t token : DrawTokens(logits, params, 10)) {
      EXPECT_GT(expected[token], 0.0) << "token " << token;
    }
  }
}

}  // namespace
}  // namespace tandem::sampler_test
