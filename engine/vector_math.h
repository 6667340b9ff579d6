// Element-wise exponentials and the softmax of the forward pass, in a form
// the compiler vectorises. The exponential is a range reduction to
// |r| <= ln(2)/2 and a degree-7 polynomial, accurate to a few units in the
// last place for inputs in [-87, 88]; smaller inputs give 0 and larger ones
// +inf.
#ifndef TANDEM_ENGINE_VECTOR_MATH_H_
#define TANDEM_ENGINE_VECTOR_MATH_H_

namespace tandem {

// x[i] = exp(x[i]) for i < n. NaN stays NaN.
void ExpInPlace(float* x, long n);

// x[0 .. n) = softmax(x[0 .. n)), with the maximum subtracted first so that
// no exponential overflows. REQUIRES: n >= 1.
void SoftmaxInPlace(float* x, long n);

}  // namespace tandem

#endif  // TANDEM_ENGINE_VECTOR_MATH_H_
