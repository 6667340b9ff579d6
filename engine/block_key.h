// Content keys of KV blocks.
//
// A full block of `block_size` tokens is named by a 128-bit key computed from
// the model's fingerprint, the key of the block before it and the block's own
// token ids. Equal token prefixes under the same model therefore give equal
// key chains on every node without coordination, and a key names a block's
// whole prefix, not only its own tokens. The exact byte encoding that is
// hashed is specified in docs/kv_block_format.md; other implementations
// depend on it, so it changes only with a new key version.
//
// Everything here is a pure function and thread-safe.
#ifndef TANDEM_ENGINE_BLOCK_KEY_H_
#define TANDEM_ENGINE_BLOCK_KEY_H_

#include <compare>
#include <cstdint>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "engine/model_weights.h"

namespace tandem {

// A 128-bit block key: the XXH3-128 digest's high and low 64-bit halves.
struct BlockKey {
  uint64_t hi = 0;
  uint64_t lo = 0;

  friend bool operator==(const BlockKey&, const BlockKey&) = default;
  // Orders by `hi`, then `lo`.
  friend auto operator<=>(const BlockKey&, const BlockKey&) = default;

  template <typename H>
  friend H AbslHashValue(H h, const BlockKey& key) {
    return H::combine(std::move(h), key.hi, key.lo);
  }

  // 32 lowercase hex digits: `hi` then `lo`, each most significant first.
  std::string ToHex() const;
};

// Parses ToHex()'s form (upper- or lowercase digits). InvalidArgument unless
// `hex` is exactly 32 hex digits.
absl::StatusOr<BlockKey> ParseBlockKey(absl::string_view hex);

// Writes ToHex() (for logs and test failure messages).
std::ostream& operator<<(std::ostream& os, const BlockKey& key);

// The key of a block holding `tokens`, which follows the block keyed
// `*parent`, or is the first block of its sequence when `parent` is null.
// Any number of tokens is accepted; the engine keys only full blocks.
BlockKey ComputeBlockKey(const Fingerprint& model, const BlockKey* parent,
                         absl::Span<const int32_t> tokens);

// The keys of every full block of `tokens` split into blocks of
// `block_size` tokens, in order: tokens.size() / block_size keys. A partial
// trailing block has no key. Empty if `block_size` is not positive.
std::vector<BlockKey> ComputeKeyChain(const Fingerprint& model,
                                      absl::Span<const int32_t> tokens,
                                      int block_size);

}  // namespace tandem

#endif  // TANDEM_ENGINE_BLOCK_KEY_H_
