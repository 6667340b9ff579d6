#include "engine/attention_block.h"

#include <random>
#include <vector>

#include "gtest/gtest.h"

namespace tandem::internal {
namespace {

std::vector<float> RandomVector(size_t size, std::mt19937& rng) {
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> v(size);
  for (float& x : v) x = dist(rng);
  return v;
}

TEST(BlockAttentionAvx512Test, ScoresMatchPlainDotProducts) {
  if (!HasBlockAttentionAvx512()) GTEST_SKIP() << "no AVX-512";
  std::mt19937 rng(7);
  for (int head_dim : {16, 32, 64, 128}) {
    for (int group : {1, 3, 4}) {
      for (int n : {1, 5, 15, 16, 17, 32, 40}) {
        const std::vector<float> q = RandomVector(group * head_dim, rng);
        const std::vector<float> k = RandomVector(n * head_dim, rng);
        const int ld = n + 3;
        // Entries past n in each row must stay untouched.
        std::vector<float> scores(group * ld, 42.0f);
        BlockScoresAvx512(q.data(), group, head_dim, k.data(), n, 0.125f,
                          scores.data(), ld);
        for (int h = 0; h < group; ++h) {
          for (int t = 0; t < ld; ++t) {
            float want = 42.0f;
            if (t < n) {
              double dot = 0;
              for (int d = 0; d < head_dim; ++d) {
                dot += double{q[h * head_dim + d]} * k[t * head_dim + d];
              }
              want = static_cast<float>(0.125 * dot);
            }
            EXPECT_NEAR(scores[h * ld + t], want, 1e-5)
                << "head_dim=" << head_dim << " group=" << group << " n=" << n
                << " h=" << h << " t=" << t;
          }
        }
      }
    }
  }
}

TEST(BlockAttentionAvx512Test, MixAddsWeightedValuesToOut) {
  if (!HasBlockAttentionAvx512()) GTEST_SKIP() << "no AVX-512";
  std::mt19937 rng(11);
  for (int head_dim : {16, 64, 128, 256}) {
    for (int group : {1, 3, 8}) {
      for (int n : {1, 7, 16, 33}) {
        const int ld = n + 2;
        const std::vector<float> p = RandomVector(group * ld, rng);
        const std::vector<float> v = RandomVector(n * head_dim, rng);
        const std::vector<float> before = RandomVector(group * head_dim, rng);
        std::vector<float> out = before;
        BlockMixAvx512(p.data(), ld, group, v.data(), n, head_dim, out.data());
        for (int h = 0; h < group; ++h) {
          for (int d = 0; d < head_dim; ++d) {
            double want = before[h * head_dim + d];
            for (int t = 0; t < n; ++t) {
              want += double{p[h * ld + t]} * v[t * head_dim + d];
            }
            EXPECT_NEAR(out[h * head_dim + d], want, 1e-5)
                << "head_dim=" << head_dim << " group=" << group << " n=" << n
                << " h=" << h << " d=" << d;
          }
        }
      }
    }
  }
}

}  // namespace
}  // namespace tandem::internal
