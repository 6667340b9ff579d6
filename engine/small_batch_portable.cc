// The small-batch kernel in plain C++, for processors without AVX2.
#include "engine/small_batch_kernel.h"

namespace tandem::internal {

void SmallBatchPortable(const float* x, int ldx, const float* w, int m, int k,
                        int n_begin, int n_end, float* y, int ldy) {
  for (int j = n_begin; j < n_end; ++j) {
    const float* wj = w + static_cast<long>(j) * k;
    for (int i = 0; i < m; ++i) {
      const float* xi = x + static_cast<long>(i) * ldx;
      float sum = 0.0f;
      for (int t = 0; t < k; ++t) sum += xi[t] * wj[t];
      y[static_cast<long>(i) * ldy + j] = sum;
    }
  }
}

}  // namespace tandem::internal
