// Writing the safetensors checkpoint format (see engine/safetensors.h for
// the layout). Used by the model tools and by tests that build checkpoints.
//
// The writer lays tensors out contiguously in the order given and pads the
// JSON header with spaces so that the data region starts at a multiple of 8
// bytes, as the format's reference writer does. Pure functions; thread-safe.
#ifndef TANDEM_ENGINE_SAFETENSORS_WRITER_H_
#define TANDEM_ENGINE_SAFETENSORS_WRITER_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/types/span.h"
#include "engine/safetensors.h"

namespace tandem {

// A tensor's name, dtype and shape, as its header entry will state them.
struct SafetensorsEntry {
  std::string name;
  SafetensorsDtype dtype = SafetensorsDtype::kF32;
  std::vector<int64_t> shape;

  // Product of `shape` times the dtype's size. REQUIRES: no overflow.
  uint64_t ByteSize() const;
};

// The first bytes of a file holding `entries` in order: the 8-byte header
// length and the padded JSON header. The data of each entry, ByteSize()
// bytes, must follow in the same order.
std::string EncodeSafetensorsHeader(
    absl::Span<const SafetensorsEntry> entries,
    const std::map<std::string, std::string>& metadata = {});

// One tensor with its data, for files built in memory.
struct SafetensorsTensorBytes {
  SafetensorsEntry entry;
  std::string bytes;  // little-endian; REQUIRES: size == entry.ByteSize()
};

// A whole file: header followed by every tensor's bytes.
std::string EncodeSafetensors(
    absl::Span<const SafetensorsTensorBytes> tensors,
    const std::map<std::string, std::string>& metadata = {});

// Rounds to the nearest representable value, ties to even; NaN stays NaN.
uint16_t FloatToHalf(float value);
uint16_t FloatToBFloat16(float value);

// `values` encoded as little-endian `dtype` bytes, rounded as above.
// REQUIRES: dtype is kF32, kF16 or kBF16.
std::string EncodeFloats(absl::Span<const float> values,
                         SafetensorsDtype dtype);

}  // namespace tandem

#endif  // TANDEM_ENGINE_SAFETENSORS_WRITER_H_
