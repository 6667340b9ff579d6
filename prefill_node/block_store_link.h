// What the prefill worker needs of the KV store: how much of a key chain it
// holds, reading blocks and writing blocks. The interface separates the
// worker from the network, so that the worker's tests can run against
// blocks in memory; LinkKvStoreClient connects it to a real store cluster.
#ifndef TANDEM_PREFILL_NODE_BLOCK_STORE_LINK_H_
#define TANDEM_PREFILL_NODE_BLOCK_STORE_LINK_H_

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "engine/block_key.h"
#include "kvstore/kvstore_client.h"

namespace tandem {

// Implementations are thread-safe: the worker calls them from several
// threads at once. Codes are KvStoreClient's: Unavailable naming the node
// that is down, NotFound for a block not stored, and the others it lists.
class BlockStoreLink {
 public:
  virtual ~BlockStoreLink() = default;

  // The number of leading keys of `chain` that are stored.
  virtual absl::StatusOr<size_t> LongestPrefix(
      absl::Span<const BlockKey> chain) = 0;
  // The encoded block of each key, in order.
  virtual std::vector<absl::StatusOr<std::string>> GetMany(
      absl::Span<const BlockKey> keys) = 0;
  // Stores each encoded, keyed block; one status per block, in order.
  virtual std::vector<absl::Status> PutMany(
      absl::Span<const absl::string_view> blocks) = 0;
};

// A link over `client` (owned).
std::unique_ptr<BlockStoreLink> LinkKvStoreClient(
    std::unique_ptr<KvStoreClient> client);

}  // namespace tandem

#endif  // TANDEM_PREFILL_NODE_BLOCK_STORE_LINK_H_
