// What the KV store knows about a block besides its bytes, and how to
// describe an encoded block (docs/kv_block_format.md) in those terms.
//
// The store treats a block as opaque bytes plus this metadata; it checks the
// bytes with the block codec only to refuse what is not a keyed KV block.
// Everything here is a pure function or a plain value, thread-safe.
#ifndef TANDEM_KVSTORE_BLOCK_INFO_H_
#define TANDEM_KVSTORE_BLOCK_INFO_H_

#include <cstdint>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "engine/block_key.h"
#include "engine/model_weights.h"

namespace tandem {

// Metadata of one stored block.
struct BlockInfo {
  BlockKey key;
  Fingerprint model;
  // Filled token slots, >= 1.
  uint32_t token_count = 0;
  // Length of the encoded block, header included.
  uint64_t total_bytes = 0;
  // BlockChecksum() of the encoded block's bytes.
  uint64_t checksum = 0;

  friend bool operator==(const BlockInfo&, const BlockInfo&) = default;
};

// XXH3-64 (seed 0) of all of `bytes`: the checksum a BlockInfo carries.
uint64_t BlockChecksum(absl::string_view bytes);

// Describes an encoded block: key, model and token count from its header,
// its length and its checksum. Checks the header only (ReadBlockHeader),
// not the payload. Returns the header's error (DataLoss, InvalidArgument) if
// it does not decode, and InvalidArgument if the block carries no content
// key or is not exactly header plus payload long.
absl::StatusOr<BlockInfo> DescribeBlock(absl::string_view bytes);

// Checks that `bytes` are a complete, uncorrupted KV block (VerifyBlock)
// whose length, checksum, key, model and token count are those of `info`.
// `checksum` is BlockChecksum(bytes), which a caller that received the bytes
// in pieces may have computed as they arrived. DataLoss if the length or any
// checksum disagrees; InvalidArgument if the bytes are not a KV block, carry
// no key, or describe another key, model or token count.
absl::Status CheckBlockMatches(const BlockInfo& info, absl::string_view bytes,
                               uint64_t checksum);

}  // namespace tandem

#endif  // TANDEM_KVSTORE_BLOCK_INFO_H_
