#include "engine/vector_math.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "gtest/gtest.h"

namespace tandem {
namespace {

TEST(ExpInPlaceTest, MatchesStdExpToAFewUlps) {
  std::vector<float> x;
  for (float v = -87.0f; v <= 88.0f; v += 0.0137f) x.push_back(v);
  std::vector<float> y = x;
  ExpInPlace(y.data(), static_cast<long>(y.size()));
  for (size_t i = 0; i < x.size(); ++i) {
    const double want = std::exp(static_cast<double>(x[i]));
    EXPECT_NEAR(y[i], want, 4e-7 * want) << "exp(" << x[i] << ")";
  }
}

TEST(ExpInPlaceTest, SaturatesOutsideTheFloatRangeAndKeepsNaN) {
  std::vector<float> x = {-1000.0f,
                          -std::numeric_limits<float>::infinity(),
                          1000.0f,
                          std::numeric_limits<float>::infinity(),
                          std::numeric_limits<float>::quiet_NaN(),
                          0.0f};
  ExpInPlace(x.data(), static_cast<long>(x.size()));
  EXPECT_EQ(x[0], 0.0f);
  EXPECT_EQ(x[1], 0.0f);
  EXPECT_EQ(x[2], std::numeric_limits<float>::infinity());
  EXPECT_EQ(x[3], std::numeric_limits<float>::infinity());
  EXPECT_TRUE(std::isnan(x[4]));
  EXPECT_EQ(x[5], 1.0f);
}

// Lengths around the vector widths, and values large enough that an
// unshifted exponential would overflow.
TEST(SoftmaxInPlaceTest, MatchesDoubleReferenceAtEveryLength) {
  for (long n : {1L, 3L, 15L, 16L, 17L, 31L, 128L, 513L}) {
    std::vector<float> x(n);
    for (long i = 0; i < n; ++i) x[i] = 200.0f + 7.0f * std::sin(0.37f * i);
    double max_value = x[0];
    for (float v : x) max_value = std::max<double>(max_value, v);
    std::vector<double> want(n);
    double sum = 0.0;
    for (long i = 0; i < n; ++i) sum += want[i] = std::exp(x[i] - max_value);
    std::vector<float> y = x;
    SoftmaxInPlace(y.data(), n);
    double total = 0.0;
    for (long i = 0; i < n; ++i) {
      EXPECT_NEAR(y[i], want[i] / sum, 1e-6) << "n=" << n << " i=" << i;
      total += y[i];
    }
    EXPECT_NEAR(total, 1.0, 1e-5) << "n=" << n;
  }
}

TEST(SoftmaxInPlaceTest, NegativeInfinityGetsZeroWeight) {
  const float inf = std::numeric_limits<float>::infinity();
  std::vector<float> x = {0.0f, -inf, 0.0f, -inf};
  SoftmaxInPlace(x.data(), static_cast<long>(x.size()));
  EXPECT_FLOAT_EQ(x[0], 0.5f);
  EXPECT_EQ(x[1], 0.0f);
  EXPECT_FLOAT_EQ(x[2], 0.5f);
  EXPECT_EQ(x[3], 0.0f);
}

}  // namespace
}  // namespace tandem
