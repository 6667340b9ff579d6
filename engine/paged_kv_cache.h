// A paged KV cache: a fixed pool of blocks carved out of a memory budget, a
// block table per sequence, and reference counts so that sequences can share
// blocks (forks, common prefixes) with copy-on-write of a shared partial
// block.
#ifndef TANDEM_ENGINE_PAGED_KV_CACHE_H_
#define TANDEM_ENGINE_PAGED_KV_CACHE_H_

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
  // Creates a pool of as many blocks of `layout` as fit in `budget_bytes`.
  // InvalidArgument if the layout is empty or the budget holds no block.
  static absl::StatusOr<std::unique_ptr<PagedKvCache>> Create(
      const KvLayout& layout, size_t budget_bytes);

  const KvLayout& layout() const { return layout_; }
  int num_blocks() const;
  int num_free_blocks() const;

  // Registers an empty sequence. AlreadyExists if `seq` is known.
  absl::Status AddSequence(SequenceId seq);
  // True if `seq` is registered.
  bool HasSequence(SequenceId seq) const;

  // Makes `child` a new sequence sharing every block of `parent`. Blocks are
  // copied only when one side later writes into a shared partial block.
  // NotFound if `parent` is unknown, AlreadyExists if `child` is known.
  absl::Status Fork(SequenceId parent, SequenceId child);

  // Extends `seq` by `count` token slots at its end, allocating blocks and
  // copying a shared last block (copy-on-write) as needed. On
  // ResourceExhausted (too few free blocks) nothing changes. NotFound if
  // `seq` is unknown.
  absl::Status Append(SequenceId seq, int count);

  // Appends `blocks`, each full, already filled and owned by the caller
  // (from AllocateBlock), to the end of `seq`, which must hold a whole
  // number of blocks. Takes over the caller's references. NotFound for an
  // unknown `seq`; FailedPrecondition if `seq` ends in a partial block.
  absl::Status AppendFullBlocks(SequenceId seq,
                                absl::Span<const BlockId> blocks);

  // Takes a free block with a reference count of one, for the caller to
  // fill (for example from an imported block) and then hand to
  // AppendFullBlocks or ReleaseBlock. ResourceExhausted if none is free.
  absl::StatusOr<BlockId> AllocateBlock();
  // Drops one reference to `block`.
  void ReleaseBlock(BlockId block);

  // Drops `seq` and one reference to each of its blocks. NotFound if unknown.
  absl::Status RemoveSequence(SequenceId seq);

  // REQUIRES: HasSequence(seq).
  int NumTokens(SequenceId seq) const;
  // The blocks of `seq` in token order. REQUIRES: HasSequence(seq).
  absl::Span<const BlockId> BlockTable(SequenceId seq) const;

  int RefCount(BlockId block) const;
  // The whole block, BlockFloats() floats in the layout of kv_layout.h.
  float* BlockData(BlockId block);
  const float* BlockData(BlockId block) const;

 private:
  struct Sequence {
    int num_tokens = 0;
    std::vector<BlockId> blocks;
  };

  explicit PagedKvCache(const KvLayout& layout, int num_blocks);

  KvLayout layout_;
  std::vector<float> pool_;  // [num_blocks, BlockFloats()]
  std::vector<int> ref_counts_;
  std::vector<BlockId> free_list_;
  absl::flat_hash_map<SequenceId, Sequence> sequences_;
};

}  // namespace tandem

#endif  // TANDEM_ENGINE_PAGED_KV_CACHE_H_
