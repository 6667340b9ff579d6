// Reading the safetensors checkpoint format.
//
// A safetensors file is an 8-byte little-endian header length N, then N bytes
// of JSON header, then the data region. The header is an object mapping each
// tensor name to {"dtype", "shape", "data_offsets": [begin, end]} (offsets
// relative to the data region), plus an optional "__metadata__" object of
// string values. Tandem requires what the format's reference writer
// produces: the tensors' byte ranges tile the data region exactly, with no
// overlap, no hole and nothing after the last tensor.
//
// ParseSafetensors checks all of that on a byte span (so a fuzzer can drive
// the same code the loader uses); SafetensorsFile memory-maps a file and
// parses it. Every fault is an InvalidArgument naming the source and the
// fault; nothing here crashes on malformed input.
#ifndef TANDEM_ENGINE_SAFETENSORS_H_
#define TANDEM_ENGINE_SAFETENSORS_H_

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace tandem {

// Every dtype the format defines. Only F32, F16 and BF16 convert to F32.
enum class SafetensorsDtype {
  kBool,
  kU8,
  kI8,
  kF8E4M3,
  kF8E5M2,
  kI16,
  kU16,
  kF16,
  kBF16,
  kI32,
  kU32,
  kF32,
  kF64,
  kI64,
  kU64,
};

// The dtype's name in a header, e.g. "BF16".
std::string_view SafetensorsDtypeName(SafetensorsDtype dtype);
// Bytes per element.
size_t SafetensorsDtypeSize(SafetensorsDtype dtype);

// Headers longer than this are rejected as malformed.
inline constexpr uint64_t kMaxSafetensorsHeaderBytes = 100'000'000;

// One tensor of a parsed file.
struct SafetensorsTensor {
  std::string name;
  SafetensorsDtype dtype;
  std::vector<int64_t> shape;  // each >= 0; empty for a scalar
  uint64_t num_elements;       // product of `shape`
  // The tensor's bytes, little-endian, inside the buffer that was parsed.
  // Not aligned beyond what the file's offsets give.
  absl::Span<const uint8_t> data;
};

// The parsed header of one file. Tensor data spans point into the parsed
// buffer, which must outlive this.
struct SafetensorsContents {
  std::vector<SafetensorsTensor> tensors;  // sorted by name
  std::map<std::string, std::string> metadata;
  size_t data_offset = 0;  // where the data region starts in the buffer

  // The tensor called `name`, or null.
  const SafetensorsTensor* Find(std::string_view name) const;
};

// Parses a whole safetensors file held in `bytes`. `source` names it in
// errors. Returns InvalidArgument when the file is shorter than 8 bytes, the
// header length runs past the end or exceeds kMaxSafetensorsHeaderBytes, the
// header is not JSON or not an object, an entry is malformed (unknown dtype,
// a dim that is negative or not an integer, an element count or byte size
// that overflows, data_offsets not [begin <= end]), its byte size disagrees
// with dtype and shape, or the tensors' ranges run past the data, overlap,
// or leave holes or trailing bytes. The result's spans point into `bytes`.
absl::StatusOr<SafetensorsContents> ParseSafetensors(
    absl::Span<const uint8_t> bytes, std::string_view source);

// A read-only memory map of one safetensors file, parsed. Immutable after
// Open, so safe to share between threads.
class SafetensorsFile {
 public:
  // Maps and parses `path`. NotFound if it does not exist, InvalidArgument
  // if it is not a regular readable file or is malformed (as
  // ParseSafetensors, with the path as the source).
  static absl::StatusOr<std::unique_ptr<SafetensorsFile>> Open(
      const std::filesystem::path& path);

  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;
  ~SafetensorsFile();  // unmaps; every span into the file becomes invalid

  const std::filesystem::path& path() const { return path_; }
  // The whole file. Truncating the file while it is mapped is not supported.
  absl::Span<const uint8_t> bytes() const { return {data_, size_}; }
  const SafetensorsContents& contents() const { return contents_; }

 private:
  SafetensorsFile(std::filesystem::path path, const uint8_t* data, size_t size);

  std::filesystem::path path_;
  const uint8_t* data_;
  size_t size_;
  SafetensorsContents contents_;
};

// Exact conversions of one element to F32 (NaN payloads and signs kept).
float HalfToFloat(uint16_t bits);
float BFloat16ToFloat(uint16_t bits);

// Converts `tensor` to F32 into `out`. InvalidArgument if its dtype is not
// F32, F16 or BF16. REQUIRES: out.size() == tensor.num_elements.
absl::Status ConvertToF32(const SafetensorsTensor& tensor,
                          absl::Span<float> out);

}  // namespace tandem

#endif  // TANDEM_ENGINE_SAFETENSORS_H_
