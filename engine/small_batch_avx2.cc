// The small-batch kernel for AVX2 and FMA. Compiled with -mavx2 -mfma; called
// only on processors that have it.
#include <immintrin.h>

#include <algorithm>

#include "engine/small_batch_kernel.h"

namespace tandem::internal {
namespace {

constexpr int kLanes = 8;

float HorizontalSum(__m256 v) {
  const __m128 lo = _mm256_castps256_ps128(v);
  const __m128 hi = _mm256_extractf128_ps(v, 1);
  __m128 sum = _mm_add_ps(lo, hi);
  sum = _mm_add_ps(sum, _mm_movehl_ps(sum, sum));
  sum = _mm_add_ss(sum, _mm_movehdup_ps(sum));
  return _mm_cvtss_f32(sum);
}

// One tile: MR rows of x against NR rows of w, over all of k. Accumulators
// stay in registers (MR * NR of the 16 vector registers).
template <int MR, int NR>
void Tile(const float* x, int ldx, const float* w, int k, float* y, int ldy) {
  __m256 acc[MR][NR];
  for (int i = 0; i < MR; ++i) {
    for (int j = 0; j < NR; ++j) acc[i][j] = _mm256_setzero_ps();
  }
  int kk = 0;
  for (; kk + kLanes <= k; kk += kLanes) {
    __m256 wv[NR];
    for (int j = 0; j < NR; ++j) {
      wv[j] = _mm256_loadu_ps(w + static_cast<long>(j) * k + kk);
    }
    for (int i = 0; i < MR; ++i) {
      const __m256 xv = _mm256_loadu_ps(x + static_cast<long>(i) * ldx + kk);
      for (int j = 0; j < NR; ++j) {
        acc[i][j] = _mm256_fmadd_ps(xv, wv[j], acc[i][j]);
      }
    }
  }
  for (int i = 0; i < MR; ++i) {
    for (int j = 0; j < NR; ++j) {
      // The tail of k that does not fill a vector is summed in scalar.
      float sum = HorizontalSum(acc[i][j]);
      for (int t = kk; t < k; ++t) {
        sum +=
            x[static_cast<long>(i) * ldx + t] * w[static_cast<long>(j) * k + t];
      }
      y[static_cast<long>(i) * ldy + j] = sum;
    }
  }
}

template <int NR>
void Columns(const float* x, int ldx, const float* w, int m, int k, float* y,
             int ldy) {
  int i = 0;
  for (; i + 4 <= m; i += 4) {
    Tile<4, NR>(x + static_cast<long>(i) * ldx, ldx, w, k,
                y + static_cast<long>(i) * ldy, ldy);
  }
  const float* xi = x + static_cast<long>(i) * ldx;
  float* yi = y + static_cast<long>(i) * ldy;
  switch (m - i) {
    case 3:
      Tile<3, NR>(xi, ldx, w, k, yi, ldy);
      break;
    case 2:
      Tile<2, NR>(xi, ldx, w, k, yi, ldy);
      break;
    case 1:
      Tile<1, NR>(xi, ldx, w, k, yi, ldy);
      break;
    default:
      break;
  }
}

}  // namespace

void SmallBatchAvx2(const float* x, int ldx, const float* w, int m, int k,
                    int n_begin, int n_end, float* y, int ldy) {
  int j = n_begin;
  // Two weight rows at a time (16 registers hold 4 x 2 accumulators plus
  // operands): each weight row is read from memory once and reused from
  // cache for every row of x.
  for (; j + 2 <= n_end; j += 2) {
    Columns<2>(x, ldx, w + static_cast<long>(j) * k, m, k, y + j, ldy);
  }
  for (; j < n_end; ++j) {
    Columns<1>(x, ldx, w + static_cast<long>(j) * k, m, k, y + j, ldy);
  }
}

}  // namespace tandem::internal
