#include "engine/kernels.h"

#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cmath>

#include "engine/small_batch_kernel.h"
#include "engine/vector_math.h"

namespace tandem {
namespace {

internal::SmallBatchFn PickSmallBatchKernel() {
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f")) return internal::SmallBatchAvx512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
    return internal::SmallBatchAvx2;
  }
  return internal::SmallBatchPortable;
}

const internal::SmallBatchFn kSmallBatch = PickSmallBatchKernel();

// Weight rows the small-batch kernel handles as a unit, and so the grain of
// its split among threads.
constexpr int kRowsPerGroup = 4;

void AddBias(const float* bias, int m, int n, float* y, int ldy) {
  for (int i = 0; i < m; ++i) {
    float* yi = y + static_cast<long>(i) * ldy;
    for (int j = 0; j < n; ++j) yi[j] += bias[j];
  }
}

}  // namespace

namespace {
// The count given to SetEngineThreads; 0 until it is called.
std::atomic<int> engine_threads{0};
}  // namespace

void SetEngineThreads(int threads) {
  engine_threads.store(threads, std::memory_order_relaxed);
  omp_set_num_threads(threads);
  openblas_set_num_threads(threads);
}

void UseEngineThreads() {
  const int threads = engine_threads.load(std::memory_order_relaxed);
  // OpenBLAS's OpenMP build follows the calling thread's OpenMP count.
  if (threads > 0 && omp_get_max_threads() != threads) {
    omp_set_num_threads(threads);
  }
}

int EngineThreads() { return omp_get_max_threads(); }

void RmsNorm(const float* x, const float* weight, int rows, int dim, float eps,
             float* out) {
#pragma omp parallel for schedule(static) if (rows > 8)
  for (int r = 0; r < rows; ++r) {
    const long offset = static_cast<long>(r) * dim;
    RmsNormRow(x + offset, weight, dim, eps, out + offset);
  }
}

void SiluMul(const float* gate, const float* up, long count, float* out) {
  constexpr long kChunk = 1024;
  const long chunks = (count + kChunk - 1) / kChunk;
#pragma omp parallel for schedule(static) if (count > 16384)
  for (long c = 0; c < chunks; ++c) {
    const long begin = c * kChunk;
    SiluMulRow(gate + begin, up + begin, std::min(kChunk, count - begin),
               out + begin);
  }
}

void AddInPlace(float* x, const float* y, long count) {
  constexpr long kChunk = 16384;
  const long chunks = (count + kChunk - 1) / kChunk;
#pragma omp parallel for schedule(static) if (count > 65536)
  for (long c = 0; c < chunks; ++c) {
    const long begin = c * kChunk;
    AddRow(x + begin, y + begin, std::min(kChunk, count - begin));
  }
}

void LinearGemv(const float* x, const float* w, int k, int n, float* y) {
  cblas_sgemv(CblasRowMajor, CblasNoTrans, n, k, 1.0f, w, k, x, 1, 0.0f, y, 1);
}

void LinearSmallBatch(const float* x, int ldx, const float* w, int m, int k,
                      int n, float* y, int ldy) {
  // One contiguous range of rows per thread: the kernel prefetches each
  // group of rows while computing the one before, so a range only starts
  // cold once.
  const int groups = (n + kRowsPerGroup - 1) / kRowsPerGroup;
#pragma omp parallel
  {
    const long threads = omp_get_num_threads();
    const long t = omp_get_thread_num();
    const int begin = static_cast<int>(groups * t / threads) * kRowsPerGroup;
    const int end = std::min(
        n, static_cast<int>(groups * (t + 1) / threads) * kRowsPerGroup);
    if (begin < end) kSmallBatch(x, ldx, w, m, k, begin, end, y, ldy);
  }
}

void LinearGemm(const float* x, int ldx, const float* w, int m, int k, int n,
                float* y, int ldy) {
  // Row-major y[m, n] = x[m, k] * w[n, k]^T.
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, 1.0f, x, ldx, w,
              k, 0.0f, y, ldy);
}

void Linear(const float* x, int ldx, const float* w, const float* bias, int m,
            int k, int n, float* y, int ldy) {
  if (m == 1) {
    LinearGemv(x, w, k, n, y);
  } else if (m <= kSmallBatchRows) {
    LinearSmallBatch(x, ldx, w, m, k, n, y, ldy);
  } else {
    LinearGemm(x, ldx, w, m, k, n, y, ldy);
  }
  if (bias != nullptr) AddBias(bias, m, n, y, ldy);
}

}  // namespace tandem
