// Byte counts as people write them in flags: a whole number with an
// optional unit, binary (KiB, MiB, GiB, TiB) or decimal (B, KB, MB, GB, TB),
// e.g. "512MiB", "2GiB", "1000000".
//
// Everything here is a pure function and thread-safe.
#ifndef TANDEM_KVSTORE_BYTE_SIZE_H_
#define TANDEM_KVSTORE_BYTE_SIZE_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace tandem {

// Parses a byte count; units are case-insensitive and may follow a space.
// InvalidArgument if `text` is not a whole number with a known unit, or the
// count does not fit in 64 bits.
absl::StatusOr<uint64_t> ParseByteSize(absl::string_view text);

// The shortest exact form: the largest binary unit that divides `bytes`
// ("512MiB", "1536KiB"), or a plain number.
std::string FormatByteSize(uint64_t bytes);

// A flag value holding a byte count: ABSL_FLAG(tandem::ByteSize, ...).
struct ByteSize {
  uint64_t bytes = 0;
};

bool AbslParseFlag(absl::string_view text, ByteSize* size, std::string* error);
std::string AbslUnparseFlag(ByteSize size);

}  // namespace tandem

#endif  // TANDEM_KVSTORE_BYTE_SIZE_H_
