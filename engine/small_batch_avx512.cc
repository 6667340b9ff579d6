// The small-batch kernel for AVX-512. Compiled with -mavx512f; called only
// on processors that have it.
#include <immintrin.h>

#include <algorithm>

#include "engine/small_batch_kernel.h"

namespace tandem::internal {
namespace {

constexpr int kLanes = 16;

// The four horizontal sums of v[0..3], as one vector: halves are folded
// together first, so four reductions share their shuffles.
__m128 SumFour(const __m512* v) {
  __m256 half[4];
  for (int j = 0; j < 4; ++j) {
    const __m256 high =
        _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v[j]), 1));
    half[j] = _mm256_add_ps(_mm512_castps512_ps256(v[j]), high);
  }
  const __m256 ab = _mm256_hadd_ps(half[0], half[1]);
  const __m256 cd = _mm256_hadd_ps(half[2], half[3]);
  const __m256 abcd = _mm256_hadd_ps(ab, cd);
  return _mm_add_ps(_mm256_castps256_ps128(abcd),
                    _mm256_extractf128_ps(abcd, 1));
}

// Weight rows this tile fetches into L2 while it computes: `rows` rows from
// `first`, `stride` floats apart, over the tile's columns. The weights
// stream from memory, and the hardware alone does not overlap that stream
// with the arithmetic.
struct Prefetch {
  const float* first = nullptr;
  long stride = 0;
  int rows = 0;
};

// One tile: MR rows of x against NR rows of w, over one chunk of k.
// Accumulators stay in registers (MR * NR of the 32 vector registers).
// Between the chunks of k they stay vectors, in `carry` ([MR][NR]): they
// start from it unless `first` and are reduced into y only if `last`.
template <int MR, int NR>
void Tile(const float* x, int ldx, const float* w, int ldw, int k, float* y,
          int ldy, __m512* carry, bool first, bool last, Prefetch prefetch) {
  __m512 acc[MR][NR];
  for (int i = 0; i < MR; ++i) {
    for (int j = 0; j < NR; ++j) {
      acc[i][j] = first ? _mm512_setzero_ps() : carry[i * NR + j];
    }
  }
  int kk = 0;
  for (; kk + kLanes <= k; kk += kLanes) {
    for (int r = 0; r < prefetch.rows; ++r) {
      _mm_prefetch(reinterpret_cast<const char*>(prefetch.first +
                                                 r * prefetch.stride + kk),
                   _MM_HINT_T1);
    }
    __m512 wv[NR];
    for (int j = 0; j < NR; ++j) {
      wv[j] = _mm512_loadu_ps(w + static_cast<long>(j) * ldw + kk);
    }
    for (int i = 0; i < MR; ++i) {
      const __m512 xv = _mm512_loadu_ps(x + static_cast<long>(i) * ldx + kk);
      for (int j = 0; j < NR; ++j) {
        acc[i][j] = _mm512_fmadd_ps(xv, wv[j], acc[i][j]);
      }
    }
  }
  if (kk < k) {
    const __mmask16 mask = static_cast<__mmask16>((1u << (k - kk)) - 1);
    __m512 wv[NR];
    for (int j = 0; j < NR; ++j) {
      wv[j] = _mm512_maskz_loadu_ps(mask, w + static_cast<long>(j) * ldw + kk);
    }
    for (int i = 0; i < MR; ++i) {
      const __m512 xv =
          _mm512_maskz_loadu_ps(mask, x + static_cast<long>(i) * ldx + kk);
      for (int j = 0; j < NR; ++j) {
        acc[i][j] = _mm512_fmadd_ps(xv, wv[j], acc[i][j]);
      }
    }
  }
  if (!last) {
    for (int i = 0; i < MR; ++i) {
      for (int j = 0; j < NR; ++j) carry[i * NR + j] = acc[i][j];
    }
    return;
  }
  for (int i = 0; i < MR; ++i) {
    float* yi = y + static_cast<long>(i) * ldy;
    if constexpr (NR == 4) {
      _mm_storeu_ps(yi, SumFour(acc[i]));
    } else {
      for (int j = 0; j < NR; ++j) yi[j] = _mm512_reduce_add_ps(acc[i][j]);
    }
  }
}

// Columns of k handled per pass, so that a chunk of NR weight rows and of
// the rows of x stays in cache while the tiles reuse it. Measured on a
// streamed 125M-parameter model: 1024 beats 512 and 256, as each chunk
// boundary costs a round trip of the accumulators through memory.
constexpr int kChunk = 1024;

// The share of the next kRows weight rows (`next`, or null) that tile
// `tile` of `tiles` prefetches: spread over the tiles, so that one line is
// requested per step of the inner loop rather than all of them at once,
// which would stall on the processor's few outstanding misses.
constexpr int kRows = 4;
Prefetch ShareOf(const float* next, int k, int tile, int tiles) {
  Prefetch share;
  if (next == nullptr || tile >= kRows) return share;
  const int step = std::min(tiles, kRows);
  share.first = next + static_cast<long>(tile) * k;
  share.stride = static_cast<long>(step) * k;
  share.rows = (kRows - tile + step - 1) / step;
  return share;
}

// Rows of x per call of Columns: its carried sums live on the stack.
constexpr int kMaxRows = 32;

// `next`: the kRows weight rows to prefetch meanwhile, or null.
// REQUIRES: m <= kMaxRows.
template <int NR>
void Columns(const float* x, int ldx, const float* w, int m, int k, float* y,
             int ldy, const float* next) {
  const int tiles = m / 4;
  __m512 carry[kMaxRows * NR];
  for (int k0 = 0; k0 < k; k0 += kChunk) {
    const int len = std::min(kChunk, k - k0);
    const bool first = k0 == 0;
    const bool last = k0 + len == k;
    const float* wk = w + k0;
    const float* next_k0 = next != nullptr ? next + k0 : nullptr;
    int i = 0;
    for (; i + 4 <= m; i += 4) {
      Tile<4, NR>(x + static_cast<long>(i) * ldx + k0, ldx, wk, k, len,
                  y + static_cast<long>(i) * ldy, ldy, carry + i * NR, first,
                  last, ShareOf(next_k0, k, i / 4, tiles));
    }
    const float* xi = x + static_cast<long>(i) * ldx + k0;
    float* yi = y + static_cast<long>(i) * ldy;
    // With fewer than four rows of x there is no full tile to prefetch in.
    const Prefetch rest = tiles == 0 ? ShareOf(next_k0, k, 0, 1) : Prefetch{};
    switch (m - i) {
      case 3:
        Tile<3, NR>(xi, ldx, wk, k, len, yi, ldy, carry + i * NR, first, last,
                    rest);
        break;
      case 2:
        Tile<2, NR>(xi, ldx, wk, k, len, yi, ldy, carry + i * NR, first, last,
                    rest);
        break;
      case 1:
        Tile<1, NR>(xi, ldx, wk, k, len, yi, ldy, carry + i * NR, first, last,
                    rest);
        break;
      default:
        break;
    }
  }
}

}  // namespace

void SmallBatchAvx512(const float* x, int ldx, const float* w, int m, int k,
                      int n_begin, int n_end, float* y, int ldy) {
  // More rows than one call of Columns holds run as several batches.
  for (int i = 0; i < m; i += kMaxRows) {
    const int rows = std::min(kMaxRows, m - i);
    const float* xi = x + static_cast<long>(i) * ldx;
    float* yi = y + static_cast<long>(i) * ldy;
    int j = n_begin;
    // Four weight rows at a time: each weight row is read from memory once
    // and reused from cache for every row of x.
    for (; j + kRows <= n_end; j += kRows) {
      const float* next = j + 2 * kRows <= n_end
                              ? w + static_cast<long>(j + kRows) * k
                              : nullptr;
      Columns<4>(xi, ldx, w + static_cast<long>(j) * k, rows, k, yi + j, ldy,
                 next);
    }
    for (; j < n_end; ++j) {
      Columns<1>(xi, ldx, w + static_cast<long>(j) * k, rows, k, yi + j, ldy,
                 nullptr);
    }
  }
}

}  // namespace tandem::internal
