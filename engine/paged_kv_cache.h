// A paged KV cache: a fixed pool of blocks carved out of a memory budget, a
// block table per sequence, and reference counts so that sequences can share
// blocks (forks, common prefixes) with copy-on-write of a shared partial
// block.
//
// A sequence of n tokens owns ceil(n / block_size) blocks; its token t lives
// in BlockTable(seq)[t / block_size], slot t % block_size, laid out as
// kv_layout.h describes. The cache tracks which slots exist; callers (the
// forward pass, the block importer) write K and V into them. Slots are
// uninitialized until written: a block's memory is reused without clearing.
//
// The pool is one 64-byte-aligned allocation that is never zero-filled, so
// its pages are committed by the operating system only when first written.
// Each block starts on a 64-byte boundary (its stride is BlockFloats()
// rounded up to a multiple of 16 floats).
#ifndef TANDEM_ENGINE_PAGED_KV_CACHE_H_
#define TANDEM_ENGINE_PAGED_KV_CACHE_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "engine/kv_layout.h"

namespace tandem {

using SequenceId = int64_t;
using BlockId = int32_t;

// Not thread-safe: one owner (a model runner or scheduler) drives it.
class PagedKvCache {
 public:
  // Alignment in bytes of the pool and of every block.
  static constexpr size_t kAlignment = 64;

  // Creates a pool of as many blocks of `layout` as fit in `budget_bytes`
  // (at most the largest BlockId plus one), each taking BlockStrideBytes().
  // InvalidArgument if the layout is not valid (KvLayout::IsValid) or the
  // budget holds no block; ResourceExhausted if the memory cannot be
  // allocated.
  static absl::StatusOr<std::unique_ptr<PagedKvCache>> Create(
      const KvLayout& layout, size_t budget_bytes);

  // Bytes one block of `layout` takes in the pool: layout.BlockBytes()
  // rounded up to a multiple of kAlignment. A budget of
  // n * BlockStrideBytes(layout) holds exactly n blocks.
  // REQUIRES: layout.IsValid().
  static size_t BlockStrideBytes(const KvLayout& layout);

  PagedKvCache(const PagedKvCache&) = delete;
  PagedKvCache& operator=(const PagedKvCache&) = delete;
  ~PagedKvCache();

  const KvLayout& layout() const { return layout_; }
  int num_blocks() const { return static_cast<int>(ref_counts_.size()); }
  int num_free_blocks() const { return static_cast<int>(free_list_.size()); }
  int num_sequences() const { return static_cast<int>(sequences_.size()); }

  // Registers an empty sequence. AlreadyExists if `seq` is known.
  absl::Status AddSequence(SequenceId seq);
  // True if `seq` is registered.
  bool HasSequence(SequenceId seq) const;

  // Makes `child` a new sequence sharing every block of `parent` (each
  // block's reference count goes up by one). Blocks are copied only when one
  // side later appends into a shared partial block. NotFound if `parent` is
  // unknown, AlreadyExists if `child` is known (including child == parent).
  absl::Status Fork(SequenceId parent, SequenceId child);

  // Extends `seq` by `count` token slots at its end, allocating blocks as
  // needed. If the last block is partially filled and shared with another
  // sequence, `seq` first gets a private copy of it (copy-on-write of its
  // filled slots only); full shared blocks stay shared. The new slots are
  // uninitialized. InvalidArgument if `count` is negative or the token count
  // would overflow; NotFound if `seq` is unknown; ResourceExhausted if fewer
  // than BlocksNeededToAppend(seq, count) blocks are free. On any error
  // nothing changes.
  absl::Status Append(SequenceId seq, int count);

  // The number of free blocks Append(seq, count) would take, counting a
  // copy-on-write copy. InvalidArgument and NotFound as for Append.
  absl::StatusOr<int> BlocksNeededToAppend(SequenceId seq, int count) const;

  // Appends `blocks`, each full, already filled and owned by the caller
  // (from AllocateBlock), to the end of `seq`, which must hold a whole
  // number of blocks; `seq` grows by blocks.size() * block_size tokens.
  // Takes over one caller reference to each block. NotFound for an unknown
  // `seq`; FailedPrecondition if `seq` ends in a partial block;
  // InvalidArgument if a block id is out of range or the block is free, or
  // the token count would overflow. On any error nothing changes. (A partial
  // last block, such as the prefill-to-decode handoff, joins with
  // Append(seq, token_count) and a write, for example ImportBlock, into
  // BlockData(BlockTable(seq).back()).)
  absl::Status AppendFullBlocks(SequenceId seq,
                                absl::Span<const BlockId> blocks);

  // Takes a free block with a reference count of one, for the caller to
  // fill (for example from an imported block) and then hand to
  // AppendFullBlocks or ReleaseBlock. Its contents are uninitialized.
  // ResourceExhausted if none is free.
  absl::StatusOr<BlockId> AllocateBlock();
  // Drops one reference to `block`; at zero the block is free again.
  // InvalidArgument if `block` is out of range or already free.
  absl::Status ReleaseBlock(BlockId block);

  // Drops `seq` and one reference to each of its blocks. NotFound if unknown.
  absl::Status RemoveSequence(SequenceId seq);

  // The number of token slots of `seq`; 0 if `seq` is unknown.
  int NumTokens(SequenceId seq) const;
  // The blocks of `seq` in token order; empty if `seq` is unknown. Valid
  // until the next call that changes `seq`.
  absl::Span<const BlockId> BlockTable(SequenceId seq) const;

  // The number of references to `block` (block tables plus blocks handed
  // out by AllocateBlock); 0 if it is free or out of range.
  int RefCount(BlockId block) const;
  // The whole block, BlockFloats() floats in the layout of kv_layout.h,
  // 64-byte aligned. Null if `block` is out of range. Writing a block whose
  // RefCount() is above one changes every sequence that shares it.
  float* BlockData(BlockId block);
  const float* BlockData(BlockId block) const;

 private:
  struct Sequence {
    int num_tokens = 0;
    std::vector<BlockId> blocks;
  };
  struct PoolDeleter {
    void operator()(float* pool) const;
  };

  PagedKvCache(const KvLayout& layout, int num_blocks, size_t block_stride,
               std::unique_ptr<float, PoolDeleter> pool);

  // Validates an Append and returns the number of blocks it takes.
  absl::StatusOr<int> PlanAppend(const Sequence& sequence, int count) const;
  // REQUIRES: a free block exists.
  BlockId TakeFreeBlock();
  void DropReference(BlockId block);
  // Copies the first `num_slots` token slots of every plane.
  void CopySlots(BlockId from, BlockId to, int num_slots);

  // Constant after construction.
  KvLayout layout_;
  size_t block_stride_;  // floats from one block to the next
  std::unique_ptr<float, PoolDeleter> pool_;  // [num_blocks, block_stride_]

  std::vector<int> ref_counts_;     // [num_blocks]
  std::vector<BlockId> free_list_;  // popped from the back
  absl::flat_hash_map<SequenceId, Sequence> sequences_;
};

}  // namespace tandem

#endif  // TANDEM_ENGINE_PAGED_KV_CACHE_H_
