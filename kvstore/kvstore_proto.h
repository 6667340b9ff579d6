// Conversions between the KV store's C++ types and their tandem.v1 protos
// (proto/kv_block.proto, proto/kvstore.proto). Pure functions, thread-safe.
#ifndef TANDEM_KVSTORE_KVSTORE_PROTO_H_
#define TANDEM_KVSTORE_KVSTORE_PROTO_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "engine/block_key.h"
#include "engine/model_weights.h"
#include "kvstore/block_info.h"
#include "kvstore/block_store.h"
#include "proto/kv_block.pb.h"
#include "proto/kvstore.pb.h"

namespace tandem {

void ToProto(const BlockKey& key, v1::BlockKey* out);
BlockKey FromProto(const v1::BlockKey& key);

void ToProto(const Fingerprint& model, v1::ModelFingerprint* out);
Fingerprint FromProto(const v1::ModelFingerprint& model);

void ToProto(const BlockInfo& info, v1::BlockInfo* out);
// Missing key or model read as zero.
BlockInfo FromProto(const v1::BlockInfo& info);

void ToProto(const BlockStoreStats& stats, v1::StatsResponse* out);
BlockStoreStats FromProto(const v1::StatsResponse& stats);

// Packs one bit per key, key i at byte i / 8, bit i % 8 (least significant
// first): ceil(n / 8) bytes.
std::string EncodePresenceBitmap(const std::vector<bool>& present);
// Unpacks EncodePresenceBitmap's form for `count` keys. InvalidArgument if
// `bitmap` is not ceil(count / 8) bytes or sets bits past `count`.
absl::StatusOr<std::vector<bool>> DecodePresenceBitmap(absl::string_view bitmap,
                                                       size_t count);

}  // namespace tandem

#endif  // TANDEM_KVSTORE_KVSTORE_PROTO_H_
