// The block attention kernels for AVX-512. Compiled with -mavx512f; called
// only on processors that have it.
#include <immintrin.h>

#include "engine/attention_block.h"

namespace tandem::internal {
namespace {

constexpr int kLanes = 16;

// Sixteen horizontal sums at once: returns r with r[i] = sum of the lanes
// of v[i]. Four rounds each halve the vectors in flight, adding lanes that
// a shuffle has lined up; the rounds leave vector L's sum in lane
// kSumLane[L], so the caller stores its inputs in that order.
__m512 SumSixteen(__m512 v[kLanes]) {
  __m512 a[8];
  for (int i = 0; i < 8; ++i) {  // 256-bit halves
    a[i] = _mm512_add_ps(_mm512_shuffle_f32x4(v[2 * i], v[2 * i + 1], 0x44),
                         _mm512_shuffle_f32x4(v[2 * i], v[2 * i + 1], 0xEE));
  }
  __m512 b[4];
  for (int i = 0; i < 4; ++i) {  // 128-bit quarters
    b[i] = _mm512_add_ps(_mm512_shuffle_f32x4(a[2 * i], a[2 * i + 1], 0x88),
                         _mm512_shuffle_f32x4(a[2 * i], a[2 * i + 1], 0xDD));
  }
  __m512 c[2];
  for (int i = 0; i < 2; ++i) {  // pairs within a quarter
    c[i] = _mm512_add_ps(_mm512_shuffle_ps(b[2 * i], b[2 * i + 1], 0x44),
                         _mm512_shuffle_ps(b[2 * i], b[2 * i + 1], 0xEE));
  }
  return _mm512_add_ps(_mm512_shuffle_ps(c[0], c[1], 0x88),
                       _mm512_shuffle_ps(c[0], c[1], 0xDD));
}

// SumSixteen leaves the sum of input vector L in lane kSumLane[L] (a 4 x 4
// transpose, so it is its own inverse): token t goes to input kSumLane[t].
constexpr int kSumLane[kLanes] = {0, 4, 8,  12, 1, 5, 9,  13,
                                  2, 6, 10, 14, 3, 7, 11, 15};

}  // namespace

bool HasBlockAttentionAvx512() { return __builtin_cpu_supports("avx512f"); }

void BlockScoresAvx512(const float* q, int group, int head_dim, const float* k,
                       int n, float scale, float* scores, int ld_scores) {
  const __m512 scale_v = _mm512_set1_ps(scale);
  for (int t0 = 0; t0 < n; t0 += kLanes) {
    const int count = n - t0 < kLanes ? n - t0 : kLanes;
    const __mmask16 mask = static_cast<__mmask16>((1u << count) - 1);
    for (int h = 0; h < group; ++h) {
      const float* qh = q + static_cast<long>(h) * head_dim;
      __m512 partial[kLanes];
      for (int t = 0; t < kLanes; ++t) {
        __m512 acc = _mm512_setzero_ps();
        if (t < count) {
          const float* kt = k + static_cast<long>(t0 + t) * head_dim;
          for (int d = 0; d < head_dim; d += kLanes) {
            acc = _mm512_fmadd_ps(_mm512_loadu_ps(qh + d),
                                  _mm512_loadu_ps(kt + d), acc);
          }
        }
        partial[kSumLane[t]] = acc;
      }
      const __m512 sums = _mm512_mul_ps(SumSixteen(partial), scale_v);
      _mm512_mask_storeu_ps(scores + static_cast<long>(h) * ld_scores + t0,
                            mask, sums);
    }
  }
}

void BlockMixAvx512(const float* p, int ld_p, int group, const float* v, int n,
                    int head_dim, float* out) {
  constexpr int kMaxChunks = 256 / kLanes;
  const int chunks = head_dim / kLanes;
  for (int h = 0; h < group; ++h) {
    float* oh = out + static_cast<long>(h) * head_dim;
    const float* ph = p + static_cast<long>(h) * ld_p;
    __m512 acc[kMaxChunks];
    for (int c = 0; c < chunks; ++c) acc[c] = _mm512_loadu_ps(oh + c * kLanes);
    for (int t = 0; t < n; ++t) {
      const __m512 weight = _mm512_set1_ps(ph[t]);
      const float* vt = v + static_cast<long>(t) * head_dim;
      for (int c = 0; c < chunks; ++c) {
        acc[c] =
            _mm512_fmadd_ps(weight, _mm512_loadu_ps(vt + c * kLanes), acc[c]);
      }
    }
    for (int c = 0; c < chunks; ++c) _mm512_storeu_ps(oh + c * kLanes, acc[c]);
  }
}

}  // namespace tandem::internal
