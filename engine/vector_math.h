// The element-wise arithmetic of the forward pass, in a form the compiler
// vectorises, each compiled for AVX-512, AVX2 and the baseline. The exponential
// is a range reduction to |r| <= ln(2)/2 and a degree-7 polynomial, accurate to
// a few units in the last place for inputs in [-87, 88]; smaller inputs give 0
// and larger ones +inf.
#ifndef TANDEM_ENGINE_VECTOR_MATH_H_
#define TANDEM_ENGINE_VECTOR_MATH_H_

namespace tandem {

// x[i] = exp(x[i]) for i < n. NaN stays NaN.
void ExpInPlace(float* x, long n);

// x[0 .. n) = softmax(x[0 .. n)), with the maximum subtracted first so that
// no exponential overflows. REQUIRES: n >= 1.
void SoftmaxInPlace(float* x, long n);

// One row of the normalisation, activation and residual kernels of
// kernels.h, which split their rows among threads and call these.
//
// out = x / sqrt(mean(x^2) + eps) * weight, over dim values. `out` may
// alias `x`.
void RmsNormRow(const float* x, const float* weight, int dim, float eps,
                float* out);
// out[i] = silu(gate[i]) * up[i] for i < n. `out` may alias either input.
void SiluMulRow(const float* gate, const float* up, long n, float* out);
// x[i] += y[i] for i < n.
void AddRow(float* x, const float* y, long n);

}  // namespace tandem

#endif  // TANDEM_ENGINE_VECTOR_MATH_H_
