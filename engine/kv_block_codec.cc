#include "engine/kv_block_codec.h"

#include <bit>
#include <cstring>
#include <limits>

#include "absl/strings/str_cat.h"
#include "engine/little_endian.h"
#include "xxhash.h"

namespace tandem {
namespace {

// The payload is copied as host floats, which must be little-endian IEEE-754
// binary32 to match the format.
static_assert(std::endian::native == std::endian::little,
              "the KV block codec assumes a little-endian host");
static_assert(std::numeric_limits<float>::is_iec559 && sizeof(float) == 4);

constexpr absl::string_view kMagic = "TNDMKVBK";

// Byte offsets of the header fields; see docs/kv_block_format.md.
constexpr size_t kVersionOffset = 8;
constexpr size_t kDtypeOffset = 12;
constexpr size_t kNumLayersOffset = 16;
constexpr size_t kNumKvHeadsOffset = 20;
constexpr size_t kHeadDimOffset = 24;
constexpr size_t kBlockSizeOffset = 28;
constexpr size_t kTokenCountOffset = 32;
constexpr size_t kFlagsOffset = 36;
constexpr size_t kPayloadBytesOffset = 40;
constexpr size_t kModelOffset = 48;
constexpr size_t kKeyOffset = 64;
constexpr size_t kPayloadChecksumOffset = 80;
constexpr size_t kHeaderChecksumOffset = 88;
static_assert(kHeaderChecksumOffset + 8 == kKvBlockHeaderBytes);

constexpr uint32_t kFlagHasKey = 1;

std::string EncodeHeader(const KvBlockHeader& header) {
  const BlockMetadata& metadata = header.metadata;
  const BlockKey key = metadata.key.value_or(BlockKey{});
  std::string out(kMagic);
  little_endian::AppendU32(&out, header.version);
  little_endian::AppendU32(&out, static_cast<uint32_t>(header.dtype));
  little_endian::AppendU32(&out, header.layout.num_layers);
  little_endian::AppendU32(&out, header.layout.num_kv_heads);
  little_endian::AppendU32(&out, header.layout.head_dim);
  little_endian::AppendU32(&out, header.layout.block_size);
  little_endian::AppendU32(&out, metadata.token_count);
  little_endian::AppendU32(&out, metadata.key ? kFlagHasKey : 0);
  little_endian::AppendU64(&out, header.payload_bytes);
  little_endian::AppendU64(&out, metadata.model.words[0]);
  little_endian::AppendU64(&out, metadata.model.words[1]);
  little_endian::AppendU64(&out, key.hi);
  little_endian::AppendU64(&out, key.lo);
  little_endian::AppendU64(&out, header.payload_checksum);
  little_endian::AppendU64(&out, XXH3_64bits(out.data(), out.size()));
  return out;
}

// Reads a u32 header field that must fit an int and be positive.
absl::StatusOr<int> ReadDimension(const char* header, size_t offset,
                                  absl::string_view name) {
  const uint32_t value = little_endian::ReadU32(header + offset);
  if (value == 0 || value > std::numeric_limits<int>::max()) {
    return absl::InvalidArgumentError(
        absl::StrCat("KV block header has invalid ", name, " ", value));
  }
  return static_cast<int>(value);
}

// Decodes the fields after the checksum has been verified.
absl::StatusOr<KvBlockHeader> DecodeFields(const char* data) {
  KvBlockHeader header;
  const uint32_t dtype = little_endian::ReadU32(data + kDtypeOffset);
  if (dtype != static_cast<uint32_t>(KvDtype::kF32)) {
    return absl::InvalidArgumentError(
        absl::StrCat("KV block has unsupported dtype code ", dtype));
  }
  KvLayout& layout = header.layout;
  auto num_layers = ReadDimension(data, kNumLayersOffset, "num_layers");
  auto num_kv_heads = ReadDimension(data, kNumKvHeadsOffset, "num_kv_heads");
  auto head_dim = ReadDimension(data, kHeadDimOffset, "head_dim");
  auto block_size = ReadDimension(data, kBlockSizeOffset, "block_size");
  for (const auto* dim : {&num_layers, &num_kv_heads, &head_dim, &block_size}) {
    if (!dim->ok()) return dim->status();
  }
  layout = {*num_layers, *num_kv_heads, *head_dim, *block_size};
  if (!layout.IsValid()) {
    return absl::InvalidArgumentError("KV block header layout is too large");
  }
  const uint32_t tokens = little_endian::ReadU32(data + kTokenCountOffset);
  if (tokens == 0 || tokens > static_cast<uint32_t>(layout.block_size)) {
    return absl::InvalidArgumentError(
        absl::StrCat("KV block header has token count ", tokens,
                     " outside [1, block_size=", layout.block_size, "]"));
  }
  const uint32_t flags = little_endian::ReadU32(data + kFlagsOffset);
  if ((flags & ~kFlagHasKey) != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("KV block header has unknown flags ", flags));
  }
  BlockMetadata& metadata = header.metadata;
  metadata.token_count = static_cast<int>(tokens);
  metadata.model.words = {little_endian::ReadU64(data + kModelOffset),
                          little_endian::ReadU64(data + kModelOffset + 8)};
  const BlockKey key{little_endian::ReadU64(data + kKeyOffset),
                     little_endian::ReadU64(data + kKeyOffset + 8)};
  if (flags & kFlagHasKey) {
    metadata.key = key;
  } else if (key != BlockKey{}) {
    return absl::InvalidArgumentError(
        "KV block header has key bytes but no key flag");
  }
  header.payload_bytes = little_endian::ReadU64(data + kPayloadBytesOffset);
  if (header.payload_bytes != KvBlockPayloadBytes(layout, tokens)) {
    return absl::InvalidArgumentError(
        absl::StrCat("KV block header gives ", header.payload_bytes,
                     " payload bytes; its layout and token count need ",
                     KvBlockPayloadBytes(layout, tokens)));
  }
  header.payload_checksum =
      little_endian::ReadU64(data + kPayloadChecksumOffset);
  return header;
}

absl::Status CheckPayload(const KvBlockHeader& header,
                          absl::string_view bytes) {
  // ReadBlockHeader checked that `bytes` holds a whole header.
  const uint64_t payload_size = bytes.size() - kKvBlockHeaderBytes;
  if (payload_size != header.payload_bytes) {
    return absl::DataLossError(absl::StrCat(
        "KV block payload is ", payload_size, " bytes; its header says ",
        header.payload_bytes,
        payload_size < header.payload_bytes ? " (truncated)"
                                            : " (trailing bytes)"));
  }
  const uint64_t checksum =
      XXH3_64bits(bytes.data() + kKvBlockHeaderBytes, header.payload_bytes);
  if (checksum != header.payload_checksum) {
    return absl::DataLossError("KV block payload checksum mismatch");
  }
  return absl::OkStatus();
}

std::string LayoutString(const KvLayout& layout) {
  return absl::StrCat(
      "num_layers=", layout.num_layers, " num_kv_heads=", layout.num_kv_heads,
      " head_dim=", layout.head_dim, " block_size=", layout.block_size);
}

std::string FingerprintString(const Fingerprint& model) {
  return BlockKey{model.words[0], model.words[1]}.ToHex();
}

absl::Status CheckExpected(const KvBlockHeader& header, const KvLayout& layout,
                           const Fingerprint& model, const BlockKey* key) {
  if (header.layout != layout) {
    return absl::FailedPreconditionError(absl::StrCat(
        "KV block layout (", LayoutString(header.layout),
        ") differs from the expected (", LayoutString(layout), ")"));
  }
  const BlockMetadata& metadata = header.metadata;
  if (metadata.model != model) {
    return absl::FailedPreconditionError(absl::StrCat(
        "KV block is for model ", FingerprintString(metadata.model),
        ", expected ", FingerprintString(model)));
  }
  if (key != nullptr && metadata.key != *key) {
    return absl::FailedPreconditionError(absl::StrCat(
        "KV block key ", metadata.key ? metadata.key->ToHex() : "(none)",
        " differs from the expected ", key->ToHex()));
  }
  return absl::OkStatus();
}

}  // namespace

size_t KvBlockPayloadBytes(const KvLayout& layout, int token_count) {
  return layout.NumPlanes() * token_count * layout.head_dim * sizeof(float);
}

absl::StatusOr<std::string> ExportBlock(const KvLayout& layout,
                                        const float* block_data,
                                        const BlockMetadata& metadata) {
  if (!layout.IsValid()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "cannot export a block of invalid layout ", LayoutString(layout)));
  }
  if (block_data == nullptr) {
    return absl::InvalidArgumentError("cannot export a null block");
  }
  if (metadata.token_count < 1 || metadata.token_count > layout.block_size) {
    return absl::InvalidArgumentError(absl::StrCat(
        "cannot export a block with token count ", metadata.token_count,
        " outside [1, block_size=", layout.block_size, "]"));
  }
  KvBlockHeader header;
  header.layout = layout;
  header.metadata = metadata;
  header.payload_bytes = KvBlockPayloadBytes(layout, metadata.token_count);
  std::string out(kKvBlockHeaderBytes + header.payload_bytes, '\0');
  const size_t slot_bytes = static_cast<size_t>(metadata.token_count) *
                            layout.head_dim * sizeof(float);
  char* payload = out.data() + kKvBlockHeaderBytes;
  for (size_t p = 0; p < layout.NumPlanes(); ++p) {
    std::memcpy(payload + p * slot_bytes, block_data + p * layout.HeadFloats(),
                slot_bytes);
  }
  header.payload_checksum = XXH3_64bits(payload, header.payload_bytes);
  const std::string encoded = EncodeHeader(header);
  std::memcpy(out.data(), encoded.data(), kKvBlockHeaderBytes);
  return out;
}

absl::StatusOr<KvBlockHeader> ReadBlockHeader(absl::string_view bytes) {
  if (bytes.size() < kKvBlockHeaderBytes) {
    return absl::DataLossError(
        absl::StrCat("KV block is ", bytes.size(), " bytes, shorter than its ",
                     kKvBlockHeaderBytes, "-byte header"));
  }
  if (bytes.substr(0, kMagic.size()) != kMagic) {
    return absl::InvalidArgumentError("not a KV block: wrong magic");
  }
  const uint32_t version =
      little_endian::ReadU32(bytes.data() + kVersionOffset);
  if (version != kKvBlockFormatVersion) {
    return absl::InvalidArgumentError(
        absl::StrCat("KV block has format version ", version,
                     "; this reader supports ", kKvBlockFormatVersion));
  }
  const uint64_t checksum =
      little_endian::ReadU64(bytes.data() + kHeaderChecksumOffset);
  if (checksum != XXH3_64bits(bytes.data(), kHeaderChecksumOffset)) {
    return absl::DataLossError("KV block header checksum mismatch");
  }
  return DecodeFields(bytes.data());
}

absl::StatusOr<KvBlockHeader> VerifyBlock(absl::string_view bytes) {
  absl::StatusOr<KvBlockHeader> header = ReadBlockHeader(bytes);
  if (!header.ok()) return header.status();
  absl::Status payload = CheckPayload(*header, bytes);
  if (!payload.ok()) return payload;
  return header;
}

absl::Status ImportBlock(absl::string_view bytes,
                         const KvLayout& expected_layout,
                         const Fingerprint& expected_model,
                         const BlockKey* expected_key, float* dest,
                         BlockMetadata* out) {
  if (dest == nullptr) {
    return absl::InvalidArgumentError("cannot import a KV block into null");
  }
  absl::StatusOr<KvBlockHeader> header = ReadBlockHeader(bytes);
  if (!header.ok()) return header.status();
  // Identity first (cheap), then the payload's length and checksum.
  absl::Status status =
      CheckExpected(*header, expected_layout, expected_model, expected_key);
  if (!status.ok()) return status;
  status = CheckPayload(*header, bytes);
  if (!status.ok()) return status;
  const KvLayout& layout = header->layout;
  const size_t slot_bytes = static_cast<size_t>(header->metadata.token_count) *
                            layout.head_dim * sizeof(float);
  const char* payload = bytes.data() + kKvBlockHeaderBytes;
  for (size_t p = 0; p < layout.NumPlanes(); ++p) {
    std::memcpy(dest + p * layout.HeadFloats(), payload + p * slot_bytes,
                slot_bytes);
  }
  if (out != nullptr) *out = header->metadata;
  return absl::OkStatus();
}

}  // namespace tandem
