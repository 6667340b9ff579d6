// Export and import of one KV cache block as self-describing bytes: the form
// in which blocks travel between prefill and decode workers and sit in the
// KV store.
//
// The bytes are a fixed 96-byte little-endian header (magic, format version,
// dtype, layout, token count, model fingerprint, optional content key,
// payload checksum, header checksum) followed by the payload: for each
// (layer, k|v, kv_head) plane in kv_layout.h order, the first `token_count`
// token slots, head_dim F32 values each. docs/kv_block_format.md specifies
// every byte. A partial block (token_count < block_size) carries only its
// filled slots, so bytes never include stale data from unused slots.
//
// Status codes, the same for every function here:
//   DataLoss           the bytes are corrupted: shorter than a header, a
//                      length that disagrees with the header, or a header or
//                      payload checksum mismatch.
//   InvalidArgument    the bytes are not a block this reader can decode
//                      (wrong magic, unsupported version or dtype, header
//                      fields that are inconsistent), or export arguments are
//                      invalid.
//   FailedPrecondition a valid block that is not the one expected: a
//                      different layout, model fingerprint or content key.
//
// Everything here is a pure function of its arguments and thread-safe.
#ifndef TANDEM_ENGINE_KV_BLOCK_CODEC_H_
#define TANDEM_ENGINE_KV_BLOCK_CODEC_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "engine/block_key.h"
#include "engine/kv_layout.h"
#include "engine/model_weights.h"

namespace tandem {

// The format version this code writes and the only one it reads.
inline constexpr uint32_t kKvBlockFormatVersion = 1;
// Size of the header that opens every encoded block.
inline constexpr size_t kKvBlockHeaderBytes = 96;

// Element type of the payload, as its numeric code on the wire.
enum class KvDtype : uint32_t { kF32 = 0 };

// What a block is, apart from its layout and values.
struct BlockMetadata {
  Fingerprint model;
  // Filled token slots, 1 to block_size; below block_size for the partial
  // last block of a sequence.
  int token_count = 0;
  // The content key (block_key.h); absent for blocks that have none, such as
  // a partial last block handed from prefill to decode.
  std::optional<BlockKey> key;

  friend bool operator==(const BlockMetadata&, const BlockMetadata&) = default;
};

// The decoded header of an encoded block.
struct KvBlockHeader {
  uint32_t version = kKvBlockFormatVersion;
  KvDtype dtype = KvDtype::kF32;
  KvLayout layout;
  BlockMetadata metadata;
  uint64_t payload_bytes = 0;     // bytes after the header
  uint64_t payload_checksum = 0;  // XXH3-64 of the payload
};

// Bytes of the payload of a block of `layout` holding `token_count` slots.
// REQUIRES: layout.IsValid() and 0 <= token_count <= layout.block_size.
size_t KvBlockPayloadBytes(const KvLayout& layout, int token_count);

// Encodes the first metadata.token_count slots of `block_data`, a whole
// block (layout.BlockFloats() floats, kv_layout.h order), with `metadata`.
// InvalidArgument if the layout is invalid, `block_data` is null or
// metadata.token_count is outside [1, block_size].
absl::StatusOr<std::string> ExportBlock(const KvLayout& layout,
                                        const float* block_data,
                                        const BlockMetadata& metadata);

// Decodes and checks the header at the start of `bytes` (which may hold only
// the header): length, magic, version, header checksum and the consistency
// of its fields. Does not look at the payload.
absl::StatusOr<KvBlockHeader> ReadBlockHeader(absl::string_view bytes);

// ReadBlockHeader, plus checks that `bytes` is exactly one block (header and
// payload_bytes of payload) whose payload matches its checksum. For holders
// of blocks, such as the KV store, that do not know the model.
absl::StatusOr<KvBlockHeader> VerifyBlock(absl::string_view bytes);

// Checks `bytes` as VerifyBlock does and that it is a block of
// `expected_layout` (every dimension), of `expected_model` and, unless
// `expected_key` is null, keyed `*expected_key` (a block without a key does
// not match). Only then writes the block's token_count slots of every plane
// into `dest`, leaving the other slots as they were, and stores its metadata
// in `*out` unless `out` is null. On error neither `dest` nor `*out` is
// touched; InvalidArgument if `dest` is null. REQUIRES: a non-null `dest`
// holds expected_layout.BlockFloats() floats.
absl::Status ImportBlock(absl::string_view bytes,
                         const KvLayout& expected_layout,
                         const Fingerprint& expected_model,
                         const BlockKey* expected_key, float* dest,
                         BlockMetadata* out);

}  // namespace tandem

#endif  // TANDEM_ENGINE_KV_BLOCK_CODEC_H_
