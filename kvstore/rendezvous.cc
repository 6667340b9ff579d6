#include "kvstore/rendezvous.h"

#include "glog/logging.h"
#include "xxhash.h"

namespace tandem {

uint64_t NodeSeed(absl::string_view address) {
  return XXH3_64bits(address.data(), address.size());
}

uint64_t RendezvousWeight(uint64_t node_seed, const BlockKey& key) {
  // The key as 16 little-endian bytes, hi then lo.
  unsigned char bytes[16];
  for (int i = 0; i < 8; ++i) {
    bytes[i] = static_cast<unsigned char>(key.hi >> (8 * i));
    bytes[8 + i] = static_cast<unsigned char>(key.lo >> (8 * i));
  }
  return XXH3_64bits_withSeed(bytes, sizeof(bytes), node_seed);
}

size_t PickNode(absl::Span<const uint64_t> node_seeds, const BlockKey& key) {
  CHECK(!node_seeds.empty());
  size_t best = 0;
  uint64_t best_weight = RendezvousWeight(node_seeds[0], key);
  for (size_t i = 1; i < node_seeds.size(); ++i) {
    const uint64_t weight = RendezvousWeight(node_seeds[i], key);
    if (weight > best_weight ||
        (weight == best_weight && node_seeds[i] < node_seeds[best])) {
      best = i;
      best_weight = weight;
    }
  }
  return best;
}

}  // namespace tandem
