#include "bench/machine_limits.h"

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "engine/kernels.h"

namespace tandem::bench {

double NowSeconds() {
  return std::chrono::duration<double>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

double MeasureSgemmGflops(int m, int k, int n, int repetitions) {
  std::vector<float> x(static_cast<size_t>(m) * k, 0.5f);
  std::vector<float> w(static_cast<size_t>(n) * k, 0.25f);
  std::vector<float> y(static_cast<size_t>(m) * n);
  LinearGemm(x.data(), k, w.data(), m, k, n, y.data(), n);  // warm up
  double best = 1e30;
  for (int r = 0; r < repetitions; ++r) {
    const double start = NowSeconds();
    LinearGemm(x.data(), k, w.data(), m, k, n, y.data(), n);
    best = std::min(best, NowSeconds() - start);
  }
  return 2.0 * m * k * n / best / 1e9;
}

namespace {

// Sixteen lanes of floats (one cache line); eight of them as independent
// accumulators keep the loads, not the adds, the limit. Compiled for the
// widest vectors the processor has: with 16-byte loads this loop read only
// about three quarters of what the memory delivers.
typedef float Lanes __attribute__((vector_size(64)));
constexpr int kAccumulators = 8;

__attribute__((target_clones("avx512f", "avx2", "default"))) float SumRange(
    const Lanes* data, size_t count) {
  Lanes acc[kAccumulators] = {};
  size_t i = 0;
  for (; i + kAccumulators <= count; i += kAccumulators) {
    for (int a = 0; a < kAccumulators; ++a) acc[a] += data[i + a];
  }
  for (; i < count; ++i) acc[0] += data[i];
  Lanes total = {};
  for (int a = 0; a < kAccumulators; ++a) total += acc[a];
  float sum = 0.0f;
  for (int lane = 0; lane < 16; ++lane) sum += total[lane];
  return sum;
}

}  // namespace

double MeasureReadBandwidth(size_t bytes, int repetitions) {
  const size_t count = bytes / sizeof(Lanes);
  std::unique_ptr<Lanes[]> data(new Lanes[count]);
  // Touch every page from the threads that will read it.
#pragma omp parallel for schedule(static)
  for (size_t i = 0; i < count; ++i) data[i] = Lanes{} + 1.0f;
  double best = 1e30;
  volatile float sink = 0.0f;
  for (int r = 0; r < repetitions; ++r) {
    const double start = NowSeconds();
    float total = 0.0f;
#pragma omp parallel reduction(+ : total)
    {
      const size_t threads = omp_get_num_threads();
      const size_t me = omp_get_thread_num();
      const size_t begin = count * me / threads;
      const size_t end = count * (me + 1) / threads;
      total += SumRange(data.get() + begin, end - begin);
    }
    best = std::min(best, NowSeconds() - start);
    sink = sink + total;
  }
  return static_cast<double>(count * sizeof(Lanes)) / best / 1e9;
}

double MeasureMemcpyBandwidth(size_t block_bytes, size_t total_bytes,
                              int repetitions) {
  const size_t blocks = std::max<size_t>(1, total_bytes / block_bytes);
  std::vector<char> src(blocks * block_bytes, 1);
  std::vector<char> dst(blocks * block_bytes, 0);
  double best = 1e30;
  for (int r = 0; r < repetitions; ++r) {
    const double start = NowSeconds();
    for (size_t b = 0; b < blocks; ++b) {
      std::memcpy(dst.data() + b * block_bytes, src.data() + b * block_bytes,
                  block_bytes);
    }
    best = std::min(best, NowSeconds() - start);
  }
  return static_cast<double>(blocks * block_bytes) / best / 1e9;
}

}  // namespace tandem::bench
