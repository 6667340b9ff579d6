#include "engine/rope.h"

#include <cmath>
#include <numbers>

namespace tandem {
namespace {

// Llama 3's rescaling: long wavelengths are slowed down by `factor`, short
// ones are kept, and the band between is interpolated smoothly.
double ScaleLlama3(double freq, const RopeScaling& s) {
  const double old_context = s.original_max_position_embeddings;
  const double low_freq_wavelen = old_context / s.low_freq_factor;
  const double high_freq_wavelen = old_context / s.high_freq_factor;
  const double wavelen = 2.0 * std::numbers::pi / freq;
  if (wavelen < high_freq_wavelen) return freq;
  if (wavelen > low_freq_wavelen) return freq / s.factor;
  const double smooth = (old_context / wavelen - s.low_freq_factor) /
                        (s.high_freq_factor - s.low_freq_factor);
  return (1.0 - smooth) * freq / s.factor + smooth * freq;
}

}  // namespace

Rope::Rope(const ModelConfig& config) {
  const int half = config.head_dim / 2;
  inv_freq_.resize(half);
  for (int i = 0; i < half; ++i) {
    double freq = 1.0 / std::pow(static_cast<double>(config.rope_theta),
                                 2.0 * i / config.head_dim);
    switch (config.rope_scaling.type) {
      case RopeScaling::Type::kNone:
        break;
      case RopeScaling::Type::kLinear:
        freq /= config.rope_scaling.factor;
        break;
      case RopeScaling::Type::kLlama3:
        freq = ScaleLlama3(freq, config.rope_scaling);
        break;
    }
    inv_freq_[i] = freq;
  }
}

void Rope::Tables(absl::Span<const int> positions, float* cos,
                  float* sin) const {
  const int half = half_dim();
  for (size_t r = 0; r < positions.size(); ++r) {
    for (int i = 0; i < half; ++i) {
      const double angle = positions[r] * inv_freq_[i];
      cos[r * half + i] = static_cast<float>(std::cos(angle));
      sin[r * half + i] = static_cast<float>(std::sin(angle));
    }
  }
}

void Rope::Apply(float* x, int rows, int ld, int num_heads, const float* cos,
                 const float* sin) const {
  const int half = half_dim();
  const int head_dim = 2 * half;
#pragma omp parallel for schedule(static) if (rows > 16)
  for (int r = 0; r < rows; ++r) {
    const float* c = cos + static_cast<long>(r) * half;
    const float* s = sin + static_cast<long>(r) * half;
    for (int h = 0; h < num_heads; ++h) {
      float* v = x + static_cast<long>(r) * ld + h * head_dim;
      for (int i = 0; i < half; ++i) {
        const float a = v[i];
        const float b = v[i + half];
        v[i] = a * c[i] - b * s[i];
        v[i + half] = b * c[i] + a * s[i];
      }
    }
  }
}

}  // namespace tandem
