#include "engine/vector_math.h"

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

}  // namespace
}  // namespace tandem
