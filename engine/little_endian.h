// Little-endian encoding of fixed-width integers into and out of byte
// buffers, independent of the host's byte order. Used by the KV block key
// encoding and the KV block codec.
#ifndef TANDEM_ENGINE_LITTLE_ENDIAN_H_
#define TANDEM_ENGINE_LITTLE_ENDIAN_H_

#include <cstddef>
#include <cstdint>
#include <string>

namespace tandem::little_endian {

// Appends the low `bytes` bytes of `value`, least significant first.
inline void Append(std::string* out, uint64_t value, int bytes) {
  for (int i = 0; i < bytes; ++i) {
    out->push_back(static_cast<char>((value >> (8 * i)) & 0xff));
  }
}
inline void AppendU32(std::string* out, uint32_t value) {
  Append(out, value, 4);
}
inline void AppendU64(std::string* out, uint64_t value) {
  Append(out, value, 8);
}

// Reads `bytes` bytes at `data`, least significant first.
// REQUIRES: `data` points at `bytes` readable bytes.
inline uint64_t Read(const char* data, int bytes) {
  uint64_t value = 0;
  for (int i = bytes - 1; i >= 0; --i) {
    value = (value << 8) | static_cast<unsigned char>(data[i]);
  }
  return value;
}
inline uint32_t ReadU32(const char* data) {
  return static_cast<uint32_t>(Read(data, 4));
}
inline uint64_t ReadU64(const char* data) { return Read(data, 8); }

}  // namespace tandem::little_endian

#endif  // TANDEM_ENGINE_LITTLE_ENDIAN_H_
