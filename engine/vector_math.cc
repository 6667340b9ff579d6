#include "engine/vector_math.h"

#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>

namespace tandem {

__attribute__((target_clones("avx512f", "avx2", "default"))) void ExpInPlace(
    float* x, long n) {
  constexpr float kLog2e = 1.44269504088896341f;
  // ln(2) split so that k * kLn2High is exact for the k that occur.
  constexpr float kLn2High = 0.693359375f;
  constexpr float kLn2Low = -2.12194440e-4f;
  constexpr float kMax = 88.3762626647949f;
  constexpr float kMin = -87.3365447504f;
  constexpr float kRound = 12582912.0f;
#pragma omp simd
  for (long i = 0; i < n; ++i) {
    const float v = x[i];
    float clamped = v < kMin ? kMin : v;
    clamped = clamped > kMax ? kMax : clamped;
    // Round to the nearest integer: adding 1.5 * 2^23 pushes the fraction
    // out of the mantissa.
    const float k = (clamped * kLog2e + kRound) - kRound;
    const float r = (clamped - k * kLn2High) - k * kLn2Low;
    // exp(r) by its Taylor series to r^7, in Horner form.
    float p = 1.0f / 5040.0f;
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    // Scale by 2^k through the exponent bits; k is in [-126, 127] here.
    const int32_t bits = (static_cast<int32_t>(k) + 127) << 23;
    float result = p * std::bit_cast<float>(bits);
    result = v < kMin ? 0.0f : result;
    result = v > kMax ? INFINITY : result;
    x[i] = v != v ? v : result;
  }
}

// The reductions are `omp simd` reductions, which let the compiler keep one
// running maximum and sum per lane.
__attribute__((target_clones("avx512f", "avx2", "default"))) void
SoftmaxInPlace(float* x, long n) {
  float max_value = -std::numeric_limits<float>::infinity();
#pragma omp simd reduction(max : max_value)
  for (long i = 0; i < n; ++i) max_value = x[i] > max_value ? x[i] : max_value;
#pragma omp simd
  for (long i = 0; i < n; ++i) x[i] -= max_value;
  ExpInPlace(x, n);
  float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
  for (long i = 0; i < n; ++i) sum += x[i];
  const float inv = 1.0f / sum;
#pragma omp simd
  for (long i = 0; i < n; ++i) x[i] *= inv;
}

__attribute__((target_clones("avx512f", "avx2", "default"))) void RmsNormRow(
    const float* x, const float* weight, int dim, float eps, float* out) {
  double sum_sq = 0.0;
#pragma omp simd reduction(+ : sum_sq)
  for (int i = 0; i < dim; ++i) sum_sq += static_cast<double>(x[i]) * x[i];
  const float scale = static_cast<float>(1.0 / std::sqrt(sum_sq / dim + eps));
#pragma omp simd
  for (int i = 0; i < dim; ++i) out[i] = x[i] * scale * weight[i];
}

__attribute__((target_clones("avx512f", "avx2", "default"))) void SiluMulRow(
    const float* gate, const float* up, long n, float* out) {
  // In chunks that stay in L1: e = exp(-gate), then out = gate / (1 + e) * up.
  constexpr long kChunk = 1024;
  float e[kChunk];
  for (long begin = 0; begin < n; begin += kChunk) {
    const long len = n - begin < kChunk ? n - begin : kChunk;
#pragma omp simd
    for (long i = 0; i < len; ++i) e[i] = -gate[begin + i];
    ExpInPlace(e, len);
#pragma omp simd
    for (long i = 0; i < len; ++i) {
      out[begin + i] = gate[begin + i] / (1.0f + e[i]) * up[begin + i];
    }
  }
}

__attribute__((target_clones("avx512f", "avx2", "default"))) void AddRow(
    float* x, const float* y, long n) {
#pragma omp simd
  for (long i = 0; i < n; ++i) x[i] += y[i];
}

}  // namespace tandem
