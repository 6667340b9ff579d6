// Rotary position embeddings in Hugging Face's rotate-half convention, with
// the linear and Llama 3 frequency scalings.
//
// For a head vector x of even size d and position p, with
// angle_i = p * inv_freq_i (i < d/2):
//   x'[i]       = x[i] * cos(angle_i) - x[i + d/2] * sin(angle_i)
//   x'[i + d/2] = x[i + d/2] * cos(angle_i) + x[i] * sin(angle_i)
#ifndef TANDEM_ENGINE_ROPE_H_
#define TANDEM_ENGINE_ROPE_H_

#include <vector>

#include "absl/types/span.h"
#include "engine/model_config.h"

namespace tandem {

class Rope {
 public:
  // REQUIRES: config.head_dim is even and positive.
  explicit Rope(const ModelConfig& config);

  int half_dim() const { return static_cast<int>(inv_freq_.size()); }
  const std::vector<double>& inv_freq() const { return inv_freq_; }

  // Fills cos and sin, each [positions.size(), half_dim()], for the given
  // positions. Angles are computed in double so long contexts keep precision.
  void Tables(absl::Span<const int> positions, float* cos, float* sin) const;

  // Rotates x in place: [rows, num_heads, 2 * half_dim()] with row stride
  // `ld` floats, row r using the tables' row r.
  void Apply(float* x, int rows, int ld, int num_heads, const float* cos,
             const float* sin) const;

 private:
  std::vector<double> inv_freq_;  // [half_dim]
};

}  // namespace tandem

#endif  // TANDEM_ENGINE_ROPE_H_
