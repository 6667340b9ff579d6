#include "kvstore/kvstore_proto.h"

#include "absl/strings/str_cat.h"

namespace tandem {

void ToProto(const BlockKey& key, v1::BlockKey* out) {
  out->set_hi(key.hi);
  out->set_lo(key.lo);
}

BlockKey FromProto(const v1::BlockKey& key) {
  return BlockKey{.hi = key.hi(), .lo = key.lo()};
}

void ToProto(const Fingerprint& model, v1::ModelFingerprint* out) {
  out->set_word0(model.words[0]);
  out->set_word1(model.words[1]);
}

Fingerprint FromProto(const v1::ModelFingerprint& model) {
  return Fingerprint{{model.word0(), model.word1()}};
}

void ToProto(const BlockInfo& info, v1::BlockInfo* out) {
  ToProto(info.key, out->mutable_key());
  ToProto(info.model, out->mutable_model());
  out->set_token_count(info.token_count);
  out->set_total_bytes(info.total_bytes);
  out->set_checksum(info.checksum);
}

BlockInfo FromProto(const v1::BlockInfo& info) {
  return BlockInfo{.key = FromProto(info.key()),
                   .model = FromProto(info.model()),
                   .token_count = info.token_count(),
                   .total_bytes = info.total_bytes(),
                   .checksum = info.checksum()};
}

void ToProto(const BlockStoreStats& stats, v1::StatsResponse* out) {
  out->set_bytes_used(stats.bytes_used);
  out->set_bytes_stored(stats.bytes_stored);
  out->set_blocks_stored(stats.blocks_stored);
  out->set_memory_budget_bytes(stats.memory_budget_bytes);
  out->set_evictions(stats.evictions);
  out->set_puts(stats.puts);
  out->set_duplicate_puts(stats.duplicate_puts);
  out->set_failed_puts(stats.failed_puts);
  out->set_gets(stats.gets);
  out->set_hits(stats.hits);
  out->set_misses(stats.misses);
  out->set_removals(stats.removals);
}

BlockStoreStats FromProto(const v1::StatsResponse& stats) {
  return BlockStoreStats{.bytes_used = stats.bytes_used(),
                         .bytes_stored = stats.bytes_stored(),
                         .blocks_stored = stats.blocks_stored(),
                         .memory_budget_bytes = stats.memory_budget_bytes(),
                         .evictions = stats.evictions(),
                         .puts = stats.puts(),
                         .duplicate_puts = stats.duplicate_puts(),
                         .failed_puts = stats.failed_puts(),
                         .gets = stats.gets(),
                         .hits = stats.hits(),
                         .misses = stats.misses(),
                         .removals = stats.removals()};
}

std::string EncodePresenceBitmap(const std::vector<bool>& present) {
  std::string bitmap((present.size() + 7) / 8, '\0');
  for (size_t i = 0; i < present.size(); ++i) {
    if (present[i]) bitmap[i / 8] |= static_cast<char>(1 << (i % 8));
  }
  return bitmap;
}

absl::StatusOr<std::vector<bool>> DecodePresenceBitmap(absl::string_view bitmap,
                                                       size_t count) {
  if (bitmap.size() != (count + 7) / 8) {
    return absl::InvalidArgumentError(absl::StrCat(
        "presence bitmap has ", bitmap.size(), " bytes for ", count, " keys"));
  }
  std::vector<bool> present(count);
  for (size_t i = 0; i < bitmap.size() * 8; ++i) {
    const bool bit = (static_cast<unsigned char>(bitmap[i / 8]) >> (i % 8)) & 1;
    if (i < count) {
      present[i] = bit;
    } else if (bit) {
      return absl::InvalidArgumentError(absl::StrCat(
          "presence bitmap sets bit ", i, " past its ", count, " keys"));
    }
  }
  return present;
}

}  // namespace tandem
