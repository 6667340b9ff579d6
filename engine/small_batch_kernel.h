// Register-blocked kernels for y = x w^T with few rows of x, reading the
// weights in place (no packing), one per instruction set. Internal to
// kernels.cc, which picks one at run time.
#ifndef TANDEM_ENGINE_SMALL_BATCH_KERNEL_H_
#define TANDEM_ENGINE_SMALL_BATCH_KERNEL_H_

namespace tandem::internal {

// Computes y[i, j] = sum_k x[i, k] * w[j, k] for i < m and
// n_begin <= j < n_end. x: [m, k] with row stride ldx; w: [n, k] row-major;
// y: [m, n] with row stride ldy.
using SmallBatchFn = void (*)(const float* x, int ldx, const float* w, int m,
                              int k, int n_begin, int n_end, float* y, int ldy);

void SmallBatchAvx512(const float* x, int ldx, const float* w, int m, int k,
                      int n_begin, int n_end, float* y, int ldy);
void SmallBatchAvx2(const float* x, int ldx, const float* w, int m, int k,
                    int n_begin, int n_end, float* y, int ldy);
void SmallBatchPortable(const float* x, int ldx, const float* w, int m, int k,
                        int n_begin, int n_end, float* y, int ldy);

}  // namespace tandem::internal

#endif  // TANDEM_ENGINE_SMALL_BATCH_KERNEL_H_
