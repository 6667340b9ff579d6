// Measurements of the machine's own limits, taken in the same run as a
// benchmark so that its figures can be reported as fractions of them.
#ifndef TANDEM_BENCH_MACHINE_LIMITS_H_
#define TANDEM_BENCH_MACHINE_LIMITS_H_

#include <cstddef>

namespace tandem::bench {

// Best OpenBLAS sgemm rate, in GFLOP/s, for y[m, n] = x[m, k] w[n, k]^T (the
// orientation of a linear layer over m tokens) on the engine's threads.
double MeasureSgemmGflops(int m, int k, int n, int repetitions);

// Best main-memory read bandwidth, in GB/s (1e9 bytes), summing a buffer of
// `bytes` (several GiB, so that caches do not flatter it) on all threads.
double MeasureReadBandwidth(size_t bytes, int repetitions);

// Best single-threaded memcpy bandwidth, in GB/s of bytes copied, for
// copies of `block_bytes` from a working set of `total_bytes`.
double MeasureMemcpyBandwidth(size_t block_bytes, size_t total_bytes,
                              int repetitions);

// Seconds on a monotonic clock.
double NowSeconds();

}  // namespace tandem::bench

#endif  // TANDEM_BENCH_MACHINE_LIMITS_H_
