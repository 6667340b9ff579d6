// Where a decode worker reads handoff blocks from: in the server, the KV
// store's client (KvStoreClient::GetMany); in unit tests, a map in memory.
#ifndef TANDEM_DECODE_NODE_BLOCK_SOURCE_H_
#define TANDEM_DECODE_NODE_BLOCK_SOURCE_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "engine/block_key.h"

namespace tandem {

class BlockSource {
 public:
  virtual ~BlockSource() = default;

  // The encoded block (docs/kv_block_format.md) for each key, in order:
  // NotFound for a block that is not stored, Unavailable or
  // DeadlineExceeded for a store that cannot be reached, DataLoss for
  // corrupted bytes. Blocks the calling thread until every result is in.
  // Thread-safe: called from several fetch threads at once.
  virtual std::vector<absl::StatusOr<std::string>> GetMany(
      absl::Span<const BlockKey> keys) = 0;
};

}  // namespace tandem

#endif  // TANDEM_DECODE_NODE_BLOCK_SOURCE_H_
