// Where a decode worker reads handoff blocks from: in the server, the KV
// store's client (KvStoreClient::GetMany); in unit tests, a map in memory.
// A colocated worker also asks how much of a prompt's key chain is stored
// and publishes the blocks it computed.
#ifndef TANDEM_DECODE_NODE_BLOCK_SOURCE_H_
#define TANDEM_DECODE_NODE_BLOCK_SOURCE_H_

#include <cstddef>
#include <string>
#include <vector>

#include "absl/status/status.h"
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

  // The number of leading keys of `chain` that are stored; Unavailable or
  // DeadlineExceeded for a store that cannot be reached. Thread-safe. The
  // default knows of no block: 0.
  virtual absl::StatusOr<size_t> LongestPrefix(
      absl::Span<const BlockKey> chain) {
    return 0;
  }

  // Stores each encoded, keyed block; one status per block, in order (OK
  // for a block already stored). Thread-safe. The default stores nothing:
  // FailedPrecondition for each block.
  virtual std::vector<absl::Status> PutMany(
      absl::Span<const std::string> blocks) {
    return std::vector<absl::Status>(
        blocks.size(), absl::FailedPreconditionError("no store to write to"));
  }
};

}  // namespace tandem

#endif  // TANDEM_DECODE_NODE_BLOCK_SOURCE_H_
