// The in-memory store behind one KV store node: encoded KV blocks by content
// key, under a byte budget, evicting the least recently used blocks that no
// transfer holds.
//
// A block enters through a BlockWriter, which reserves its bytes up front,
// receives them in pieces and publishes the block only once all of it has
// arrived and verified; until then no reader can see it, and a writer that
// is dropped before it commits leaves nothing behind. A reader holds a
// PinnedBlock, which keeps the block's bytes in place (unevictable, unfreed)
// while it streams them. A block's recency is its last Put or Get.
//
// Thread-safety: BlockStore is thread-safe. A BlockWriter or PinnedBlock is
// used by one thread at a time; different ones may be used concurrently.
#ifndef TANDEM_KVSTORE_BLOCK_STORE_H_
#define TANDEM_KVSTORE_BLOCK_STORE_H_

#include <cstdint>
#include <list>
#include <memory>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/types/span.h"
#include "engine/block_key.h"
#include "kvstore/block_info.h"

struct XXH3_state_s;

namespace tandem {

class BlockStore;
// A stored or incoming block; private to block_store.cc.
struct BlockStoreEntry;

// Counters and occupancy of a store.
struct BlockStoreStats {
  uint64_t bytes_used = 0;    // stored blocks plus reservations of writers
  uint64_t bytes_stored = 0;  // visible blocks
  uint64_t blocks_stored = 0;
  uint64_t memory_budget_bytes = 0;
  uint64_t evictions = 0;
  uint64_t puts = 0;            // blocks committed
  uint64_t duplicate_puts = 0;  // puts of a key already stored
  uint64_t failed_puts = 0;     // refused, rejected or abandoned writes
  uint64_t gets = 0;
  uint64_t hits = 0;
  uint64_t misses = 0;
  uint64_t removals = 0;
};

// One stored block held for reading: its bytes stay valid, and the block is
// not evicted, until this is destroyed or moved from. Move-only.
// REQUIRES: destroyed before the store that returned it.
class PinnedBlock {
 public:
  PinnedBlock(PinnedBlock&& other) noexcept;
  PinnedBlock& operator=(PinnedBlock&& other) noexcept;
  ~PinnedBlock();

  const BlockInfo& info() const;
  // The encoded block, info().total_bytes long.
  absl::string_view bytes() const;

 private:
  friend class BlockStore;
  PinnedBlock(BlockStore* store, BlockStoreEntry* entry)
      : store_(store), entry_(entry) {}
  void Release();

  BlockStore* store_;
  BlockStoreEntry* entry_;  // null once moved from
};

// A block being written. Append the bytes in order, then Commit. Dropping
// the writer without a successful Commit abandons the write and frees its
// reservation. REQUIRES: destroyed before the store that returned it.
class BlockWriter {
 public:
  BlockWriter(const BlockWriter&) = delete;
  BlockWriter& operator=(const BlockWriter&) = delete;
  ~BlockWriter();

  const BlockInfo& info() const { return info_; }
  uint64_t bytes_received() const { return bytes_received_; }

  // Adds the next bytes of the block. InvalidArgument if they would take it
  // past info().total_bytes; FailedPrecondition after Commit was called.
  absl::Status Append(absl::string_view data);

  // Verifies the block and makes it visible. DataLoss if fewer than
  // total_bytes arrived, the checksum disagrees or the block's own checksums
  // fail; InvalidArgument if the bytes are not a keyed KV block matching
  // info(); FailedPrecondition if called twice. On error the write is
  // abandoned. If the key was stored meanwhile by another writer, succeeds
  // and keeps the block already there.
  absl::Status Commit();

 private:
  friend class BlockStore;
  BlockWriter(BlockStore* store, std::unique_ptr<BlockStoreEntry> entry);

  BlockStore* const store_;
  const BlockInfo info_;
  std::unique_ptr<BlockStoreEntry> entry_;  // null once finished
  XXH3_state_s* const hash_;                // checksum of the bytes so far
  uint64_t bytes_received_ = 0;
};

class BlockStore {
 public:
  struct Options {
    // Bytes that stored blocks and writes in progress may take together.
    uint64_t memory_budget_bytes = uint64_t{1} << 30;
    // Largest block accepted.
    uint64_t max_block_bytes = uint64_t{64} << 20;
  };

  explicit BlockStore(const Options& options);
  BlockStore(const BlockStore&) = delete;
  BlockStore& operator=(const BlockStore&) = delete;
  // REQUIRES: no BlockWriter or PinnedBlock of this store is alive.
  ~BlockStore();

  // Starts writing the block `info` describes, reserving info.total_bytes,
  // evicting least recently used unpinned blocks as needed.
  //   AlreadyExists      the key is stored (callers treat a duplicate put as
  //                      success; nothing is written).
  //   InvalidArgument    total_bytes below a block header or above
  //                      max_block_bytes, or a zero token_count.
  //   ResourceExhausted  total_bytes exceeds the memory budget, or the
  //                      blocks that could be evicted would not make room.
  absl::StatusOr<std::unique_ptr<BlockWriter>> BeginPut(const BlockInfo& info);

  // The block keyed `key`, pinned. NotFound if it is not stored.
  absl::StatusOr<PinnedBlock> Get(const BlockKey& key);

  // For each key, whether it is stored. Does not change recency.
  std::vector<bool> Contains(absl::Span<const BlockKey> keys) const;

  // Removes the stored blocks among `keys` and returns how many there were.
  // A pinned block vanishes for new readers at once and is freed when its
  // last pin goes.
  uint64_t Remove(absl::Span<const BlockKey> keys);

  BlockStoreStats Stats() const;

  const Options& options() const { return options_; }

 private:
  friend class BlockWriter;
  friend class PinnedBlock;
  using Entry = BlockStoreEntry;

  // Evicts until `bytes` more fit, then counts them as used.
  absl::Status Reserve(uint64_t bytes) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void EvictOldest() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Makes a verified entry visible.
  void Publish(std::unique_ptr<Entry> entry) ABSL_LOCKS_EXCLUDED(mu_);
  // Drops an unpublished entry and its reservation.
  void Abandon(std::unique_ptr<Entry> entry) ABSL_LOCKS_EXCLUDED(mu_);
  void Unpin(Entry* entry) ABSL_LOCKS_EXCLUDED(mu_);

  // Constant after construction.
  const Options options_;

  mutable absl::Mutex mu_;
  absl::flat_hash_map<BlockKey, std::unique_ptr<Entry>> blocks_
      ABSL_GUARDED_BY(mu_);
  // Visible blocks, least recently used first.
  std::list<Entry*> lru_ ABSL_GUARDED_BY(mu_);
  // Bytes of visible blocks that are pinned.
  uint64_t pinned_stored_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  BlockStoreStats stats_ ABSL_GUARDED_BY(mu_);
};

}  // namespace tandem

#endif  // TANDEM_KVSTORE_BLOCK_STORE_H_
