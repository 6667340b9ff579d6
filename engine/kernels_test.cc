#include "engine/kernels.h"

#include <omp.h>

#include <cmath>
#include <cstdint>
#include <ostream>
#include <thread>
#include <vector>

#include "engine/small_batch_kernel.h"
#include "gtest/gtest.h"

namespace tandem {
namespace {

std::vector<float> RandomVector(size_t n, uint64_t seed) {
  std::vector<float> v(n);
  for (float& x : v) {
    seed = seed * 6364136223846793005ull + 1442695040888963407ull;
    x = static_cast<float>((seed >> 40) % 2001) / 1000.0f - 1.0f;
  }
  return v;
}

// y[m, n] = x[m, k] w[n, k]^T in double, the definition.
std::vector<double> Naive(const std::vector<float>& x, int ldx,
                          const std::vector<float>& w, int m, int k, int n) {
  std::vector<double> y(static_cast<size_t>(m) * n);
  for (int i = 0; i < m; ++i) {
    for (int j = 0; j < n; ++j) {
      double sum = 0.0;
      for (int t = 0; t < k; ++t) {
        sum += static_cast<double>(x[i * ldx + t]) * w[j * k + t];
      }
      y[i * n + j] = sum;
    }
  }
  return y;
}

struct Shape {
  int m, k, n;
};

void PrintTo(const Shape& s, std::ostream* os) {
  *os << "m=" << s.m << " k=" << s.k << " n=" << s.n;
}

class LinearTest : public testing::TestWithParam<Shape> {};

// Every kernel Linear can pick agrees with the definition, including
// shapes whose k and n are not multiples of the vector width or tile, and
// an x with a row stride wider than k.
TEST_P(LinearTest, AllKernelsMatchDefinition) {
  const auto [m, k, n] = GetParam();
  const int ldx = k + 3;
  const std::vector<float> x = RandomVector(static_cast<size_t>(m) * ldx, 1);
  const std::vector<float> w = RandomVector(static_cast<size_t>(n) * k, 2);
  const std::vector<double> want = Naive(x, ldx, w, m, k, n);
  std::vector<float> bias = RandomVector(n, 3);

  std::vector<float> y(static_cast<size_t>(m) * n);
  Linear(x.data(), ldx, w.data(), bias.data(), m, k, n, y.data(), n);
  for (size_t i = 0; i < y.size(); ++i) {
    ASSERT_NEAR(y[i], want[i] + bias[i % n], 1e-4) << "Linear at " << i;
  }
  LinearSmallBatch(x.data(), ldx, w.data(), m, k, n, y.data(), n);
  for (size_t i = 0; i < y.size(); ++i) {
    ASSERT_NEAR(y[i], want[i], 1e-4) << "small batch at " << i;
  }
  LinearGemm(x.data(), ldx, w.data(), m, k, n, y.data(), n);
  for (size_t i = 0; i < y.size(); ++i) {
    ASSERT_NEAR(y[i], want[i], 1e-4) << "gemm at " << i;
  }
  internal::SmallBatchPortable(x.data(), ldx, w.data(), m, k, 0, n, y.data(),
                               n);
  for (size_t i = 0; i < y.size(); ++i) {
    ASSERT_NEAR(y[i], want[i], 1e-4) << "portable at " << i;
  }
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
    internal::SmallBatchAvx2(x.data(), ldx, w.data(), m, k, 0, n, y.data(), n);
    for (size_t i = 0; i < y.size(); ++i) {
      ASSERT_NEAR(y[i], want[i], 1e-4) << "avx2 at " << i;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, LinearTest,
    testing::Values(Shape{1, 64, 96}, Shape{1, 37, 13}, Shape{2, 96, 33},
                    Shape{5, 17, 7}, Shape{16, 768, 70}, Shape{32, 100, 129},
                    Shape{33, 64, 40}, Shape{70, 130, 65}, Shape{16, 1100, 9},
                    // Three chunks of k, sums carried between them.
                    Shape{7, 2100, 13}));

TEST(KernelsTest, EngineThreadsReachThreadsStartedLater) {
  const int before = EngineThreads();
  // A count no default gives: OpenMP's default is one thread per core.
  const int wanted = omp_get_num_procs() + 1;
  SetEngineThreads(wanted);
  int seen_without = 0;
  int seen_with = 0;
  std::thread other([&] {
    seen_without = omp_get_max_threads();
    UseEngineThreads();
    seen_with = omp_get_max_threads();
  });
  other.join();
  EXPECT_NE(seen_without, wanted);  // OpenMP keeps the count per thread
  EXPECT_EQ(seen_with, wanted);
  SetEngineThreads(before);
}

TEST(KernelsTest, RmsNormScalesByRootMeanSquare) {
  const std::vector<float> x = {1, 2, 3, 4, -1, -1, -1, -1};
  const std::vector<float> weight = {1, 0.5, 2, 1};
  std::vector<float> out(8);
  RmsNorm(x.data(), weight.data(), 2, 4, 0.0f, out.data());
  const float rms0 = std::sqrt((1 + 4 + 9 + 16) / 4.0f);
  EXPECT_NEAR(out[0], 1 / rms0, 1e-6);
  EXPECT_NEAR(out[1], 2 / rms0 * 0.5f, 1e-6);
  EXPECT_NEAR(out[2], 3 / rms0 * 2, 1e-6);
  EXPECT_NEAR(out[7], -1, 1e-6);
}

TEST(KernelsTest, SiluMulGatesUp) {
  const std::vector<float> gate = {0, 1, -2};
  const std::vector<float> up = {5, 2, 3};
  std::vector<float> out(3);
  SiluMul(gate.data(), up.data(), 3, out.data());
  EXPECT_NEAR(out[0], 0, 1e-7);
  EXPECT_NEAR(out[1], 2 / (1 + std::exp(-1.0)), 1e-6);
  EXPECT_NEAR(out[2], 3 * -2 / (1 + std::exp(2.0)), 1e-6);
}

}  // namespace
}  // namespace tandem
