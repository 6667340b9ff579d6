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

double MeasureReadBandwidth(size_t bytes, int repetitions) {
  const size_t count = bytes / sizeof(float);
  std::unique_ptr<float[]> data(new float[count]);
  // Touch every page from the threads that will read it.
#pragma omp parallel for schedule(static)
  for (size_t i = 0; i < count; ++i) data[i] = static_cast<float>(i & 7);
  double best = 1e30;
  volatile float sink = 0.0f;
  for (int r = 0; r < repetitions; ++r) {
    const double start = NowSeconds();
    float total = 0.0f;
#pragma omp parallel for simd schedule(static) reduction(+ : total)
    for (size_t i = 0; i < count; ++i) total += data[i];
    best = std::min(best, NowSeconds() - start);
    sink = sink + total;
  }
  return static_cast<double>(count * sizeof(float)) / best / 1e9;
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
