#include "kvstore/block_info.h"

#include "absl/strings/str_cat.h"
#include "engine/kv_block_codec.h"
#include "engine/status_macros.h"
#include "xxhash.h"

namespace tandem {
namespace {

// InvalidArgument unless the header describes the block `info` names.
absl::Status CheckHeaderMatches(const BlockInfo& info,
                                const KvBlockHeader& header) {
  const BlockMetadata& metadata = header.metadata;
  if (!metadata.key.has_value()) {
    return absl::InvalidArgumentError("KV block carries no content key");
  }
  if (*metadata.key != info.key) {
    return absl::InvalidArgumentError(
        absl::StrCat("KV block is keyed ", metadata.key->ToHex(),
                     " but was sent as ", info.key.ToHex()));
  }
  if (metadata.model != info.model) {
    return absl::InvalidArgumentError(
        "KV block's model fingerprint differs from the one sent with it");
  }
  if (static_cast<uint32_t>(metadata.token_count) != info.token_count) {
    return absl::InvalidArgumentError(absl::StrCat(
        "KV block holds ", metadata.token_count,
        " tokens but was sent with token_count ", info.token_count));
  }
  return absl::OkStatus();
}

}  // namespace

uint64_t BlockChecksum(absl::string_view bytes) {
  return XXH3_64bits(bytes.data(), bytes.size());
}

absl::StatusOr<BlockInfo> DescribeBlock(absl::string_view bytes) {
  TANDEM_ASSIGN_OR_RETURN(KvBlockHeader header, ReadBlockHeader(bytes));
  if (!header.metadata.key.has_value()) {
    return absl::InvalidArgumentError("KV block carries no content key");
  }
  if (bytes.size() != kKvBlockHeaderBytes + header.payload_bytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "KV block is ", bytes.size(), " bytes but its header says ",
        kKvBlockHeaderBytes + header.payload_bytes));
  }
  BlockInfo info;
  info.key = *header.metadata.key;
  info.model = header.metadata.model;
  info.token_count = static_cast<uint32_t>(header.metadata.token_count);
  info.total_bytes = bytes.size();
  info.checksum = BlockChecksum(bytes);
  return info;
}

absl::Status CheckBlockMatches(const BlockInfo& info, absl::string_view bytes,
                               uint64_t checksum) {
  if (bytes.size() != info.total_bytes) {
    return absl::DataLossError(absl::StrCat(
        "KV block is ", bytes.size(), " bytes, expected ", info.total_bytes));
  }
  if (checksum != info.checksum) {
    return absl::DataLossError("KV block bytes do not match their checksum");
  }
  TANDEM_ASSIGN_OR_RETURN(KvBlockHeader header, VerifyBlock(bytes));
  return CheckHeaderMatches(info, header);
}

}  // namespace tandem
