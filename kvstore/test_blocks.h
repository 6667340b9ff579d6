// Encoded KV blocks for the KV store's tests and benchmark: real blocks
// (docs/kv_block_format.md) with chosen keys and deterministic contents.
#ifndef TANDEM_KVSTORE_TEST_BLOCKS_H_
#define TANDEM_KVSTORE_TEST_BLOCKS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "engine/block_key.h"
#include "engine/kv_block_codec.h"
#include "engine/kv_layout.h"
#include "engine/model_weights.h"

namespace tandem::testing {

// The model fingerprint every test block carries.
inline Fingerprint TestModel() { return Fingerprint{{0x7465737431ULL, 42}}; }

// A small layout: 1 layer, 1 KV head, head_dim 8, 4 tokens per block, so a
// full block is 96 + 256 bytes.
inline KvLayout SmallLayout() {
  return KvLayout{
      .num_layers = 1, .num_kv_heads = 1, .head_dim = 8, .block_size = 4};
}

// Distinct keys for distinct `i`.
inline BlockKey TestKey(uint64_t i) {
  return BlockKey{.hi = 0x6b65790000000000ULL + i,
                  .lo = i * 0x9e3779b97f4a7c15ULL};
}

// A full block of `layout` keyed `key`, whose floats follow from `seed`.
inline std::string MakeTestBlock(const KvLayout& layout, const BlockKey& key,
                                 uint64_t seed = 1) {
  std::vector<float> floats(layout.BlockFloats());
  uint64_t state = seed * 0x2545f4914f6cdd1dULL + 1;
  for (float& f : floats) {
    state = state * 6364136223846793005ULL + 1442695040888963407ULL;
    f = static_cast<float>(static_cast<int32_t>(state >> 40)) / 65536.0f;
  }
  BlockMetadata metadata;
  metadata.model = TestModel();
  metadata.token_count = layout.block_size;
  metadata.key = key;
  return ExportBlock(layout, floats.data(), metadata).value();
}

// MakeTestBlock(SmallLayout(), TestKey(i), i).
inline std::string SmallBlock(uint64_t i) {
  return MakeTestBlock(SmallLayout(), TestKey(i), i);
}

}  // namespace tandem::testing

#endif  // TANDEM_KVSTORE_TEST_BLOCKS_H_
