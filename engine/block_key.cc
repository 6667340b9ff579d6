#include "engine/block_key.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "engine/little_endian.h"
#include "xxhash.h"

namespace tandem {
namespace {

// Opens every encoded key input: names the encoding and its version.
constexpr absl::string_view kKeyDomain = "TNDMKEY1";

constexpr char kHexDigits[] = "0123456789abcdef";

void AppendHex(std::string* out, uint64_t value) {
  for (int shift = 60; shift >= 0; shift -= 4) {
    out->push_back(kHexDigits[(value >> shift) & 0xf]);
  }
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

std::string BlockKey::ToHex() const {
  std::string hex;
  hex.reserve(32);
  AppendHex(&hex, hi);
  AppendHex(&hex, lo);
  return hex;
}

absl::StatusOr<BlockKey> ParseBlockKey(absl::string_view hex) {
  if (hex.size() != 32) {
    return absl::InvalidArgumentError(absl::StrCat(
        "block key must be 32 hex digits, got ", hex.size(), " characters"));
  }
  uint64_t halves[2] = {0, 0};
  for (size_t i = 0; i < hex.size(); ++i) {
    const int digit = HexValue(hex[i]);
    if (digit < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("block key has a non-hex character at offset ", i));
    }
    uint64_t& half = halves[i / 16];
    half = (half << 4) | static_cast<uint64_t>(digit);
  }
  return BlockKey{halves[0], halves[1]};
}

std::ostream& operator<<(std::ostream& os, const BlockKey& key) {
  return os << key.ToHex();
}

BlockKey ComputeBlockKey(const Fingerprint& model, const BlockKey* parent,
                         absl::Span<const int32_t> tokens) {
  std::string encoded;
  encoded.reserve(kKeyDomain.size() + 37 + 4 * tokens.size());
  encoded.append(kKeyDomain.data(), kKeyDomain.size());
  little_endian::AppendU64(&encoded, model.words[0]);
  little_endian::AppendU64(&encoded, model.words[1]);
  encoded.push_back(parent == nullptr ? '\0' : '\1');
  little_endian::AppendU64(&encoded, parent == nullptr ? 0 : parent->hi);
  little_endian::AppendU64(&encoded, parent == nullptr ? 0 : parent->lo);
  little_endian::AppendU32(&encoded, static_cast<uint32_t>(tokens.size()));
  for (int32_t token : tokens) {
    little_endian::AppendU32(&encoded, static_cast<uint32_t>(token));
  }
  const XXH128_hash_t digest = XXH3_128bits(encoded.data(), encoded.size());
  return BlockKey{digest.high64, digest.low64};
}

std::vector<BlockKey> ComputeKeyChain(const Fingerprint& model,
                                      absl::Span<const int32_t> tokens,
                                      int block_size) {
  std::vector<BlockKey> keys;
  if (block_size <= 0) return keys;
  const size_t size = static_cast<size_t>(block_size);
  keys.reserve(tokens.size() / size);
  for (size_t start = 0; start + size <= tokens.size(); start += size) {
    const BlockKey* parent = keys.empty() ? nullptr : &keys.back();
    keys.push_back(ComputeBlockKey(model, parent, tokens.subspan(start, size)));
  }
  return keys;
}

}  // namespace tandem
