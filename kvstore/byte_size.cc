#include "kvstore/byte_size.h"

#include <array>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace tandem {
namespace {

constexpr uint64_t kKiB = 1024;

// Units by name, lowercase.
constexpr std::array<std::pair<absl::string_view, uint64_t>, 9> kUnits = {{
    {"b", 1},
    {"kb", 1000},
    {"mb", 1000 * 1000},
    {"gb", 1000 * 1000 * 1000},
    {"tb", uint64_t{1000} * 1000 * 1000 * 1000},
    {"kib", kKiB},
    {"mib", kKiB* kKiB},
    {"gib", kKiB* kKiB* kKiB},
    {"tib", kKiB* kKiB* kKiB* kKiB},
}};

}  // namespace

absl::StatusOr<uint64_t> ParseByteSize(absl::string_view text) {
  const absl::string_view trimmed = absl::StripAsciiWhitespace(text);
  size_t digits = 0;
  while (digits < trimmed.size() && absl::ascii_isdigit(trimmed[digits])) {
    ++digits;
  }
  uint64_t count = 0;
  if (digits == 0 || !absl::SimpleAtoi(trimmed.substr(0, digits), &count)) {
    return absl::InvalidArgumentError(
        absl::StrCat("byte size \"", text, "\" is not a whole number"));
  }
  const absl::string_view unit =
      absl::StripLeadingAsciiWhitespace(trimmed.substr(digits));
  uint64_t multiplier = unit.empty() ? 1 : 0;
  for (const auto& [name, value] : kUnits) {
    if (absl::EqualsIgnoreCase(unit, name)) multiplier = value;
  }
  if (multiplier == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("byte size \"", text, "\" has unknown unit \"", unit,
                     "\" (use B, KiB, MiB, GiB, TiB, KB, MB, GB or TB)"));
  }
  uint64_t bytes = 0;
  if (__builtin_mul_overflow(count, multiplier, &bytes)) {
    return absl::InvalidArgumentError(
        absl::StrCat("byte size \"", text, "\" does not fit in 64 bits"));
  }
  return bytes;
}

std::string FormatByteSize(uint64_t bytes) {
  constexpr std::array<std::pair<absl::string_view, uint64_t>, 4> kBinary = {{
      {"TiB", kKiB * kKiB * kKiB * kKiB},
      {"GiB", kKiB * kKiB * kKiB},
      {"MiB", kKiB * kKiB},
      {"KiB", kKiB},
  }};
  for (const auto& [name, unit] : kBinary) {
    if (bytes != 0 && bytes % unit == 0)
      return absl::StrCat(bytes / unit, name);
  }
  return absl::StrCat(bytes);
}

bool AbslParseFlag(absl::string_view text, ByteSize* size, std::string* error) {
  absl::StatusOr<uint64_t> bytes = ParseByteSize(text);
  if (!bytes.ok()) {
    *error = std::string(bytes.status().message());
    return false;
  }
  size->bytes = *bytes;
  return true;
}

std::string AbslUnparseFlag(ByteSize size) {
  return FormatByteSize(size.bytes);
}

}  // namespace tandem
