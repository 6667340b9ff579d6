// Numeric kernels of the forward pass: normalisation, activations and the
// matrix products, on row-major F32 buffers.
//
// Layout convention: an activation buffer of `rows` tokens is [rows, dim]
// row-major; a weight matrix of a linear layer is [out, in] row-major (Hugging
// Face's orientation), so a layer computes y[m, n] = sum_k x[m, k] w[n, k].
//
// Threading: every kernel here runs on the engine's one OpenMP pool (shared
// with OpenBLAS). Call them from outside a parallel region to use all
// threads; from inside one they run on the calling thread.
#ifndef TANDEM_ENGINE_KERNELS_H_
#define TANDEM_ENGINE_KERNELS_H_

namespace tandem {

// Sets the size of the engine's thread pool (OpenMP and OpenBLAS alike),
// for the calling thread and for every thread that calls UseEngineThreads
// afterwards. REQUIRES: threads >= 1.
void SetEngineThreads(int threads);
// Makes the calling thread run parallel work on the count last given to
// SetEngineThreads, if any. OpenMP keeps that count per thread: without
// this, a thread other than the one that set it (a server's scheduler
// thread) would use one thread per core. Model's entry points call it;
// it costs a load and a compare when nothing changes.
void UseEngineThreads();
int EngineThreads();

// out[r, :] = x[r, :] / sqrt(mean(x[r, :]^2) + eps) * weight[:].
// x, out: [rows, dim]; weight: [dim]. `out` may alias `x`.
void RmsNorm(const float* x, const float* weight, int rows, int dim, float eps,
             float* out);

// out[i] = silu(gate[i]) * up[i] for i < count. `out` may alias either input.
void SiluMul(const float* gate, const float* up, long count, float* out);

// x[i] += y[i] for i < count.
void AddInPlace(float* x, const float* y, long count);

// y[m, n] = sum_k x[m, k] * w[n, k] (+ bias[n]).
// x: [m, k] with row stride ldx; w: [n, k] row-major; bias: [n] or null;
// y: [m, n] with row stride ldy. Picks the kernel by m: a matrix-vector
// product for one row, a register-blocked kernel that reads the weights in
// place for small batches, and OpenBLAS sgemm for many rows.
void Linear(const float* x, int ldx, const float* w, const float* bias, int m,
            int k, int n, float* y, int ldy);

// The rows up to which Linear uses the small-batch kernel.
inline constexpr int kSmallBatchRows = 32;

// Kernels Linear chooses between, exposed for tests and benchmarks.
void LinearGemv(const float* x, const float* w, int k, int n, float* y);
void LinearSmallBatch(const float* x, int ldx, const float* w, int m, int k,
                      int n, float* y, int ldy);
void LinearGemm(const float* x, int ldx, const float* w, int m, int k, int n,
                float* y, int ldy);

}  // namespace tandem

#endif  // TANDEM_ENGINE_KERNELS_H_
