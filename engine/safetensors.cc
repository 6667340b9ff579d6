#include "engine/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <limits>
#include <optional>
#include <tuple>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "engine/status_macros.h"
#include "nlohmann/json.hpp"

// Tensor bytes are little-endian and F32 tensors are used in place.
static_assert(std::endian::native == std::endian::little,
              "Tandem reads safetensors only on little-endian hosts");

namespace tandem {
namespace {

using Json = nlohmann::json;

struct DtypeInfo {
  SafetensorsDtype dtype;
  const char* name;
  size_t size;
};

constexpr DtypeInfo kDtypes[] = {
    {SafetensorsDtype::kBool, "BOOL", 1},
    {SafetensorsDtype::kU8, "U8", 1},
    {SafetensorsDtype::kI8, "I8", 1},
    {SafetensorsDtype::kF8E4M3, "F8_E4M3", 1},
    {SafetensorsDtype::kF8E5M2, "F8_E5M2", 1},
    {SafetensorsDtype::kI16, "I16", 2},
    {SafetensorsDtype::kU16, "U16", 2},
    {SafetensorsDtype::kF16, "F16", 2},
    {SafetensorsDtype::kBF16, "BF16", 2},
    {SafetensorsDtype::kI32, "I32", 4},
    {SafetensorsDtype::kU32, "U32", 4},
    {SafetensorsDtype::kF32, "F32", 4},
    {SafetensorsDtype::kF64, "F64", 8},
    {SafetensorsDtype::kI64, "I64", 8},
    {SafetensorsDtype::kU64, "U64", 8},
};

const DtypeInfo& Info(SafetensorsDtype dtype) {
  return kDtypes[static_cast<size_t>(dtype)];
}

// Builds InvalidArgument errors that start with the source's name.
class Faults {
 public:
  explicit Faults(std::string_view source) : source_(source) {}
  template <typename... Parts>
  absl::Status operator()(const Parts&... parts) const {
    return absl::InvalidArgumentError(absl::StrCat(source_, ": ", parts...));
  }

 private:
  std::string source_;
};

// A non-negative JSON integer, or nothing.
std::optional<uint64_t> AsCount(const Json& v) {
  if (v.is_number_unsigned()) return v.get<uint64_t>();
  if (v.is_number_integer() && v.get<int64_t>() >= 0) {
    return static_cast<uint64_t>(v.get<int64_t>());
  }
  return std::nullopt;
}

struct Entry {
  SafetensorsTensor tensor;
  uint64_t begin;
  uint64_t end;
};

absl::StatusOr<SafetensorsDtype> ParseDtype(const Json& entry,
                                            const Faults& fault,
                                            const std::string& where) {
  auto it = entry.find("dtype");
  if (it == entry.end() || !it->is_string()) {
    return fault(where, "dtype is missing or not a string");
  }
  const std::string& name = it->get_ref<const std::string&>();
  for (const DtypeInfo& info : kDtypes) {
    if (info.name == name) return info.dtype;
  }
  return fault(where, "unknown dtype '", name, "'");
}

// Reads the shape and its element count.
absl::Status ParseShape(const Json& entry, const Faults& fault,
                        const std::string& where, SafetensorsTensor& t) {
  auto it = entry.find("shape");
  if (it == entry.end() || !it->is_array()) {
    return fault(where, "shape is missing or not a list");
  }
  t.num_elements = 1;
  for (const Json& dim : *it) {
    if (dim.is_number_integer() && !dim.is_number_unsigned() &&
        dim.get<int64_t>() < 0) {
      return fault(where, "shape has negative dim ", dim.get<int64_t>());
    }
    std::optional<uint64_t> n = AsCount(dim);
    if (!n.has_value() ||
        *n > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return fault(where, "shape has dim ", dim.dump(),
                   ", which is not a non-negative 64-bit integer");
    }
    if (__builtin_mul_overflow(t.num_elements, *n, &t.num_elements)) {
      return fault(where, "element count of shape ", it->dump(), " overflows");
    }
    t.shape.push_back(static_cast<int64_t>(*n));
  }
  return absl::OkStatus();
}

absl::Status ParseOffsets(const Json& entry, const Faults& fault,
                          const std::string& where, Entry& e) {
  auto it = entry.find("data_offsets");
  std::optional<uint64_t> begin, end;
  if (it != entry.end() && it->is_array() && it->size() == 2) {
    begin = AsCount((*it)[0]);
    end = AsCount((*it)[1]);
  }
  if (!begin.has_value() || !end.has_value() || *begin > *end) {
    return fault(where,
                 "data_offsets must be [begin, end] with 0 <= begin <= end");
  }
  e.begin = *begin;
  e.end = *end;
  return absl::OkStatus();
}

absl::StatusOr<Entry> ParseEntry(const std::string& name, const Json& value,
                                 const Faults& fault, uint64_t data_size) {
  const std::string where = absl::StrCat("tensor '", name, "': ");
  if (!value.is_object()) return fault(where, "entry is not an object");
  Entry e;
  e.tensor.name = name;
  TANDEM_ASSIGN_OR_RETURN(e.tensor.dtype, ParseDtype(value, fault, where));
  TANDEM_RETURN_IF_ERROR(ParseShape(value, fault, where, e.tensor));
  TANDEM_RETURN_IF_ERROR(ParseOffsets(value, fault, where, e));
  const DtypeInfo& dtype = Info(e.tensor.dtype);
  const std::string shape =
      absl::StrCat("[", absl::StrJoin(e.tensor.shape, ", "), "]");
  uint64_t bytes;
  if (__builtin_mul_overflow(e.tensor.num_elements, dtype.size, &bytes)) {
    return fault(where, "byte size of ", dtype.name, " shape ", shape,
                 " overflows");
  }
  if (e.end - e.begin != bytes) {
    return fault(where, "data_offsets [", e.begin, ", ", e.end, "] hold ",
                 e.end - e.begin, " bytes but dtype ", dtype.name,
                 " and shape ", shape, " need ", bytes);
  }
  if (e.end > data_size) {
    return fault(where, "data_offsets [", e.begin, ", ", e.end,
                 "] run past the end of the data (", data_size,
                 " bytes); the file is truncated or the offsets are wrong");
  }
  return e;
}

absl::Status ParseMetadata(const Json& value, const Faults& fault,
                           std::map<std::string, std::string>& metadata) {
  if (!value.is_object()) return fault("__metadata__ is not an object");
  for (const auto& [key, item] : value.items()) {
    if (!item.is_string()) {
      return fault("__metadata__ value '", key, "' is not a string");
    }
    metadata[key] = item.get<std::string>();
  }
  return absl::OkStatus();
}

// Checks that the entries' byte ranges tile [0, data_size) exactly.
absl::Status CheckLayout(std::vector<Entry>& entries, uint64_t data_size,
                         const Faults& fault) {
  std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    return std::tie(a.begin, a.end) < std::tie(b.begin, b.end);
  });
  uint64_t covered = 0;
  const Entry* previous = nullptr;
  for (const Entry& e : entries) {
    if (e.begin < covered) {
      return fault("tensor '", e.tensor.name, "' overlaps tensor '",
                   previous->tensor.name, "' in the data region");
    }
    if (e.begin > covered) {
      return fault("bytes [", covered, ", ", e.begin,
                   ") of the data region belong to no tensor (a hole before "
                   "tensor '",
                   e.tensor.name, "')");
    }
    covered = e.end;
    previous = &e;
  }
  if (covered != data_size) {
    return fault(data_size - covered,
                 " bytes after the last tensor's data belong to no tensor");
  }
  return absl::OkStatus();
}

}  // namespace

std::string_view SafetensorsDtypeName(SafetensorsDtype dtype) {
  return Info(dtype).name;
}

size_t SafetensorsDtypeSize(SafetensorsDtype dtype) { return Info(dtype).size; }

const SafetensorsTensor* SafetensorsContents::Find(
    std::string_view name) const {
  auto it = std::lower_bound(tensors.begin(), tensors.end(), name,
                             [](const SafetensorsTensor& t,
                                std::string_view n) { return t.name < n; });
  if (it == tensors.end() || it->name != name) return nullptr;
  return &*it;
}

absl::StatusOr<SafetensorsContents> ParseSafetensors(
    absl::Span<const uint8_t> bytes, std::string_view source) {
  const Faults fault(source);
  if (bytes.size() < 8) {
    return fault("file is ", bytes.size(),
                 " bytes, too short for the 8-byte header length");
  }
  uint64_t header_size = 0;
  for (int i = 7; i >= 0; --i) header_size = (header_size << 8) | bytes[i];
  if (header_size > kMaxSafetensorsHeaderBytes) {
    return fault("header length ", header_size, " exceeds the limit of ",
                 kMaxSafetensorsHeaderBytes, " bytes");
  }
  if (header_size > bytes.size() - 8) {
    return fault("header length ", header_size,
                 " runs past the end of the file (", bytes.size(), " bytes)");
  }
  const char* header = reinterpret_cast<const char*>(bytes.data() + 8);
  Json root = Json::parse(header, header + header_size, nullptr,
                          /*allow_exceptions=*/false);
  if (root.is_discarded()) return fault("header is not valid JSON");
  if (!root.is_object()) return fault("header is not a JSON object");

  SafetensorsContents contents;
  contents.data_offset = 8 + header_size;
  const absl::Span<const uint8_t> data = bytes.subspan(contents.data_offset);
  std::vector<Entry> entries;
  for (const auto& [name, value] : root.items()) {
    if (name == "__metadata__") {
      TANDEM_RETURN_IF_ERROR(ParseMetadata(value, fault, contents.metadata));
      continue;
    }
    TANDEM_ASSIGN_OR_RETURN(Entry e,
                            ParseEntry(name, value, fault, data.size()));
    e.tensor.data = data.subspan(e.begin, e.end - e.begin);
    entries.push_back(std::move(e));
  }
  TANDEM_RETURN_IF_ERROR(CheckLayout(entries, data.size(), fault));
  for (Entry& e : entries) contents.tensors.push_back(std::move(e.tensor));
  std::sort(contents.tensors.begin(), contents.tensors.end(),
            [](const SafetensorsTensor& a, const SafetensorsTensor& b) {
              return a.name < b.name;
            });
  return contents;
}

SafetensorsFile::SafetensorsFile(std::filesystem::path path,
                                 const uint8_t* data, size_t size)
    : path_(std::move(path)), data_(data), size_(size) {}

SafetensorsFile::~SafetensorsFile() {
  if (size_ > 0) munmap(const_cast<uint8_t*>(data_), size_);
}

absl::StatusOr<std::unique_ptr<SafetensorsFile>> SafetensorsFile::Open(
    const std::filesystem::path& path) {
  const std::string name = path.string();
  int fd = open(name.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return absl::NotFoundError(name + ": no such file");
    return absl::ErrnoToStatus(errno, name + ": cannot open");
  }
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    return absl::InvalidArgumentError(name + ": not a regular file");
  }
  const size_t size = static_cast<size_t>(st.st_size);
  void* map = nullptr;
  if (size > 0) {
    map = mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (map == MAP_FAILED) {
      const int error = errno;
      close(fd);
      return absl::ErrnoToStatus(error, name + ": cannot map");
    }
  }
  close(fd);
  std::unique_ptr<SafetensorsFile> file(
      new SafetensorsFile(path, static_cast<const uint8_t*>(map), size));
  TANDEM_ASSIGN_OR_RETURN(file->contents_,
                          ParseSafetensors(file->bytes(), name));
  return file;
}

float HalfToFloat(uint16_t bits) {
  const uint32_t sign = static_cast<uint32_t>(bits & 0x8000) << 16;
  uint32_t exponent = (bits >> 10) & 0x1f;
  uint32_t mantissa = bits & 0x3ff;
  uint32_t out;
  if (exponent == 0x1f) {  // infinity or NaN
    out = sign | 0x7f800000u | (mantissa << 13);
  } else if (exponent != 0) {  // normal: rebias 15 -> 127
    out = sign | ((exponent + 112) << 23) | (mantissa << 13);
  } else if (mantissa == 0) {  // signed zero
    out = sign;
  } else {  // subnormal: mantissa * 2^-24, normalized for F32
    uint32_t biased = 113;
    while ((mantissa & 0x400) == 0) {
      mantissa <<= 1;
      --biased;
    }
    out = sign | (biased << 23) | ((mantissa & 0x3ff) << 13);
  }
  float f;
  std::memcpy(&f, &out, sizeof(f));
  return f;
}

float BFloat16ToFloat(uint16_t bits) {
  const uint32_t out = static_cast<uint32_t>(bits) << 16;
  float f;
  std::memcpy(&f, &out, sizeof(f));
  return f;
}

absl::Status ConvertToF32(const SafetensorsTensor& tensor,
                          absl::Span<float> out) {
  if (out.size() != tensor.num_elements) {
    return absl::InternalError(absl::StrCat(
        "ConvertToF32: tensor '", tensor.name, "' has ", tensor.num_elements,
        " elements but the output holds ", out.size()));
  }
  const uint8_t* p = tensor.data.data();
  const size_t n = out.size();
  switch (tensor.dtype) {
    case SafetensorsDtype::kF32:
      if (n > 0) std::memcpy(out.data(), p, n * sizeof(float));
      return absl::OkStatus();
    case SafetensorsDtype::kF16:
      for (size_t i = 0; i < n; ++i) {
        out[i] =
            HalfToFloat(static_cast<uint16_t>(p[2 * i] | p[2 * i + 1] << 8));
      }
      return absl::OkStatus();
    case SafetensorsDtype::kBF16:
      for (size_t i = 0; i < n; ++i) {
        out[i] = BFloat16ToFloat(
            static_cast<uint16_t>(p[2 * i] | p[2 * i + 1] << 8));
      }
      return absl::OkStatus();
    default:
      return absl::InvalidArgumentError(absl::StrCat(
          "tensor '", tensor.name, "' has dtype ", Info(tensor.dtype).name,
          "; only F32, F16 and BF16 convert to F32"));
  }
}

}  // namespace tandem
