// Placement of block keys on KV store nodes by rendezvous hashing (highest
// random weight): each (node, key) pair gets a pseudo-random weight and a
// key lives on the node of highest weight. Every client computes the same
// placement from the same node list, in any order, with no coordination;
// adding a node moves to it only the keys it now wins, about 1/n of them,
// and removing one moves only the keys it held.
//
// Everything here is a pure function and thread-safe.
#ifndef TANDEM_KVSTORE_RENDEZVOUS_H_
#define TANDEM_KVSTORE_RENDEZVOUS_H_

#include <cstddef>
#include <cstdint>

#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "engine/block_key.h"

namespace tandem {

// A node's identity in the hash: XXH3-64 of its address ("host:port").
uint64_t NodeSeed(absl::string_view address);

// The weight of `key` on the node with `node_seed`.
uint64_t RendezvousWeight(uint64_t node_seed, const BlockKey& key);

// The index in `node_seeds` of the node that holds `key`: the highest
// weight, ties going to the smaller seed so that the order of the list does
// not matter. REQUIRES: !node_seeds.empty().
size_t PickNode(absl::Span<const uint64_t> node_seeds, const BlockKey& key);

}  // namespace tandem

#endif  // TANDEM_KVSTORE_RENDEZVOUS_H_
