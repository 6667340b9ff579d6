#include "engine/safetensors_writer.h"

#include <cstring>

#include "nlohmann/json.hpp"

namespace tandem {
namespace {

uint32_t FloatBits(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, sizeof(bits));
  return bits;
}

void AppendLittleEndian(std::string& out, uint64_t value, int bytes) {
  for (int i = 0; i < bytes; ++i) {
    out.push_back(static_cast<char>((value >> (8 * i)) & 0xff));
  }
}

// Shifts `value` right by `shift` bits, rounding to nearest, ties to even.
// REQUIRES: 0 < shift < 32.
uint32_t ShiftRoundEven(uint32_t value, int shift) {
  const uint32_t kept = value >> shift;
  const uint32_t rest = value & ((1u << shift) - 1);
  const uint32_t half = 1u << (shift - 1);
  return kept + ((rest > half || (rest == half && (kept & 1))) ? 1 : 0);
}

}  // namespace

uint64_t SafetensorsEntry::ByteSize() const {
  uint64_t n = SafetensorsDtypeSize(dtype);
  for (int64_t dim : shape) n *= static_cast<uint64_t>(dim);
  return n;
}

std::string EncodeSafetensorsHeader(
    absl::Span<const SafetensorsEntry> entries,
    const std::map<std::string, std::string>& metadata) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (const SafetensorsEntry& e : entries) {
    const uint64_t end = offset + e.ByteSize();
    header[e.name] = {
        {"dtype", std::string(SafetensorsDtypeName(e.dtype))},
        {"shape", e.shape},
        {"data_offsets", {offset, end}},
    };
    offset = end;
  }
  std::string json = header.dump();
  while ((8 + json.size()) % 8 != 0) json.push_back(' ');
  std::string out;
  AppendLittleEndian(out, json.size(), 8);
  return out + json;
}

std::string EncodeSafetensors(
    absl::Span<const SafetensorsTensorBytes> tensors,
    const std::map<std::string, std::string>& metadata) {
  std::vector<SafetensorsEntry> entries;
  for (const SafetensorsTensorBytes& t : tensors) entries.push_back(t.entry);
  std::string out = EncodeSafetensorsHeader(entries, metadata);
  for (const SafetensorsTensorBytes& t : tensors) out += t.bytes;
  return out;
}

uint16_t FloatToHalf(float value) {
  const uint32_t bits = FloatBits(value);
  const uint16_t sign = static_cast<uint16_t>((bits >> 16) & 0x8000);
  const uint32_t magnitude = bits & 0x7fffffffu;
  if (magnitude > 0x7f800000u) {  // NaN: keep it quiet and non-zero
    return sign | 0x7e00 | ((magnitude >> 13) & 0x3ff);
  }
  if (magnitude >= 0x477ff000u) return sign | 0x7c00;  // rounds to infinity
  const uint32_t exponent = magnitude >> 23;
  if (exponent < 113) {  // below 2^-14: a half subnormal or zero
    const int shift = 126 - static_cast<int>(exponent);
    if (shift > 24) return sign;
    const uint32_t mantissa = (magnitude & 0x7fffffu) | 0x800000u;
    return sign | static_cast<uint16_t>(ShiftRoundEven(mantissa, shift));
  }
  // Normal: rebias 127 -> 15; a carry out of the mantissa bumps the exponent.
  const uint32_t rebased = magnitude - (uint32_t{112} << 23);
  return sign | static_cast<uint16_t>(ShiftRoundEven(rebased, 13));
}

uint16_t FloatToBFloat16(float value) {
  const uint32_t bits = FloatBits(value);
  if ((bits & 0x7fffffffu) > 0x7f800000u) {
    return static_cast<uint16_t>((bits >> 16) | 0x40);  // quiet NaN
  }
  // Handles the carry into the exponent (and up to infinity) naturally.
  const uint32_t rounded = bits + 0x7fffu + ((bits >> 16) & 1);
  return static_cast<uint16_t>(rounded >> 16);
}

std::string EncodeFloats(absl::Span<const float> values,
                         SafetensorsDtype dtype) {
  std::string out;
  out.reserve(values.size() * SafetensorsDtypeSize(dtype));
  for (float v : values) {
    switch (dtype) {
      case SafetensorsDtype::kF16:
        AppendLittleEndian(out, FloatToHalf(v), 2);
        break;
      case SafetensorsDtype::kBF16:
        AppendLittleEndian(out, FloatToBFloat16(v), 2);
        break;
      default:
        AppendLittleEndian(out, FloatBits(v), 4);
        break;
    }
  }
  return out;
}

}  // namespace tandem
